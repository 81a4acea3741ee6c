"""Stage preprocess: stratified train/validation split and OpenCV grayscale, stored as uint8.

Scaling to [0, 1] happens where the data is loaded (cifarcam.data.prepare.load_prepared), which keeps
each version of the prepared data at a quarter of its float32 size in DVC's cache.
"""

from pathlib import Path

from cifarcam.core.errors import run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.params import load_section
from cifarcam.data import prepare

RAW = Path("data/raw/cifar10.npz")
OUTPUT = Path("data/prepared")


def main():
    params = load_section("preprocess")
    raw = prepare.load_arrays(RAW)
    prepared = prepare.prepare(raw, params["val_fraction"], params["seed"], params["max_per_class"])
    with atomic_output(OUTPUT) as partial:
        partial.mkdir()
        for variant, arrays in prepared.items():
            prepare.save_arrays(partial / f"{variant}.npz", **arrays)
    sizes = ", ".join(f"{split} {len(prepared['rgb'][f'y_{split}'])}" for split in prepare.SPLITS)
    print(f"{sizes} images -> {OUTPUT}/rgb.npz, {OUTPUT}/gray.npz")


if __name__ == "__main__":
    run_stage(main)
