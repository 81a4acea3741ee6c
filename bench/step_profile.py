"""Where a training step's time goes on this CPU: its parts in TensorFlow, and each convolution against PyTorch's.

    python -m bench.step_profile                    # params.yaml's RGB recipe
    python -m bench.step_profile --arch airbench    # the RGB recipe with airbench94's (bench.gpu_recipes)
    pip install torch==2.13.0                       # optional, for the PyTorch column; not in requirements.txt

The recipe's step is split into what the compiled step does, each part compiled on its own
(tf.function) and timed on one batch of random images: the augmentation (uint8 to [0, 1],
flip, shift), the forward pass with the loss, the forward and backward pass, and Keras's whole
`train_on_batch` (adds the optimizer, the metrics and Keras's per-step Python), also as it runs
once the whitening bias stops (recipe.FreezeWhiteningBias), where the recipe stops it. Then every
convolution of the network alone, at its input's shape and in the recipe's precision: forward,
gradient of the input and gradient of the kernel, in TensorFlow and in PyTorch (channels-last,
as airbench runs); for the 3x3 convolutions over small maps, also a whole forward and backward
pass through Keras's Conv2D against cifarcam.training.fused's, whose kernel gradient is nine matrix
products. Each figure is the fastest of `--repeats` runs after one untimed run, which
keeps the least disturbed one on a shared machine. Last (with PyTorch), the step's FLOP/s against
a large matrix product's (bench.race's ratio 3) and its ceiling: the ratio a step would reach if
every convolution ran at the fastest kernel measured for it and nothing else took any time.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from bench.race import matmul_flops, recipes, training_flops
from cifarcam.training import fused, precision, recipe

STOPPED_STEP = "train_on_batch, whitening bias stopped"  # the step of the epochs after whiten_bias_epochs


def fastest(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def step_parts(params, repeats):
    """Seconds of each part of one training step of `params`' recipe, at its batch size."""
    rng = np.random.default_rng(0)
    batch = params["batch_size"]
    images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    labels = recipe.one_hot(rng.integers(0, 10, batch))
    trainer = recipe.compile_trainer(params, images)
    scale, augment, network = trainer.layers
    loss_fn, x, y = trainer.loss, tf.constant(images), tf.constant(labels)

    @tf.function
    def augmentation():
        return augment(scale(x), training=True)

    augmented = augmentation()

    @tf.function
    def forward():
        return loss_fn(y, network(augmented, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, network(augmented, training=True))
        return tape.gradient(loss, network.trainable_variables)

    parts = {"augmentation": augmentation, "forward + loss": forward, "forward + backward": forward_backward}
    seconds = {
        name: fastest(lambda f=function: tf.nest.map_structure(lambda t: t.numpy(), f()), repeats)
        for name, function in parts.items()
    }
    seconds["train_on_batch (all)"] = fastest(lambda: trainer.train_on_batch(images, labels), repeats)
    added = recipe.callbacks(params, trainer, batch)
    for freeze in [callback for callback in added if isinstance(callback, recipe.FreezeWhiteningBias)]:  # none: kept
        freeze.set_model(trainer)
        freeze.on_epoch_begin(freeze.epoch)
        seconds[STOPPED_STEP] = fastest(lambda: trainer.train_on_batch(images, labels), repeats)
    return seconds, network


def convolutions(network):
    """(name, input shape, kernel shape, padding) of each 2-D convolution of the network."""
    return [
        (layer.name, tuple(layer.input.shape[1:]), tuple(layer.kernel.shape), layer.padding.upper())
        for layer in network.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]


def tensorflow_convolution(batch, shape, kernel_shape, padding, dtype, repeats):
    x = tf.random.normal((batch, *shape), dtype=dtype)
    w = tf.random.normal(kernel_shape, dtype=dtype)
    dy = tf.nn.conv2d(x, w, 1, padding)
    strides = [1, 1, 1, 1]
    forward = tf.function(lambda: tf.nn.conv2d(x, w, 1, padding))
    input_gradient = tf.function(
        lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=w, out_backprop=dy, strides=strides, padding=padding
        )
    )
    kernel_gradient = tf.function(
        lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=w.shape, out_backprop=dy, strides=strides, padding=padding
        )
    )
    return [fastest(lambda f=f: f().numpy(), repeats) for f in (forward, input_gradient, kernel_gradient)]


def layer_gradients(layer_class, batch, shape, kernel_shape, dtype, repeats):
    """Seconds of a Conv2D layer of `layer_class`: its kernel's gradient, and a forward pass with both gradients."""
    layer = layer_class(kernel_shape[-1], kernel_shape[:2], padding="same", use_bias=False, dtype=dtype.name)
    x = tf.random.normal((batch, *shape), dtype=dtype)
    layer.build(x.shape)

    def gradients(*wanted):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return tape.gradient(y, list(wanted), output_gradients=tf.ones_like(y))

        return fastest(lambda: [g.numpy() for g in step()], repeats)

    return gradients(layer.kernel), gradients(x, layer.kernel)


