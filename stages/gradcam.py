"""Stage gradcam: the first seed's two models explained, and the explanations tested.

reports/explanations.json              the method chosen on validation, every method × layer's faithfulness
                                       (ROAD, deletion, insertion; 95% intervals) beside null maps of the same
                                       resolution, the model-randomisation check, the diffuseness finding
                                       retested and what colour changes in attention (DVC metrics)
reports/cam/<variant>_methods.png      every method at every layer on a few test images
reports/cam/<variant>_cam.png          cat and dog (gradcam.classes), right and wrong calls
reports/cam/<variant>_confused_cam.png the worst mistakes between the most confused class pairs
reports/cam/<variant>_mistakes_cam.png the most confident mistakes of any class
reports/cam/<variant>_mean_cam.png     the mean map of each class over its right calls

The last four use the chosen method and layer. Each map explains the class predicted with test-time
augmentation, as the tables do: evaluate's predictions, data/predictions.npz.
"""

import json
import time
from pathlib import Path

import numpy as np

from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import VARIANTS, model_labels, model_path
from cifarcam.core.params import load_section, recipes, seeds
from cifarcam.data.prepare import load_prepared
from cifarcam.explain import assessment, cam, examples, geometry, methods, scoring
from cifarcam.study import plots
from cifarcam.training import models as networks

REPORTS = Path("reports")
PREDICTIONS = Path("data/predictions.npz")


def main():
    params, labels = load_section("gradcam"), model_labels(recipes())
    models = {variant: networks.load(model_path(variant, seeds()[0])) for variant in VARIANTS}
    for model in models.values():
        for layer in params["layers"]:
            geometry.block(model, layer)  # an unknown layer stops the stage before any work
    data = {variant: load_prepared(Path("data/prepared") / f"{variant}.npz") for variant in VARIANTS}
    predictions = read_predictions()
    start = time.perf_counter()
    explanations, (method, layer) = assessment.assess(models, data, params, predictions)
    probabilities = {variant: predictions[variant]["test"] for variant in VARIANTS}
    for variant in VARIANTS:
        times = ", ".join(f"{name} {t['maps']:.1f} s" for name, t in explanations[variant]["seconds"].items())
        print(f"{variant}: maps of {explanations[variant]['images']} test images at every layer: {times}")
    print(
        f"chosen on validation: {method} at {layer} ({explanations['choice']['resolution']}); "
        f"scores, nulls, sanity and attention in {time.perf_counter() - start:.0f} s"
    )
    with atomic_output(REPORTS / "cam") as folder:
        folder.mkdir()
        for variant, model in models.items():
            explainer = examples.Explainer(
                model, data[variant], probabilities[variant], method, scoring.target(model, layer)
            )
            draw_figures(explainer, params, folder, variant, f"{methods.TITLES[method]} at {layer}, {labels[variant]}")
            draw_method_grid(
                model, data[variant], probabilities[variant], params, folder / f"{variant}_methods.png", labels[variant]
            )
    with atomic_output(REPORTS / "explanations.json") as path:
        path.write_text(json.dumps(explanations, indent=2) + "\n")
    print(f"figures -> reports/cam/, scores -> {REPORTS / 'explanations.json'}")


def read_predictions():
    """{variant: {"test": ..., "val": ...}}: the evaluate stage's TTA probabilities, so that the maps explain
    the tables' predictions."""
    if not PREDICTIONS.is_file():
        raise PipelineError(f"{PREDICTIONS} not found: run the evaluate stage first (dvc repro)")
    with np.load(PREDICTIONS) as saved:
        return {variant: {split: saved[f"{variant}_{split}"] for split in ("test", "val")} for variant in VARIANTS}


def draw_figures(explainer, params, folder, variant, title):
    row = params["images_per_row"]
    plots.cam_grid(
        explainer.right_and_wrong(params["classes"], row),
        folder / f"{variant}_cam.png",
        f"{title} (caption: true → predicted, p)",
    )
    plots.cam_grid(
        explainer.confusions(params["confused_pairs"], row),
        folder / f"{variant}_confused_cam.png",
        f"{title}: most confident mistakes between the most confused classes",
    )
    plots.cam_grid(
        explainer.surest_mistakes(params["mistake_rows"], row),
        folder / f"{variant}_mistakes_cam.png",
        f"{title}: the most confident mistakes",
    )
    plots.mean_maps(
        explainer.class_means(params["mean_images"]),
        folder / f"{variant}_mean_cam.png",
        f"Mean map per class over right calls, {title}",
    )


def draw_method_grid(model, data, probabilities, params, path, label):
    chosen = examples.spread(len(data["x_test"]), params["grid_images"])
    images, predicted = data["x_test"][chosen], probabilities[chosen].argmax(axis=1)
    columns = {layer: f"{layer} {scoring.resolution(model, layer)}" for layer in [*params["layers"], scoring.PIXELS]}
    overlays = {}
    for method, layer in scoring.candidates("auto", "auto", params["layers"]):
        maps = methods.attribution_maps(model, images, predicted, method, scoring.target(model, layer))
        overlays.setdefault(methods.TITLES[method], {})[columns[layer]] = [
            cam.overlay(image, heatmap) for image, heatmap in zip(images, maps, strict=True)
        ]
    pictures = [
        (cam.overlay(image, heatmap * 0), f"{data['classes'][data['y_test'][i]]} → {data['classes'][p]}")
        for i, image, heatmap, p in zip(chosen, images, maps, predicted, strict=True)
    ]
    plots.method_grid(pictures, overlays, list(columns.values()), path, f"Every method at every layer, {label}")


if __name__ == "__main__":
    run_stage(main)
