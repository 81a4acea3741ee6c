"""airbench94 (PyTorch) against our Keras recipes on this CPU: accuracy per epoch, time, throughput, FLOP/s.

    pip install torch==2.13.0             # the CPU build of PyTorch; not in requirements.txt
    python -m bench.race                  # after dvc repro preprocess: reads data/prepared/rgb.npz
    python -m bench.race --epochs 3       # the first 3 epochs of each (full schedules): no time-to-accuracy ratio
    python -m bench.race --only airbench94 ours_airbench_net   # the throughput ratio alone
    python -m bench.race --ours-epochs 10  # ours' recipe on a 10-epoch schedule, as airbench94 sizes its own
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 \
        python -m bench.race --float32    # an AVX-512 CPU limited to AVX2: a stand-in for a CPU without bfloat16

Three trainers on the pipeline's split (40,000 training images), in one process: airbench94 itself
(bench.airbench_cpu, its own 9.9 epochs), `ours` (params.yaml's RGB recipe) and `ours_airbench_net`
(the RGB recipe with airbench94's network and recipe, `ours_airbench94` of bench.gpu_recipes). They
take turns, one epoch each, so that load from other processes on a shared machine falls on all
of them alike. Only training is timed: each trainer first runs a warm-up that is not (ours: one
step, which traces and compiles it, then the initial weights and
optimizer state are restored; airbench94: two steps of a throwaway copy). airbench94's first
epoch includes its whitening and padding of the data, as airbench times itself. After each
epoch, untimed, each is scored on the validation and the test split, without and with test-time
augmentation: ours with evaluate's (params.yaml's evaluate.tta, cifarcam.study.tta), airbench94 with
its own (mirror and 1-pixel shifts, 6 views).

The summary's ratios, each on the same CPU in the same command:
1. time to accuracy: ours' training time up to the first epoch whose test accuracy with TTA
   reaches airbench94's after its 9.9 epochs, divided by airbench94's training time (goal ≤ 1);
2. throughput on airbench94's network: ours_airbench_net's training images/s divided by
   airbench94's (goal ≥ 1);
3. FLOP/s: each trainer's training FLOPs per second divided by those of a large matrix product in
   the same precision (the faster of TensorFlow's and PyTorch's) on the same cores (goal ≥ 0.7).
   A step's FLOPs are counted analytically from the convolutions' and dense layers' shapes:
   forward 2 per multiply-add, backward twice the forward; other layers are not counted.
Precision: bfloat16 for all (Keras mixed_bfloat16, PyTorch bfloat16 autocast) where the CPU has
native bfloat16 (cifarcam.training.precision), float32 for all elsewhere or with --float32.
"""

import argparse
import math
import os
import time

import numpy as np

from cifarcam.core.params import load_section
from cifarcam.core.params import recipe as configured_recipe
from cifarcam.data.prepare import load_arrays, to_unit_range
from cifarcam.study import tta
from cifarcam.training import models, precision, recipe
from cifarcam.training.batches import Batches
from cifarcam.training.train import make_deterministic

AIRBENCH, OURS, OURS_AIRBENCH_NET = "airbench94", "ours", "ours_airbench_net"
TRAINERS = (AIRBENCH, OURS, OURS_AIRBENCH_NET)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")  # what the kernels can use
# Caps that make an AVX-512 CPU run as an AVX2 one: oneDNN (TensorFlow's and PyTorch's), PyTorch's own kernels,
# MKL (PyTorch's matrix products), XLA; each variable, and what its value holds when it caps
ISA_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "",
    "ATEN_CPU_CAPABILITY": "",
    "MKL_ENABLE_INSTRUCTIONS": "",
    "XLA_FLAGS": "--xla_cpu_max_isa",
}
MATMUL_SIZE = 4096


