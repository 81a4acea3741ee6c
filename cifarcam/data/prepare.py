"""The data set as compact uint8 arrays: saving, splitting, grayscale, and loading scaled to [0, 1].

Stage outputs keep uint8 pixels (a float32 copy of CIFAR-10 weighs about 1 GB per version in
DVC's cache); `load_prepared` applies the [0, 1] scaling where the data is used.
"""

import lzma
import math
import zipfile
import zlib

import cv2
import numpy as np
from sklearn.model_selection import train_test_split

from cifarcam.core.errors import PipelineError

SPLITS = ("train", "val", "test")


def save_arrays(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load_arrays(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the earlier stages first (dvc repro)") from None
    # RuntimeError: zipfile's answer to an encryption flag or an unknown compression method (a flipped header bit)
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error, lzma.LZMAError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise PipelineError(
            f"{path} is not a readable array file ({reason}): rebuild it with dvc repro --force"
        ) from None


def stratified_split(labels, val_fraction, seed):
    """Indices (train, val) of a split that keeps each class's share; each part in original order.

    Each side needs at least one image of each class, which is checked first.
    """
    images, classes = len(labels), len(np.unique(labels))
    val = math.ceil(val_fraction * images)
    if val < classes or images - val < classes:
        raise PipelineError(
            f"preprocess.val_fraction {val_fraction} splits {images} training images into {images - val} and {val}: "
            f"each side needs at least one per class ({classes}); change val_fraction or use more images"
        )
    indices = np.arange(images)
    train, val = train_test_split(indices, test_size=val_fraction, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(val)


def first_per_class(labels, limit):
    """Indices of the first `limit` items of each class, in original order (all when limit is None)."""
    if limit is None:
        return np.arange(len(labels))
    keep = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        keep[np.flatnonzero(labels == label)[:limit]] = True
    return np.flatnonzero(keep)


def to_grayscale(images):
    """RGB uint8 images (N, H, W, 3) to OpenCV's luma (N, H, W, 1), converted as one tall image."""
    n, height, width, _ = images.shape
    gray = cv2.cvtColor(np.ascontiguousarray(images).reshape(n * height, width, 3), cv2.COLOR_RGB2GRAY)
    return gray.reshape(n, height, width, 1)


def prepare(raw, val_fraction, seed, max_per_class=None):
    """Split the official training set into train and validation; leave the test set alone.

    Returns {"rgb": arrays, "gray": arrays}, each with x_/y_ for train, val and test plus classes.
    """
    train, val = stratified_split(raw["y_train"], val_fraction, seed)
    parts = {
        "train": (raw["x_train"][train], raw["y_train"][train]),
        "val": (raw["x_train"][val], raw["y_train"][val]),
        "test": (raw["x_test"], raw["y_test"]),
    }
    rgb, gray = {"classes": raw["classes"]}, {"classes": raw["classes"]}
    for split, (images, labels) in parts.items():
        keep = first_per_class(labels, max_per_class)
        rgb[f"x_{split}"], rgb[f"y_{split}"] = images[keep], labels[keep]
        gray[f"x_{split}"], gray[f"y_{split}"] = to_grayscale(images[keep]), labels[keep]
    return {"rgb": rgb, "gray": gray}


def to_unit_range(images):
    """uint8 pixels to float32 in [0, 1]."""
    return images.astype(np.float32) / 255.0


def load_prepared(path, scale=True):
    """A prepared data set with the images scaled to float32 in [0, 1] (or kept uint8: scale=False)."""
    arrays = load_arrays(path)
    for split in SPLITS:
        arrays[f"x_{split}"] = to_unit_range(arrays[f"x_{split}"]) if scale else arrays[f"x_{split}"]
    arrays["classes"] = [str(name) for name in arrays["classes"]]
    return arrays
