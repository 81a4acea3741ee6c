"""Which test images to explain: the most confident right and wrong calls for a class."""

import numpy as np


def most_confident(y_true, probabilities, class_index, correct, count):
    """Indices of up to `count` images of `class_index`, right (or wrong) and most confident first."""
    predicted = probabilities.argmax(axis=1)
    mask = (y_true == class_index) & ((predicted == y_true) == correct)
    candidates = np.flatnonzero(mask)
    confidence = probabilities[candidates, predicted[candidates]]
    return candidates[np.argsort(-confidence, kind="stable")][:count]
