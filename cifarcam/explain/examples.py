"""Which test images to explain, and their maps: the model's most confident calls among those that fit a mask."""

import numpy as np

from cifarcam.explain import cam, methods
from cifarcam.study import metrics


def most_confident(mask, probabilities, count):
    """Indices of up to `count` images where `mask` holds, most confident prediction first."""
    candidates = np.flatnonzero(mask)
    confidence = probabilities[candidates].max(axis=1)
    return candidates[np.argsort(-confidence, kind="stable")][:count]


def spread(total, count):
    """`count` indices spread evenly over range(total): a sample that covers every class of a sorted set."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).astype(int))


class Explainer:
    """One model's predictions on the test set (those of the tables: with test-time augmentation), and its maps
    of the predicted class for chosen images, by one method at one layer (None for a pixel method)."""

    def __init__(self, model, data, probabilities, method, layer):
        self.model, self.method, self.layer = model, method, layer
        self.images, self.truth, self.classes = data["x_test"], data["y_test"], data["classes"]
        self.probabilities = probabilities
        self.predicted = probabilities.argmax(axis=1)

    def maps(self, indices):
        if len(indices) == 0:
            return np.zeros((0, *self.images.shape[1:3]), np.float32)
        return methods.attribution_maps(
            self.model, self.images[indices], self.predicted[indices], self.method, self.layer
        )

    def cells(self, indices):
        """Overlays with their captions: true → predicted class, confidence."""
        return [
            (
                cam.overlay(self.images[i], heatmap),
                f"{self.classes[self.truth[i]]} → {self.classes[self.predicted[i]]}, "
                f"{self.probabilities[i, self.predicted[i]]:.2f}",
            )
            for i, heatmap in zip(indices, self.maps(indices), strict=True)
        ]

    def row(self, label, mask, count):
        return label, self.cells(most_confident(mask, self.probabilities, count))

    def surest_mistakes(self, rows, count):
        """The `rows * count` most confident wrong calls of any class, `count` to a row, surest first."""
        cells = self.cells(most_confident(self.predicted != self.truth, self.probabilities, rows * count))
        rows = [cells[start : start + count] for start in range(0, len(cells), count)]
        return [(f"mistakes {i * count + 1}–{i * count + len(row)}", row) for i, row in enumerate(rows)] or [
            ("mistakes", [])
        ]

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
                mask = (self.truth == self.classes.index(true_name)) & (
                    self.predicted == self.classes.index(predicted_name)
                )
                rows.append(self.row(f"{true_name} taken for {predicted_name}", mask, count))
        return rows

    def class_means(self, per_class):
        means = {}
        for label, name in enumerate(self.classes):
            right = np.flatnonzero((self.truth == label) & (self.predicted == label))[:per_class]
            maps = self.maps(right)
            means[name] = (maps.mean(axis=0) if len(right) else np.zeros(self.images.shape[1:3]), len(right))
        return means
