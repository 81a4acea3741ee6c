"""Stage evaluate: both models on the official test set, with test-time augmentation (evaluate.tta).

Writes reports/metrics.json (DVC metrics: the scores, and under `cam` how faithful and how
concentrated the class activation maps are), reports/evaluation.json (per-class scores and the
most confused pairs), reports/confusion/<variant>.csv (DVC confusion plots) and
reports/results.md (the study's table).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cifarcam import cam, examples, faithfulness, metrics, models, tta
from cifarcam.data import VARIANTS, load_prepared
from cifarcam.errors import run_stage
from cifarcam.files import atomic_output
from cifarcam.params import load_section

REPORTS = Path("reports")


def main():
    params, method = load_section("evaluate"), load_section("gradcam")["method"]
    scores, details, confusions = {}, {}, {}
    for variant in VARIANTS:
        data = load_prepared(Path("data/prepared") / f"{variant}.npz")
        model = models.load(Path("models") / f"{variant}.keras")
        per_view = tta.predict_views(model, data["x_test"], params["tta"])
        plain, predicted = per_view[0].argmax(axis=1), tta.average(per_view).argmax(axis=1)
        truth, classes = data["y_test"], data["classes"]
        scores[variant] = metrics.summary(truth, predicted) | {
            "accuracy_without_tta": float((plain == truth).mean()),
            "test_images": int(len(truth)),
        }
        scores[variant]["cam"] = cam_scores(model, data["x_test"], plain, method, params)
        details[variant] = {
            "per_class": metrics.per_class(truth, predicted, classes),
            "most_confused_pairs": metrics.most_confused_pairs(truth, predicted, classes),
        }
        confusions[variant] = pd.DataFrame({"actual": np.array(classes)[truth], "predicted": np.array(classes)[predicted]})
        print(f"{variant}: accuracy {scores[variant]['accuracy']:.4f}, weighted F1 {scores[variant]['f1']:.4f}")
    write_reports(scores, details, confusions)


def cam_scores(model, images, predicted, method, params):
    """Faithfulness and concentration of the maps of the predicted class, on a spread of test images."""
    chosen = examples.spread(len(images), params["cam_images"])
    maps = cam.class_activation_maps(model, images[chosen], predicted[chosen], method)
    scores = faithfulness.summary(model, images[chosen], maps, predicted[chosen], steps=params["cam_steps"])
    return scores | {"images": int(len(chosen))}


def write_reports(scores, details, confusions):
    with atomic_output(REPORTS / "confusion") as folder:
        folder.mkdir()
        for variant, frame in confusions.items():
            frame.to_csv(folder / f"{variant}.csv", index=False)
    with atomic_output(REPORTS / "evaluation.json") as path:
        path.write_text(json.dumps(details, indent=2) + "\n")
    with atomic_output(REPORTS / "results.md") as path:
        path.write_text(results_markdown(scores, details))
    with atomic_output(REPORTS / "metrics.json") as path:
        path.write_text(json.dumps(scores, indent=2) + "\n")


def results_markdown(scores, details):
    table = metrics.markdown_table({VARIANTS[v]: s for v, s in scores.items()})
    lines = ["# Test-set results", "", "Weighted averages over the ten classes, as the study reports them.", "", table, ""]
    for variant, detail in details.items():
        lines += [f"## {VARIANTS[variant]}", "", "| class | precision | recall | F1 |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |" for name, c in detail["per_class"].items()
        ]
        pairs = ", ".join(f"{p['pair'][0]}/{p['pair'][1]} ({p['count']})" for p in detail["most_confused_pairs"])
        lines += ["", f"Most confused pairs (test images either way): {pairs}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run_stage(main)
