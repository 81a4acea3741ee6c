"""Null maps: what a faithfulness score is worth next to maps that know nothing of the model.

A map at a layer's resolution is smooth between its cells, and smoothness alone scores well when
the model relies on compact regions. So each null has the resolution of the maps it is compared
with: it is made on the layer's cells and placed on the image as the real maps are
(`geometry.place`); centres=None is the input's own resolution, for the pixel-level methods.

- random: i.i.d. uniform values on the cells, seeded;
- centre: an isotropic Gaussian bump at the image centre (sigma a quarter of the image side),
  sampled at the cells (CIFAR-10 objects sit in the middle; rank-based scores see only the order);
- edges: the Sobel gradient magnitude of the image's luminance (the gray variant's own weights,
  so gray and RGB models get the same null for the same picture), averaged over each cell's pixels,
  those nearest to its centre (a pixel halfway between two centres counts half to each).
"""

import numpy as np
from scipy import ndimage

from cifarcam.explain import geometry

NULLS = ("random", "centre", "edges")
LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY makes the gray variant
CENTRE_SIGMA = 0.25  # of the image's side


def null_maps(images, centres, seed=0):
    """{null: (N, H, W) maps in [0, 1]} for each of NULLS, for `images` (N, H, W, C) in [0, 1].

    centres: (ys, xs), the layer's cell centres in input pixels (geometry.cell_centres), or None.
    """
    images = np.asarray(images, np.float32)
    count, height, width = images.shape[:3]
    ys, xs = (np.arange(height), np.arange(width)) if centres is None else centres
    cells = {
        "random": np.random.default_rng(seed).random((count, len(ys), len(xs))),
        "centre": np.repeat(_centre_prior(ys, xs, height, width)[None], count, axis=0),
        "edges": _peak_normalised(_cell_means(edge_magnitude(images), ys, xs)),
    }
    return {name: geometry.place(values, centres, (height, width)) for name, values in cells.items()}


def _centre_prior(ys, xs, height, width):
    """(h, w): a Gaussian bump at the image centre, sampled at the cell centres, peak 1."""
    sigma = CENTRE_SIGMA * min(height, width)
    squared = (np.asarray(ys)[:, None] - (height - 1) / 2) ** 2 + (np.asarray(xs)[None, :] - (width - 1) / 2) ** 2
    bump = np.exp(-squared / (2 * sigma**2))
    return bump / bump.max()


def edge_magnitude(images):
    """(N, H, W): the Sobel gradient magnitude of each image's luminance (the image itself when gray)."""
    gray = images[..., 0] if images.shape[-1] == 1 else images @ np.asarray(LUMINANCE, images.dtype)
    across = ndimage.correlate1d(ndimage.correlate1d(gray, [-1, 0, 1], axis=2), [1, 2, 1], axis=1)
    down = ndimage.correlate1d(ndimage.correlate1d(gray, [-1, 0, 1], axis=1), [1, 2, 1], axis=2)
    return np.hypot(across, down)


def _cell_means(maps, ys, xs):
    """(N, h, w): the mean of each cell's pixels, those nearer to its centre than to any other, per axis."""
    rows, columns = (_nearest(centres, length) for centres, length in zip((ys, xs), maps.shape[1:], strict=True))
    return np.einsum("hH,nHW,wW->nhw", rows, maps, columns)


def _nearest(centres, length):
    """(cells, length) averaging weights: each pixel to its nearest centre, split equally between equally near ones."""
    distance = np.abs(np.asarray(centres, np.float64)[:, None] - np.arange(length)[None, :])
    nearest = np.isclose(distance, distance.min(axis=0))
    weights = nearest / nearest.sum(axis=0)
    return weights / weights.sum(axis=1, keepdims=True)


def _peak_normalised(maps):
    peaks = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
