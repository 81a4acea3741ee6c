"""Does this checkout train the default recipe to the same weights as another revision, bit for bit?

    python -m bench.same_weights 0163e33                 # after dvc repro preprocess: reads data/prepared
    python -m bench.same_weights HEAD --variant gray --epochs 1 --images 1280 --precision auto

A refactor of the training code makes dvc.lock's code hashes stale, but need not change a single
weight. This trains the variant's recipe (each tree's own params.yaml, at the given
precision) for a few epochs on the first N of a fixed shuffle of the prepared training images,
once with this checkout's code and once with REVISION's (from `git archive`), each in its own
process, and compares every weight. Where they are equal, the last full run stands for the new
code on its machine. float32 by default, which every CPU computes natively.
"""

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TRAIN = """
import inspect, sys, tempfile
from pathlib import Path
import numpy as np
try:
    from cifarcam.core.params import recipe
    from cifarcam.data.prepare import load_prepared
    from cifarcam.training.train import train
except ImportError:  # revisions before the subpackages (2026-12-07): one flat package, a section per variant
    from cifarcam.data import load_prepared
    from cifarcam.params import load_section
    from cifarcam.train import train

    def recipe(variant):
        return load_section(f"train_{variant}")

variant, precision, epochs, images, prepared, out = sys.argv[1:]
uint8 = "scale" in inspect.signature(load_prepared).parameters  # older trainers took float images
data = load_prepared(Path(prepared) / f"{variant}.npz", **({"scale": False} if uint8 else {}))
chosen = np.random.default_rng(0).permutation(len(data["x_train"]))[: int(images)]
data = {"x_train": data["x_train"][chosen], "y_train": data["y_train"][chosen],
        "x_val": data["x_val"][:512], "y_val": data["y_val"][:512]}
params = recipe(variant) | {"precision": precision, "epochs": int(epochs)}
with tempfile.TemporaryDirectory() as scratch:
    model = train(data, params, Path(scratch) / "live", Path(scratch) / "checkpoint")
np.savez(out, *model.get_weights())
"""


def trained_weights(tree, args, out):
    command = [
        sys.executable,
        "-c",
        TRAIN,
        args.variant,
        args.precision,
        str(args.epochs),
        str(args.images),
        str(ROOT / "data/prepared"),
        str(out),
    ]
    # one TensorFlow op at a time, as cifarcam now sets it: older revisions let ops run side by side, not reproducibly
    subprocess.run(
        command, cwd=tree, env=os.environ | {"PYTHONPATH": str(tree), "TF_NUM_INTEROP_THREADS": "1"}, check=True
    )
    return np.load(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--variant", default="rgb", choices=["gray", "rgb"])
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=2560)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        other = Path(scratch) / "other"
        archive = subprocess.run(["git", "archive", args.revision], cwd=ROOT, capture_output=True, check=True).stdout
        tarfile.open(fileobj=BytesIO(archive)).extractall(other, filter="data")
        ours = trained_weights(ROOT, args, Path(scratch) / "ours.npz")
        theirs = trained_weights(other, args, Path(scratch) / "theirs.npz")
        differing = [name for name in ours.files if not np.array_equal(ours[name], theirs[name])]
    print(
        f"{len(ours.files)} weight arrays after {args.epochs} epochs of {args.images} {args.variant} images "
        f"({args.precision}):"
    )
    print(
        "identical, bit for bit"
        if not differing
        else f"{len(differing)} differ (largest difference "
        f"{max(float(np.abs(ours[n] - theirs[n]).max()) for n in differing):.3g})"
    )


if __name__ == "__main__":
    main()
