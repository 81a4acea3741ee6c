"""Stage report: reports/README.md, the study's write-up, from evaluate's and gradcam's metrics and figures.

Runs last and reads only files, so rewriting the text never reruns a model.
"""

import json
from pathlib import Path

from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import model_labels
from cifarcam.core.params import recipes
from cifarcam.study import report

REPORTS = Path("reports")


def main():
    by_variant = recipes()
    labels, smoothing = model_labels(by_variant), {v: r["label_smoothing"] for v, r in by_variant.items()}
    metrics, evaluation, explanations = (
        read_json(REPORTS / name) for name in ("metrics.json", "evaluation.json", "explanations.json")
    )
    if "seeds" not in metrics or "class_gains" not in evaluation:
        raise PipelineError(
            f"{REPORTS} holds an older evaluate stage's results (no `seeds`): rerun it with dvc repro --force evaluate"
        )
    for _, images in report.figures(labels, metrics["seeds"]["gap"]["seeds"]):
        for path, _ in images:
            if not (REPORTS / path).is_file():
                raise PipelineError(
                    f"{REPORTS / path} not found: run the evaluate and gradcam stages first (dvc repro)"
                )
    with atomic_output(REPORTS / "README.md") as path:
        path.write_text(report.write_up(metrics, evaluation, explanations, labels, smoothing))
    print(f"write-up -> {REPORTS / 'README.md'}")


def read_json(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the evaluate and gradcam stages first (dvc repro)") from None
    except json.JSONDecodeError as error:
        raise PipelineError(
            f"{path} is not valid JSON ({error}): rerun the stage that wrote it (dvc repro --force evaluate gradcam)"
        ) from None


if __name__ == "__main__":
    run_stage(main)
