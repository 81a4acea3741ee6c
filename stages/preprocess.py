"""Stage preprocess: stratified train/validation split and OpenCV grayscale, stored as uint8.

Scaling to [0, 1] happens where the data is loaded (cifarcam.data.load_prepared), which keeps
each version of the prepared data at a quarter of its float32 size in DVC's cache.
"""

from pathlib import Path

from cifarcam import data
from cifarcam.errors import run_stage
from cifarcam.files import atomic_output
from cifarcam.params import load_section

RAW = Path("data/raw/cifar10.npz")
OUTPUT = Path("data/prepared")


def main():
    params = load_section("preprocess")
    raw = data.load_arrays(RAW)
    prepared = data.prepare(raw, params["val_fraction"], params["seed"], params["max_per_class"])
    with atomic_output(OUTPUT) as partial:
        partial.mkdir()
        for variant, arrays in prepared.items():
            data.save_arrays(partial / f"{variant}.npz", **arrays)
    sizes = ", ".join(f"{split} {len(prepared['rgb'][f'y_{split}'])}" for split in data.SPLITS)
    print(f"{sizes} images -> {OUTPUT}/rgb.npz, {OUTPUT}/gray.npz")


if __name__ == "__main__":
    run_stage(main)
