"""Test-time augmentation: class probabilities averaged over mirrored and shifted views of each image."""

import numpy as np

from cifarcam.core.choices import TTA_MODES


def views(images, mode):
    """The image, its mirror, and both shifted diagonally by a pixel either way (reflect padding)."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation '{mode}': choose one of {', '.join(TTA_MODES)}")
    result = [images]
    if mode in ("flip", "flip_translate"):
        result.append(images[:, :, ::-1])
    if mode == "flip_translate":
        result += [shifted(images, -1, -1), shifted(images, 1, 1)]
        result += [view[:, :, ::-1] for view in result[-2:]]
    return result


def shifted(images, rows, columns):
    """The (N, H, W, C) images moved so that pixel (i, j) shows (i + rows, j + columns), reflect-padded at the edges."""
    pad = max(abs(rows), abs(columns))
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect")
    height, width = images.shape[1:3]
    return padded[:, pad + rows : pad + rows + height, pad + columns : pad + columns + width]


def predict_views(model, images, mode="none", batch_size=500):
    """Class probabilities of each test-time view of `images`; the first is of the images as they are."""
    return [model.predict(view, batch_size=batch_size, verbose=0) for view in views(images, mode)]


def predict_probabilities(model, images, mode="none", batch_size=500):
    """Class probabilities averaged over the test-time views of `images`."""
    return average(predict_views(model, images, mode, batch_size))


def average(per_view):
    return sum(per_view) / len(per_view)