def recipes(dtype_policy, seed=None, ours_epochs=None):
    """The Keras recipes in the race: RGB's as configured (its schedule `ours_epochs` long if given),
    and RGB's on airbench94's recipe."""
    from bench.gpu_recipes import GPU_RECIPES

    section = configured_recipe("rgb") | {"precision": dtype_policy}
    section |= {"seed": seed} if seed is not None else {}
    ours = section | ({"epochs": ours_epochs} if ours_epochs else {})
    return {OURS: ours, OURS_AIRBENCH_NET: section | GPU_RECIPES["ours_airbench94"] | {"precision": dtype_policy}}


def forward_flops(network):
    """FLOPs of one image's forward pass through the convolutions and dense layers: 2 per multiply-add."""
    total = 0
    for layer in network.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:  # (height, width, in, out) for a convolution, (in, out) for a dense layer
            total += 2 * math.prod(kernel.shape) * math.prod(layer.output.shape[1:-1])
    return total


def training_flops(network):
    """FLOPs of one image's training step: the forward pass, and a backward pass of twice its cost."""
    return 3 * forward_flops(network)


def images_per_second(epochs, clock="seconds"):
    """Images trained per second of wall time (or of another clock the epochs record)."""
    return sum(epoch["images"] for epoch in epochs) / sum(epoch[clock] for epoch in epochs)


def time_to_accuracy(epochs, target):
    """Training seconds up to the first epoch whose test accuracy with TTA reaches `target`; None if none does."""
    elapsed = 0.0
    for epoch in epochs:
        elapsed += epoch["seconds"]
        if epoch["test"]["tta"] >= target:
            return elapsed
    return None


class KerasTrainer:
    """One of our recipes, trained one epoch per call by the pipeline's own trainer."""

    def __init__(self, params, data):
        make_deterministic(params["seed"])
        self.params, self.epochs, self.epochs_done = params, params["epochs"], 0
        self.trainer = recipe.compile_trainer(params, data["x_train"])
        self.x_train, self.y_train = data["x_train"], recipe.one_hot(data["y_train"])
        self.splits = {split: (to_unit_range(data[f"x_{split}"]), data[f"y_{split}"]) for split in ("val", "test")}
        self.callbacks = recipe.callbacks(params, self.trainer, len(self.x_train))
        self.tta = load_section("evaluate")["tta"]

    @property
    def done(self):
        return self.epochs_done >= self.epochs

    def warm_up(self):
        trainer, batch = self.trainer, self.params["batch_size"]
        trainer.optimizer.build(trainer.trainable_variables)
        state = trainer.variables + trainer.optimizer.variables
        initial = [variable.numpy() for variable in state]
        trainer.fit(Batches(self.x_train[:batch], self.y_train[:batch], batch, seed=0), epochs=1, verbose=0)
        for variable, value in zip(state, initial, strict=True):
            variable.assign(value)

    def train_epoch(self):
        epoch = self.epochs_done
        batches = Batches(self.x_train, self.y_train, self.params["batch_size"], self.params["seed"], epoch)
        self.trainer.fit(
            batches, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, callbacks=self.callbacks, verbose=0
        )
        self.epochs_done += 1
        return len(batches) * batches.batch_size

    def accuracy(self, split):
        images, labels = self.splits[split]
        views = tta.predict_views(self.trainer.layers[-1], images, self.tta)
        return {
            "none": float((views[0].argmax(1) == labels).mean()),
            "tta": float((tta.average(views).argmax(1) == labels).mean()),
        }


def matmul_flops(bfloat16, size=MATMUL_SIZE, repeats=4):
    """FLOP/s of a size x size matrix product in TensorFlow and in PyTorch, after one untimed product each."""
    import tensorflow as tf
    import torch

    results = {}
    a = tf.random.normal((size, size), dtype=tf.bfloat16 if bfloat16 else tf.float32)
    b = torch.randn(size, size, dtype=torch.bfloat16 if bfloat16 else torch.float32)
    for name, product in (("TensorFlow", lambda: tf.linalg.matmul(a, a).numpy()), ("PyTorch", lambda: torch.mm(b, b))):
        product()
        started = time.perf_counter()
        for _ in range(repeats):
            product()
        results[name] = 2 * size**3 * repeats / (time.perf_counter() - started)
    return results


