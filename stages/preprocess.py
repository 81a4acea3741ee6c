"""Stage preprocess: stratified train/validation split and OpenCV grayscale, stored as uint8.

Scaling to [0, 1] happens where the data is loaded (cifarcam.data.load_prepared), which keeps
each version of the prepared data at a quarter of its float32 size in DVC's cache.
"""

import math
from pathlib import Path

from cifarcam import data
from cifarcam.errors import PipelineError, run_stage
from cifarcam.files import atomic_output
from cifarcam.params import load_section

RAW = Path("data/raw/cifar10.npz")
OUTPUT = Path("data/prepared")


def main():
    params = load_section("preprocess")
    raw = data.load_arrays(RAW)
    check_split_size(len(raw["y_train"]), len(raw["classes"]), params["val_fraction"])
    prepared = data.prepare(raw, params["val_fraction"], params["seed"], params["max_per_class"])
    with atomic_output(OUTPUT) as partial:
        partial.mkdir()
        for variant, arrays in prepared.items():
            data.save_arrays(partial / f"{variant}.npz", **arrays)
    sizes = ", ".join(f"{split} {len(prepared['rgb'][f'y_{split}'])}" for split in data.SPLITS)
    print(f"{sizes} images -> {OUTPUT}/rgb.npz, {OUTPUT}/gray.npz")


def check_split_size(images, classes, val_fraction):
    """A stratified split needs at least one image of each class on each side."""
    val = math.ceil(val_fraction * images)
    if val < classes or images - val < classes:
        raise PipelineError(
            f"preprocess.val_fraction {val_fraction} splits {images} training images into {images - val} and {val}: "
            f"each side needs at least one per class ({classes}); change val_fraction or use more images"
        )


if __name__ == "__main__":
    run_stage(main)
