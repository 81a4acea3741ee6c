"""Test-time augmentation: class probabilities averaged over mirrored and shifted views of each image."""

import numpy as np

MODES = ("none", "flip", "flip_translate")


def views(images, mode):
    """The image, its mirror, and both shifted diagonally by a pixel either way (reflect padding)."""
    if mode not in MODES:
        raise ValueError(f"unknown test-time augmentation '{mode}': choose one of {', '.join(MODES)}")
    result = [images]
    if mode in ("flip", "flip_translate"):
        result.append(images[:, :, ::-1])
    if mode == "flip_translate":
        padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
        result += [padded[:, :-2, :-2], padded[:, 2:, 2:]]
        result += [view[:, :, ::-1] for view in result[-2:]]
    return result


def predict_views(model, images, mode="none", batch_size=500):
    """Class probabilities of each test-time view of `images`; the first is of the images as they are."""
    return [model.predict(view, batch_size=batch_size, verbose=0) for view in views(images, mode)]


def predict_probabilities(model, images, mode="none", batch_size=500):
    """Class probabilities averaged over the test-time views of `images`."""
    return average(predict_views(model, images, mode, batch_size))


def average(per_view):
    return sum(per_view) / len(per_view)
