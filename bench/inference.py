"""Prediction and Grad-CAM throughput (images/s) of a bfloat16 model, as saved and as `models.load` gives it here.

    python -m bench.inference            # the RGB recipe's network of params.yaml, untrained weights

On a CPU without native bfloat16, `models.load` makes a bfloat16 model compute in float32; this
measures what that costs or buys for evaluate and gradcam, both ways in one process. Compare the
two columns, not runs: the machines are noisy.
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from cifarcam.core.params import recipe as configured_recipe
from cifarcam.explain import methods
from cifarcam.training import models, precision

NATIVE_BFLOAT16_CPUINFO = "flags\t\t: avx2 avx512_bf16\n"  # a Zen 4's flag: load keeps the model as saved


def images_per_second(work, model, images):
    work(model, images[:50])  # warm-up
    started = time.perf_counter()
    work(model, images)
    return len(images) / (time.perf_counter() - started)


def predict(model, images):
    model.predict(images, batch_size=500, verbose=0)


def explain(model, images):
    methods.attribution_maps(model, images, np.arange(len(images)) % models.NUM_CLASSES, "gradcam")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="predicted images (Grad-CAM gets a tenth)")
    args = parser.parse_args()
    params = configured_recipe("rgb")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    network = models.build(params, (32, 32, 3))
    keras.mixed_precision.set_global_policy("float32")
    images = np.random.default_rng(0).random((args.images, 32, 32, 3)).astype("float32")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        network.save(Path(folder) / "model.keras")
        (Path(folder) / "cpuinfo").write_text(NATIVE_BFLOAT16_CPUINFO)
        for name, cpuinfo in (("as saved", Path(folder) / "cpuinfo"), ("as loaded here", precision.CPUINFO)):
            model = models.load(Path(folder) / "model.keras", cpuinfo=cpuinfo)
            convolution = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
            speeds = (
                images_per_second(predict, model, images),
                images_per_second(explain, model, images[: args.images // 10]),
            )
            rows.append((f"{name} (convolutions in {convolution.compute_dtype})", *speeds))
    print(f"\nmachine: {precision.machine_summary()}; {params['arch']} {params['widths']}, mixed_bfloat16 when saved")
    print("| model | prediction, images/s (batch 500) | Grad-CAM, images/s |\n|---|---|---|")
    for name, prediction, maps in rows:
        print(f"| {name} | {prediction:.0f} | {maps:.0f} |")


if __name__ == "__main__":
    main()
