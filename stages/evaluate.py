"""Stage evaluate: every model (each variant, each of params.yaml's `seeds`) on the official test set,
with test-time augmentation (evaluate.tta).

Writes reports/metrics.json (DVC metrics; the top-level `gray`, `rgb` and `rgb_vs_gray` are the first
seed's run: the scores with their 95% intervals, per-class errors, calibration before and after a
temperature fitted on the validation split, and McNemar's test with the accuracy difference; under `seeds`, every
seed's scores, their spread, the seed-paired tests of the gap and the animal-against-vehicle
contrast), reports/evaluation.json (the first seed's per-class scores, most confused pairs and
reliability bins, the same for `other_seeds`, and the per-class gains pooled over seeds with Holm's
correction), reports/confusion/<variant>.csv (DVC confusion plots of the first seed),
reports/figures (per-class accuracy over seeds, the spread over seeds, and each seed's reliability
diagrams and confusion matrices: the first seed's at the top, the others' in seed<k>/) and
reports/results.md (the study's table), and data/predictions.npz (the first seed's TTA probabilities on the
test and validation splits, which the gradcam stage explains). Every statistic is computed from one set of TTA
probabilities per model (the validation split's only fit the temperature).
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from cifarcam.core.errors import run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import VARIANTS, model_labels, model_path
from cifarcam.core.params import load_section, recipes, seeds
from cifarcam.data.prepare import load_prepared
from cifarcam.study import calibration, metrics, plots, stats, tables, tta
from cifarcam.study import seeds as over_seeds
from cifarcam.training import models

REPORTS = Path("reports")
PREDICTIONS = Path("data/predictions.npz")


class Assessed(NamedTuple):
    """One model on the test set: metrics.json's scores, evaluation.json's details, its predictions."""

    scores: dict
    details: dict
    probabilities: dict  # {"test": ..., "val": ...}, with test-time augmentation
    predicted: np.ndarray  # on the test set


def main():
    params, trained = load_section("evaluate"), seeds()
    data = {variant: load_prepared(Path("data/prepared") / f"{variant}.npz") for variant in VARIANTS}
    truth, classes = data["rgb"]["y_test"], data["rgb"]["classes"]
    runs = {}  # {seed: {variant: Assessed}}
    for seed in trained:
        runs[seed] = {}
        for variant in VARIANTS:
            runs[seed][variant] = assess(models.load(model_path(variant, seed)), data[variant], params)
            scores = runs[seed][variant].scores
            print(
                f"{variant} seed {seed}: accuracy {scores['accuracy']:.4f} ({scores['accuracy_ci95_low']:.4f}–"
                f"{scores['accuracy_ci95_high']:.4f}), weighted F1 {scores['f1']:.4f}, ECE "
                f"{scores['calibration']['ece']:.4f} ({scores['calibration']['scaled']['ece']:.4f} at the "
                f"validation's temperature {scores['calibration']['temperature']:.3f})"
            )
    correct = {v: np.array([runs[seed][v].predicted == truth for seed in trained]) for v in VARIANTS}
    comparisons = {
        seed: stats.compare(correct["rgb"][i], correct["gray"][i], names=("rgb", "gray"))
        for i, seed in enumerate(trained)
    }
    first = runs[trained[0]]
    scores = {variant: first[variant].scores for variant in VARIANTS} | {"rgb_vs_gray": comparisons[trained[0]]}
    gains = over_seeds.class_gains(correct["rgb"], correct["gray"], truth)
    scores["seeds"] = seed_section(runs, comparisons, gains)
    details = {variant: first[variant].details for variant in VARIANTS} | {"class_gains": gains}
    details["other_seeds"] = {str(seed): {v: runs[seed][v].details for v in VARIANTS} for seed in trained[1:]}
    gap = scores["seeds"]["gap"]
    print(
        f"RGB − gray, seed {trained[0]}: {scores['rgb_vs_gray']['accuracy_difference']:+.4f}, McNemar p = "
        f"{scores['rgb_vs_gray']['mcnemar_p']:.3g}; over {len(trained)} seeds: {gap['mean']:+.4f}"
        + (
            f" ± {gap['sd']:.4f} sd, paired t p = {gap['paired_t_p']:.3g}, sign-flip p = {gap['sign_flip_p']:.3g}"
            if "sd" in gap
            else ""
        )
    )
    confusions = {
        variant: pd.DataFrame(
            {"actual": np.array(classes)[truth], "predicted": np.array(classes)[first[variant].predicted]}
        )
        for variant in VARIANTS
    }
    write_reports(scores, details, confusions, classes, model_labels(recipes()))
    with atomic_output(PREDICTIONS) as path:  # the maps explain these predictions: gradcam reads them
        np.savez_compressed(
            path,
            **{
                f"{v}_{split}": first[v].probabilities[split].astype(np.float32)
                for v in VARIANTS
                for split in ("test", "val")
            },
        )


def assess(model, data, params):
    """One model on the test set; the validation split fits its temperature."""
    per_view = tta.predict_views(model, data["x_test"], params["tta"])
    probabilities = tta.average(per_view)
    plain, predicted = per_view[0].argmax(axis=1), probabilities.argmax(axis=1)
    truth, classes, bins = data["y_test"], data["classes"], params["calibration_bins"]
    validation = tta.average(tta.predict_views(model, data["x_val"], params["tta"]))
    calibrated, reliability, scaled_reliability = calibration.assess(
        truth, probabilities, data["y_val"], validation, bins
    )
    single_view = calibration.summary(truth, per_view[0], calibration.reliability(truth, per_view[0], bins))
    calibrated["without_tta"] = {key: single_view[key] for key in ("ece", "mean_confidence")}
    low, high = stats.accuracy_interval(predicted == truth)
    scores = metrics.summary(truth, predicted) | {
        "accuracy_ci95_low": low,
        "accuracy_ci95_high": high,
        "error_rate": float(np.mean(predicted != truth)),  # not "error": DVC takes that key for a failed load
        "class_error": metrics.class_errors(truth, predicted, classes),
        "accuracy_without_tta": float((plain == truth).mean()),
        "test_images": int(len(truth)),
        "calibration": calibrated,
    }
    details = {
        "per_class": metrics.per_class(truth, predicted, classes),
        "most_confused_pairs": metrics.most_confused_pairs(truth, predicted, classes),
        "reliability": reliability,
        "reliability_scaled": scaled_reliability,
        "confusion_shares": metrics.confusion_shares(truth, predicted, classes).tolist(),
    }
    return Assessed(scores, details, {"test": probabilities, "val": validation}, predicted)


def seed_section(runs, comparisons, gains):
    """metrics.json's `seeds`: each seed's headline scores and comparison, their spread, the tests over seeds."""
    per_seed = {
        str(seed): {
            variant: {
                "accuracy": run[variant].scores["accuracy"],
                "precision": run[variant].scores["precision"],
                "f1": run[variant].scores["f1"],
                "ece": run[variant].scores["calibration"]["ece"],
                "temperature": run[variant].scores["calibration"]["temperature"],
                "scaled_ece": run[variant].scores["calibration"]["scaled"]["ece"],
            }
            for variant in VARIANTS
        }
        | {"rgb_vs_gray": comparisons[seed]}
        for seed, run in runs.items()
    }
    return over_seeds.section(per_seed, gains)


def write_reports(scores, details, confusions, classes, labels):
    with atomic_output(REPORTS / "confusion") as folder:
        folder.mkdir()
        for variant, frame in confusions.items():
            frame.to_csv(folder / f"{variant}.csv", index=False)
    with atomic_output(REPORTS / "figures") as folder:
        folder.mkdir()
        write_figures(scores, details, classes, labels, folder)
    with atomic_output(REPORTS / "evaluation.json") as path:
        path.write_text(json.dumps(details, indent=2) + "\n")
    with atomic_output(REPORTS / "results.md") as path:
        path.write_text(tables.results_page(scores, details, labels))
    with atomic_output(REPORTS / "metrics.json") as path:
        path.write_text(json.dumps(scores, indent=2) + "\n")


def write_figures(scores, details, classes, labels, folder):
    first = next(iter(scores["seeds"]["per_seed"]))
    runs = {first: {v: details[v] for v in VARIANTS}} | details["other_seeds"]  # {seed: {variant: its details}}
    recalls = {
        v: [[run[v]["per_class"][name]["recall"] for name in classes] for run in runs.values()] for v in VARIANTS
    }
    plots.class_accuracy(
        {labels[v]: np.mean(recalls[v], axis=0) for v in VARIANTS},
        classes,
        folder / "class_accuracy.png",
        f"Test accuracy per class{f' (mean of {len(runs)} seeds)' if len(runs) > 1 else ''}, and what colour adds",
        [(details["class_gains"][name]["ci95_low"], details["class_gains"][name]["ci95_high"]) for name in classes],
    )
    if len(runs) > 1:
        plots.seeds(scores["seeds"]["per_seed"], labels, folder / "seeds.png", "Test accuracy of each training seed")
    for index, (seed, run) in enumerate(runs.items()):
        place = folder if index == 0 else folder / f"seed{seed}"
        place.mkdir(exist_ok=True)
        for variant in VARIANTS:
            name = f"{labels[variant]}, seed {seed}"
            plots.reliability(run[variant]["reliability"], place / f"{variant}_reliability.png", f"Reliability, {name}")
            plots.reliability(
                run[variant]["reliability_scaled"],
                place / f"{variant}_reliability_scaled.png",
                f"Reliability after temperature scaling, {name}",
            )
            plots.confusion(
                np.array(run[variant]["confusion_shares"]),
                classes,
                place / f"{variant}_confusion.png",
                f"Confusion matrix, {name} (rows sum to 1; colours: the confusions)",
            )


if __name__ == "__main__":
    run_stage(main)
