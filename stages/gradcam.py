"""Stage gradcam: class activation maps of both models of the first seed on the test set, four figures per model.

reports/cam/<variant>_cam.png           cat and dog (gradcam.classes), right and wrong calls
reports/cam/<variant>_confused_cam.png  the worst mistakes between the most confused class pairs
reports/cam/<variant>_mistakes_cam.png  the most confident mistakes of any class
reports/cam/<variant>_mean_cam.png      the mean map of each class over its right calls

Each overlay explains the predicted class. Declared in dvc.yaml as image plots.
"""

from pathlib import Path

from cifarcam.core.errors import run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import VARIANTS, model_labels, model_path
from cifarcam.core.params import load_section, recipes, seeds
from cifarcam.data.prepare import load_prepared
from cifarcam.explain.examples import Explainer
from cifarcam.study import plots
from cifarcam.training import models


def main():
    params, labels, seed = load_section("gradcam"), model_labels(recipes()), seeds()[0]
    method = params["method"].replace("gradcam", "Grad-CAM")
    with atomic_output(Path("reports/cam")) as folder:
        folder.mkdir()
        for variant in VARIANTS:
            title = labels[variant]
            data = load_prepared(Path("data/prepared") / f"{variant}.npz")
            explainer = Explainer(models.load(model_path(variant, seed)), data, params["method"])
            plots.cam_grid(
                explainer.right_and_wrong(params["classes"], params["images_per_row"]),
                folder / f"{variant}_cam.png",
                f"{method}, {title} (caption: true → predicted, p)",
            )
            plots.cam_grid(
                explainer.confusions(params["confused_pairs"], params["images_per_row"]),
                folder / f"{variant}_confused_cam.png",
                f"{method}, {title}: most confident mistakes between the most confused classes",
            )
            plots.cam_grid(
                explainer.surest_mistakes(params["mistake_rows"], params["images_per_row"]),
                folder / f"{variant}_mistakes_cam.png",
                f"{method}, {title}: the most confident mistakes",
            )
            plots.mean_maps(
                explainer.class_means(params["mean_images"]),
                folder / f"{variant}_mean_cam.png",
                f"Mean {method} map per class over right calls, {title}",
            )
            print(f"{variant}: {method} figures -> reports/cam/{variant}_*cam.png")


if __name__ == "__main__":
    run_stage(main)
