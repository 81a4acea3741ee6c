"""Stage gradcam: class activation maps of both models on the test set, as three figures per model.

reports/cam/<variant>_cam.png           cat and dog (gradcam.classes), right and wrong calls
reports/cam/<variant>_confused_cam.png  the worst mistakes between the most confused class pairs
reports/cam/<variant>_mean_cam.png      the mean map of each class over its right calls

Each overlay explains the predicted class. Declared in dvc.yaml as image plots.
"""

from pathlib import Path

import numpy as np

from cifarcam import cam, examples, metrics, models, plots
from cifarcam.data import VARIANTS, load_prepared
from cifarcam.errors import run_stage
from cifarcam.files import atomic_output
from cifarcam.params import load_section


def main():
    params = load_section("gradcam")
    with atomic_output(Path("reports/cam")) as folder:
        folder.mkdir()
        for variant, title in VARIANTS.items():
            data = load_prepared(Path("data/prepared") / f"{variant}.npz")
            explainer = Explainer(models.load(Path("models") / f"{variant}.keras"), data, params["method"])
            method = params["method"].replace("gradcam", "Grad-CAM")
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
            plots.mean_maps(
                explainer.class_means(params["mean_images"]),
                folder / f"{variant}_mean_cam.png",
                f"Mean {method} map per class over right calls, {title}",
            )
            print(f"{variant}: {method} figures -> reports/cam/{variant}_*cam.png")


class Explainer:
    """One model's predictions on the test set, and its maps for chosen images."""

    def __init__(self, model, data, method):
        self.model, self.method = model, method
        self.images, self.truth, self.classes = data["x_test"], data["y_test"], data["classes"]
        self.probabilities = model.predict(self.images, batch_size=500, verbose=0)
        self.predicted = self.probabilities.argmax(axis=1)

    def maps(self, indices):
        if len(indices) == 0:
            return np.zeros((0, *self.images.shape[1:3]), np.float32)
        return cam.class_activation_maps(self.model, self.images[indices], self.predicted[indices], self.method)

    def row(self, label, mask, count):
        chosen = examples.most_confident(mask, self.probabilities, count)
        cells = [
            (cam.overlay(self.images[i], heatmap), f"{self.classes[self.truth[i]]} → {self.classes[self.predicted[i]]}, "
             f"{self.probabilities[i, self.predicted[i]]:.2f}")
            for i, heatmap in zip(chosen, self.maps(chosen))
        ]
        return label, cells

    def right_and_wrong(self, class_names, count):
        rows = []
        for name in class_names:
            of_class = self.truth == self.classes.index(name)
            rows.append(self.row(f"{name}, right", of_class & (self.predicted == self.truth), count))
            rows.append(self.row(f"{name}, wrong", of_class & (self.predicted != self.truth), count))
        return rows

    def confusions(self, pairs, count):
        rows = []
        for pair in metrics.most_confused_pairs(self.truth, self.predicted, self.classes, top=pairs):
            for true_name, predicted_name in (pair["pair"], pair["pair"][::-1]):
                mask = (self.truth == self.classes.index(true_name)) & (self.predicted == self.classes.index(predicted_name))
                rows.append(self.row(f"{true_name} taken for {predicted_name}", mask, count))
        return rows

    def class_means(self, per_class):
        means = {}
        for label, name in enumerate(self.classes):
            right = np.flatnonzero((self.truth == label) & (self.predicted == label))[:per_class]
            maps = self.maps(right)
            means[name] = (maps.mean(axis=0) if len(right) else np.zeros(self.images.shape[1:3]), len(right))
        return means


if __name__ == "__main__":
    run_stage(main)