def torch_convolution(batch, shape, kernel_shape, padding, dtype, repeats):
    import torch

    height, width, channels = shape
    kh, kw, cin, cout = kernel_shape
    x = torch.randn(batch, channels, height, width, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, kh, kw, dtype=dtype).contiguous(memory_format=torch.channels_last)
    pad = [kh // 2, kw // 2] if padding == "SAME" else [0, 0]
    with torch.no_grad():
        dy = torch.nn.functional.conv2d(x, w, padding=pad)

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [1, 1], pad, [1, 1], False, [0, 0], 1, mask)

    with torch.no_grad():
        return [
            fastest(lambda: torch.nn.functional.conv2d(x, w, padding=pad), repeats),
            fastest(backward([True, False, False]), repeats),
            fastest(backward([False, True, False]), repeats),
        ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", choices=("resnet", "airbench"), default=None, help="airbench: the RGB recipe with airbench94's"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dtype_policy = precision.resolve("auto")
    race_recipes = recipes(dtype_policy)
    params = race_recipes["ours_airbench_net" if args.arch == "airbench" else "ours"]
    batch = params["batch_size"]
    print(
        f"machine: {precision.machine_summary()}; {params['arch']} {params['widths']}, batch {batch}, {dtype_policy}",
        flush=True,
    )
    seconds, network = step_parts(params, args.repeats)
    print("\n| part of the step | ms per step | share of train_on_batch |\n|---|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value * 1e3:.0f} | {value / seconds['train_on_batch (all)']:.0%} |")
    try:
        import torch
    except ModuleNotFoundError:
        torch = None
    bfloat16 = "bfloat16" in dtype_policy
    tf_dtype = tf.bfloat16 if bfloat16 else tf.float32
    print(
        "\n| convolution | input | kernel | TF fwd / in-grad / kernel-grad ms | PyTorch ms | TF ÷ PyTorch "
        "|\n|---|---|---|---|---|---|"
    )
    totals, fastest_kernels = np.zeros((2, 3)), {}
    for name, shape, kernel_shape, padding in convolutions(network):
        ours = tensorflow_convolution(batch, shape, kernel_shape, padding, tf_dtype, args.repeats)
        theirs = (
            torch_convolution(
                batch, shape, kernel_shape, padding, torch.bfloat16 if bfloat16 else torch.float32, args.repeats
            )
            if torch
            else [np.nan] * 3
        )
        totals += [ours, theirs]
        fastest_kernels[name] = np.fmin(ours, theirs)
        cells = " / ".join(f"{t * 1e3:.1f}" for t in ours), " / ".join(f"{t * 1e3:.1f}" for t in theirs)
        print(
            f"| {name} | {shape} | {kernel_shape} | {cells[0]} | {cells[1]} | "
            f"{' / '.join(f'{a / b:.2f}' for a, b in zip(ours, theirs, strict=True))} |",
            flush=True,
        )
    print(
        f"| all | | | {' / '.join(f'{t * 1e3:.0f}' for t in totals[0])} | "
        f"{' / '.join(f'{t * 1e3:.0f}' for t in totals[1])} | "
        f"{' / '.join(f'{a / b:.2f}' for a, b in zip(*totals, strict=True))} |"
    )
    print(
        "\n| 3x3 convolution over a small map | input | kernel gradient, Keras / fused ms | forward + both "
        "gradients, Keras / fused ms | fused ÷ Keras |\n|---|---|---|---|---|"
    )
    for name, shape, kernel_shape, padding in convolutions(network):
        if kernel_shape[:2] == (3, 3) and padding == "SAME" and max(shape[:2]) <= fused.SMALL_MAP:
            (keras_kernel, keras_all), (fused_kernel, fused_all) = (
                layer_gradients(c, batch, shape, kernel_shape, tf_dtype, args.repeats)
                for c in (keras.layers.Conv2D, fused.Conv2D)
            )
            fastest_kernels[name][2] = min(fastest_kernels[name][2], fused_kernel)
            print(
                f"| {name} | {shape} | {keras_kernel * 1e3:.1f} / {fused_kernel * 1e3:.1f} | "
                f"{keras_all * 1e3:.1f} / {fused_all * 1e3:.1f} | "
                f"{fused_kernel / keras_kernel:.2f} / {fused_all / keras_all:.2f} |",
                flush=True,
            )
    if torch:
        steps = {name: value for name, value in seconds.items() if name.startswith("train_on_batch")}
        print_ceiling(fastest_kernels, batch * training_flops(network), steps, bfloat16)


def print_ceiling(fastest_kernels, step_flops, steps, bfloat16):
    """The FLOP/s ratio (bench.race's ratio 3) of the whole step, and the most any step could reach with these kernels.

    The ceiling assumes each convolution's forward pass and gradients take the fastest time measured
    above (TensorFlow, PyTorch or cifarcam.training.fused) and that nothing else in the step takes any time.
    """
    products = matmul_flops(bfloat16)
    best_name, best = max(products.items(), key=lambda item: item[1])
    ceiling_seconds = sum(sum(times) for times in fastest_kernels.values())
    print(f"\nmatrix product: {', '.join(f'{name} {value / 1e9:.0f} GFLOP/s' for name, value in products.items())}")
    for name, step_seconds in steps.items():
        print(
            f"{name}: {step_flops / step_seconds / 1e9:.0f} GFLOP/s, {step_flops / step_seconds / best:.2f} of "
            f"{best_name}'s matrix product"
        )
    print(
        f"ceiling, every convolution at its fastest kernel above and nothing else: {ceiling_seconds * 1e3:.0f} ms, "
        f"{step_flops / ceiling_seconds / 1e9:.0f} GFLOP/s, {step_flops / ceiling_seconds / best:.2f} of "
        f"{best_name}'s matrix product"
    )


if __name__ == "__main__":
    main()