def race(trainers, max_epochs, budget_s, bfloat16):
    """Each trainer in turn trains one epoch and is scored, until all are done or out of epochs or time.

    Before and after each round the matrix product is timed too, so that it sees the same load as the epochs.
    Returns each trainer's epochs and the matrix products' FLOP/s of each round.
    """
    history, products = {name: [] for name in trainers}, []
    started = time.perf_counter()
    while True:
        products.append(matmul_flops(bfloat16))
        running = [name for name, trainer in trainers.items() if not trainer.done and len(history[name]) < max_epochs]
        if not running:
            return history, products
        for name in running:
            if time.perf_counter() - started > budget_s:
                print(f"out of time (--budget-minutes): stopping with {name} to run", flush=True)
                return history, products
            trainer = trainers[name]
            before, cpu_before = time.perf_counter(), time.process_time()
            images = trainer.train_epoch()
            seconds, cpu_seconds = time.perf_counter() - before, time.process_time() - cpu_before
            epoch = {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "images": images,
                "val": trainer.accuracy("val"),
                "test": trainer.accuracy("test"),
            }
            history[name].append(epoch)
            print(epoch_line(name, len(history[name]), math.ceil(trainer.epochs), history[name]), flush=True)


def epoch_line(name, number, epochs, history):
    epoch = history[-1]
    scores = " | ".join(
        f"{split} {epoch[split]['none']:.4f}, tta {epoch[split]['tta']:.4f}" for split in ("val", "test")
    )
    so_far = sum(e["seconds"] for e in history)
    return (
        f"{name} epoch {number}/{epochs}: {epoch['seconds']:.1f} s training ({so_far:.1f} s so far; process CPU time "
        f"{epoch['cpu_seconds']:.1f} s), {epoch['images'] / epoch['seconds']:.0f} img/s | {scores}"
    )


def summary(history, flops, peak, machine, dtype_policy, finished):
    """The closing block: machine and precision, then each ratio, or why it was not measured."""
    lines = [
        f"machine: {machine}",
        f"precision: {dtype_policy} for our trainers, "
        f"{'bfloat16 autocast' if 'bfloat16' in dtype_policy else 'float32'} for airbench94",
    ]
    ran = {name: epochs for name, epochs in history.items() if epochs}
    for name, epochs in ran.items():
        speed = images_per_second(epochs)
        lines.append(
            f"{name}: {len(epochs)} epochs, {sum(e['seconds'] for e in epochs):.1f} s training, {speed:.0f} img/s, "
            f"test accuracy {epochs[-1]['test']['none']:.4f}, tta {epochs[-1]['test']['tta']:.4f}, "
            f"{speed * flops[name] / 1e9:.1f} GFLOP/s ({flops[name] / 1e6:.0f} MFLOP per training image)"
        )
    best_name, best = max(peak.items(), key=lambda item: item[1])
    lines.append(
        "matrix product, median over the rounds: "
        + ", ".join(f"{name} {value / 1e9:.1f} GFLOP/s" for name, value in peak.items())
        + f" ({MATMUL_SIZE}², {dtype_policy})"
    )

    if AIRBENCH in ran and OURS in ran and finished[AIRBENCH]:
        target, reference = ran[AIRBENCH][-1]["test"]["tta"], sum(e["seconds"] for e in ran[AIRBENCH])
        reached = time_to_accuracy(ran[OURS], target)
        if reached is None:
            best, seconds = max(e["test"]["tta"] for e in ran[OURS]), sum(e["seconds"] for e in ran[OURS])
            result = f"not reached: ours' best test tta {best:.4f} in {len(ran[OURS])} epochs ({seconds:.1f} s)"
        else:
            result = f"{reached / reference:.2f} ({reached:.1f} s / {reference:.1f} s)"
        lines.append(
            f"ratio 1, time to airbench94's test accuracy with TTA {target:.4f}, ours / airbench94 (goal ≤ "
            f"1.0): {result}"
        )
    else:
        lines.append(
            "ratio 1, time to accuracy: not measured (needs airbench94's full 9.9 epochs and ours in the race)"
        )
    if AIRBENCH in ran and OURS_AIRBENCH_NET in ran:
        ratio = images_per_second(ran[OURS_AIRBENCH_NET]) / images_per_second(ran[AIRBENCH])
        by_cpu = images_per_second(ran[OURS_AIRBENCH_NET], "cpu_seconds") / images_per_second(
            ran[AIRBENCH], "cpu_seconds"
        )
        lines.append(
            "ratio 2, training throughput on airbench94's network, ours_airbench_net / airbench94 (goal ≥ "
            f"1.0): {ratio:.2f} "
            f"(per second of process CPU time: {by_cpu:.2f})"
        )
    else:
        lines.append("ratio 2, throughput: not measured (needs airbench94 and ours_airbench_net in the race)")
    for name, epochs in ran.items():
        achieved = images_per_second(epochs) * flops[name]
        lines.append(
            f"ratio 3, training FLOP/s of {name} / {best_name}'s matrix product (goal ≥ 0.7): {achieved / best:.2f}"
        )
    return lines


