"""Stage gradcam: Grad-CAM grids of cat and dog test images, right and wrong, for both models.

Writes reports/cam/<variant>_cam.png, declared in dvc.yaml as image plots.
"""

from pathlib import Path


from cifarcam import cam, examples, models, plots
from cifarcam.data import VARIANTS, load_prepared
from cifarcam.errors import PipelineError, run_stage
from cifarcam.files import atomic_output
from cifarcam.params import load_section


def main():
    params = load_section("gradcam")
    with atomic_output(Path("reports/cam")) as folder:
        folder.mkdir()
        for variant, title in VARIANTS.items():
            data = load_prepared(Path("data/prepared") / f"{variant}.npz")
            model = models.load(Path("models") / f"{variant}.keras")
            rows = explain(model, data, params["classes"], params["images_per_row"])
            plots.cam_grid(rows, folder / f"{variant}_cam.png", f"Grad-CAM, {title} (caption: true → predicted, p)")
            print(f"{variant}: {sum(len(cells) for _, cells in rows)} Grad-CAM images -> reports/cam/{variant}_cam.png")


def explain(model, data, class_names, per_row):
    classes = data["classes"]
    unknown = sorted(set(class_names) - set(classes))
    if unknown:
        raise PipelineError(f"gradcam.classes has unknown {', '.join(unknown)}: choose from {', '.join(classes)}")
    images, truth = data["x_test"], data["y_test"]
    probabilities = model.predict(images, batch_size=500, verbose=0)
    rows = []
    for name in class_names:
        for correct in (True, False):
            chosen = examples.most_confident(truth, probabilities, classes.index(name), correct, per_row)
            predicted = probabilities[chosen].argmax(axis=1)
            heatmaps = cam.gradcam(model, images[chosen], predicted) if len(chosen) else []
            cells = [
                (cam.overlay(images[i], heatmap), f"{classes[truth[i]]} → {classes[p]}, {probabilities[i, p]:.2f}")
                for i, p, heatmap in zip(chosen, predicted, heatmaps)
            ]
            rows.append((f"{name}, {'right' if correct else 'wrong'}", cells))
    return rows


if __name__ == "__main__":
    run_stage(main)
