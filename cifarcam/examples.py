"""Which test images to explain: the model's most confident calls among those that fit a mask."""

import numpy as np


def most_confident(mask, probabilities, count):
    """Indices of up to `count` images where `mask` holds, most confident prediction first."""
    candidates = np.flatnonzero(mask)
    confidence = probabilities[candidates].max(axis=1)
    return candidates[np.argsort(-confidence, kind="stable")][:count]


def spread(total, count):
    """`count` indices spread evenly over range(total): a sample that covers every class of a sorted set."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).astype(int))
