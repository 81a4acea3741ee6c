"""Stage evaluate: both models on the official test set, with test-time augmentation (evaluate.tta).

Writes reports/metrics.json (DVC metrics: the scores with their 95% intervals, per-class errors,
calibration before and after a temperature fitted on the validation split, under `cam` how
faithful and how concentrated the class activation maps are, and under `rgb_vs_gray` McNemar's
test and the accuracy difference), reports/evaluation.json
(per-class scores, the most confused pairs, the reliability diagrams' bins),
reports/confusion/<variant>.csv (DVC confusion plots), reports/figures/*.png (per-class accuracy,
reliability diagrams, normalised confusion matrices) and reports/results.md (the study's table).
Every statistic is computed from one set of TTA probabilities per model (the validation split's
only fit the temperature).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cifarcam.core.errors import run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import VARIANTS, model_labels
from cifarcam.core.params import load_section, recipes
from cifarcam.data.prepare import load_prepared
from cifarcam.explain import cam, examples, faithfulness
from cifarcam.study import calibration, metrics, plots, stats, tables, tta
from cifarcam.training import models

REPORTS = Path("reports")


def main():
    params, method = load_section("evaluate"), load_section("gradcam")["method"]
    scores, details, confusions, correct = {}, {}, {}, {}
    for variant in VARIANTS:
        data = load_prepared(Path("data/prepared") / f"{variant}.npz")
        model = models.load(Path("models") / f"{variant}.keras")
        per_view = tta.predict_views(model, data["x_test"], params["tta"])
        probabilities = tta.average(per_view)
        plain, predicted = per_view[0].argmax(axis=1), probabilities.argmax(axis=1)
        truth, classes = data["y_test"], data["classes"]
        correct[variant] = predicted == truth
        bins = params["calibration_bins"]
        validation = tta.average(tta.predict_views(model, data["x_val"], params["tta"]))
        calibrated, reliability, scaled_reliability = calibration.assess(
            truth, probabilities, data["y_val"], validation, bins
        )
        single_view = calibration.summary(truth, per_view[0], calibration.reliability(truth, per_view[0], bins))
        calibrated["without_tta"] = {key: single_view[key] for key in ("ece", "mean_confidence")}
        low, high = stats.accuracy_interval(correct[variant])
        scores[variant] = metrics.summary(truth, predicted) | {
            "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            "error_rate": float(1 - correct[variant].mean()),  # not "error": DVC takes that key for a failed load
            "class_error": metrics.class_errors(truth, predicted, classes),
            "accuracy_without_tta": float((plain == truth).mean()),
            "test_images": int(len(truth)),
            "calibration": calibrated,
        }
        scores[variant]["cam"] = cam_scores(model, data["x_test"], plain, method, params)
        details[variant] = {
            "per_class": metrics.per_class(truth, predicted, classes),
            "most_confused_pairs": metrics.most_confused_pairs(truth, predicted, classes),
            "reliability": reliability,
            "reliability_scaled": scaled_reliability,
            "confusion_shares": metrics.confusion_shares(truth, predicted, classes).tolist(),
        }
        confusions[variant] = pd.DataFrame(
            {"actual": np.array(classes)[truth], "predicted": np.array(classes)[predicted]}
        )
        print(
            f"{variant}: accuracy {scores[variant]['accuracy']:.4f} ({low:.4f}–{high:.4f}), "
            f"weighted F1 {scores[variant]['f1']:.4f}, ECE {calibrated['ece']:.4f} "
            f"({calibrated['scaled']['ece']:.4f} at the validation's temperature {calibrated['temperature']:.3f})"
        )
    scores["rgb_vs_gray"] = stats.compare(correct["rgb"], correct["gray"], names=("rgb", "gray"))
    details["rgb_vs_gray_per_class"] = {  # the figure's error bars (both variants share the test labels `truth`)
        name: stats.compare(correct["rgb"][truth == k], correct["gray"][truth == k], names=("rgb", "gray"))
        for k, name in enumerate(classes)
    }
    print(
        f"RGB − gray: {scores['rgb_vs_gray']['accuracy_difference']:+.4f}, McNemar p = "
        f"{scores['rgb_vs_gray']['mcnemar_p']:.3g}"
    )
    write_reports(scores, details, confusions, classes, model_labels(recipes()))


def cam_scores(model, images, predicted, method, params):
    """Faithfulness and concentration of the maps of the predicted class, on a spread of test images."""
    chosen = examples.spread(len(images), params["cam_images"])
    maps = cam.class_activation_maps(model, images[chosen], predicted[chosen], method)
    scores = faithfulness.summary(model, images[chosen], maps, predicted[chosen], steps=params["cam_steps"])
    return scores | {"images": int(len(chosen))}


def write_reports(scores, details, confusions, classes, labels):
    with atomic_output(REPORTS / "confusion") as folder:
        folder.mkdir()
        for variant, frame in confusions.items():
            frame.to_csv(folder / f"{variant}.csv", index=False)
    with atomic_output(REPORTS / "figures") as folder:
        folder.mkdir()
        write_figures(details, classes, labels, folder)
    with atomic_output(REPORTS / "evaluation.json") as path:
        path.write_text(json.dumps(details, indent=2) + "\n")
    with atomic_output(REPORTS / "results.md") as path:
        path.write_text(tables.results_page(scores, details, labels))
    with atomic_output(REPORTS / "metrics.json") as path:
        path.write_text(json.dumps(scores, indent=2) + "\n")


def write_figures(details, classes, labels, folder):
    accuracies = {labels[v]: [details[v]["per_class"][name]["recall"] for name in classes] for v in VARIANTS}
    gains = [details["rgb_vs_gray_per_class"][name] for name in classes]
    plots.class_accuracy(
        accuracies,
        classes,
        folder / "class_accuracy.png",
        "Test accuracy per class, and what colour adds",
        [(gain["accuracy_difference_ci95_low"], gain["accuracy_difference_ci95_high"]) for gain in gains],
    )
    for variant in VARIANTS:
        plots.reliability(
            details[variant]["reliability"], folder / f"{variant}_reliability.png", f"Reliability, {labels[variant]}"
        )
        plots.reliability(
            details[variant]["reliability_scaled"],
            folder / f"{variant}_reliability_scaled.png",
            f"Reliability after temperature scaling, {labels[variant]}",
        )
        plots.confusion(
            np.array(details[variant]["confusion_shares"]),
            classes,
            folder / f"{variant}_confusion.png",
            f"Confusion matrix, {labels[variant]} (rows sum to 1; colours: the confusions)",
        )


if __name__ == "__main__":
    run_stage(main)