def machine_line():
    """The CPU and its flags, and any cap on the instructions the libraries may use (ISA_CAPS)."""
    flags = precision.cpu_flags()
    caps = [
        f"{name}={os.environ[name]}"
        for name, mark in ISA_CAPS.items()
        if name in os.environ and mark in os.environ[name]
    ]
    listed = " ".join(flag for flag in CPU_FLAGS if flag in flags) or "none of " + " ".join(CPU_FLAGS)
    line = f"{precision.machine_summary()}; flags: {listed}"
    return line + (f"; instructions capped: {' '.join(caps)}" if caps else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=1000, help="at most this many epochs of each (their schedules stay full length)"
    )
    parser.add_argument("--budget-minutes", type=float, default=math.inf, help="start no epoch after this many minutes")
    parser.add_argument("--only", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--float32", action="store_true", help="float32 for all, even where bfloat16 is native")
    parser.add_argument("--data", default="data/prepared/rgb.npz")
    parser.add_argument(
        "--seed", type=int, help="seed of every trainer (default: airbench94's 0, params.yaml's for ours)"
    )
    parser.add_argument(
        "--ours-epochs", type=int, help="ours on a schedule this many epochs long (default: params.yaml's)"
    )
    args = parser.parse_args()
    try:
        import torch
    except ModuleNotFoundError:
        raise SystemExit(
            "bench.race needs PyTorch, which requirements.txt leaves out: pip install torch==2.13.0"
        ) from None
    import keras
    import tensorflow as tf

    from bench.airbench_cpu import Airbench94

    dtype_policy = "float32" if args.float32 else precision.resolve("auto")
    data = load_arrays(args.data)
    params = recipes(dtype_policy, args.seed, args.ours_epochs)
    machine = machine_line()
    print(
        f"{machine}\nTensorFlow {tf.__version__}, Keras {keras.__version__}, PyTorch {torch.__version__} "
        f"({torch.get_num_threads()} threads); {dtype_policy}",
        flush=True,
    )
    trainers = {}
    for name in args.only:
        trainers[name] = (
            Airbench94(data, bfloat16="bfloat16" in dtype_policy, seed=args.seed or 0)
            if name == AIRBENCH
            else KerasTrainer(params[name], data)
        )
        trainers[name].warm_up()
    history, products = race(trainers, args.epochs, args.budget_minutes * 60, "bfloat16" in dtype_policy)
    flops = {
        name: training_flops(
            models.build(params[OURS_AIRBENCH_NET if name == AIRBENCH else name], data["x_train"].shape[1:])
        )
        for name in trainers
    }
    peak = {framework: float(np.median([round_[framework] for round_ in products])) for framework in products[0]}
    finished = {name: trainer.done for name, trainer in trainers.items()}
    print("\n" + "\n".join(summary(history, flops, peak, machine, dtype_policy, finished)))


if __name__ == "__main__":
    main()
