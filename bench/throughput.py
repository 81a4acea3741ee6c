"""Training throughput (images/s) of each architecture on this machine, and the peak memory.

    python -m bench.throughput                      # the gray and RGB recipes of params.yaml
    python -m bench.throughput --precision mixed_bfloat16   # bfloat16 (auto takes it only where it is native)
    python -m bench.throughput --activation relu       # what ReLU buys
    python -m bench.throughput --arch resnet           # another architecture (with its own batch size: --batch-size)
    python -m bench.throughput --xla                   # what XLA buys (Keras leaves it off on a CPU-only TensorFlow)

Each recipe trains on random images (throughput does not depend on their content) for a few
warm-up steps, whose compilation is left out, then for `--steps` timed steps. The study's CNNs
run in the same command as the reference: compare ratios, not absolute figures.
"""

import argparse
import copy
import resource
import time

import numpy as np

from cifarcam.core.params import recipe as configured_recipe
from cifarcam.training import precision, recipe

WARMUP_STEPS = 3


def images_per_second(params, channels, steps, xla):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (params["batch_size"], 32, 32, channels), dtype=np.uint8)
    trainer = recipe.compile_trainer(params, images)
    trainer.jit_compile = xla or trainer.jit_compile
    labels = recipe.one_hot(rng.integers(0, 10, params["batch_size"]))
    for _ in range(WARMUP_STEPS):
        trainer.train_on_batch(images, labels)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_on_batch(images, labels)
    return steps * params["batch_size"] / (time.perf_counter() - started)


def recipes(params, overrides):
    """The two configured recipes, and each variant's study CNN with the same batch size."""
    for variant, channels in (("gray", 1), ("rgb", 3)):
        section = params[f"train_{variant}"] | {key: value for key, value in overrides.items() if value is not None}
        yield f"{variant}: {section['arch']} {section['widths']}", section, channels
        study = section | {
            "arch": f"study_{variant}_cnn",
            "widths": None,
            "optimizer": "adamw",
            "weight_decay": 0,
            "weight_decay_mode": "decoupled",
            "schedule": "constant",
        }
        yield f"{variant}: study_{variant}_cnn (reference)", study, channels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--precision")
    parser.add_argument("--activation")
    parser.add_argument("--arch")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA")
    args = parser.parse_args()
    params = {f"train_{variant}": configured_recipe(variant) for variant in ("gray", "rgb")}
    overrides = {
        "batch_size": args.batch_size,
        "precision": args.precision,
        "activation": args.activation,
        "arch": args.arch,
    }
    rows = [
        (name, images_per_second(copy.deepcopy(section), channels, args.steps, args.xla))
        for name, section, channels in recipes(params, overrides)
    ]
    print(f"\nmachine: {precision.machine_summary()}; XLA forced on: {args.xla}")
    print("| recipe | images/s | s per epoch of 40,000 |\n|---|---|---|")
    for name, speed in rows:
        print(f"| {name} | {speed:.0f} | {40_000 / speed:.0f} |")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
