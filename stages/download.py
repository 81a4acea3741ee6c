"""Stage download: CIFAR-10 from `download.source` to data/raw/cifar10.npz (uint8 images, labels, class names)."""

import tempfile
from pathlib import Path

import numpy as np

from cifarcam.core.errors import run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.params import load_section
from cifarcam.data import download, readers
from cifarcam.data.prepare import save_arrays

OUTPUT = Path("data/raw/cifar10.npz")


def main():
    params = load_section("download")
    source = params["source"]
    with tempfile.TemporaryDirectory(prefix="cifar10-download-") as scratch:
        if download.is_url(source):
            path = download.fetch(
                source, Path(scratch) / Path(source).name, retries=params["retries"], timeout_s=params["timeout_s"]
            )
        else:
            path = download.local_path(source)
        print(f"reading {path}")
        x_train, y_train, x_test, y_test, classes = readers.read_source(path, params["md5"])
    with atomic_output(OUTPUT) as partial:
        save_arrays(partial, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=np.array(classes))
    print(f"{len(x_train)} training and {len(x_test)} test images of {len(classes)} classes -> {OUTPUT}")


if __name__ == "__main__":
    run_stage(main)
