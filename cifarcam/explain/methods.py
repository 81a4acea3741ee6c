"""Nine attribution methods in one registry: which parts of an image made the model score a class.

Seven are class activation maps at a feature-map layer, shaped as pytorch-grad-cam's are: one
forward and backward pass gives the layer's activations A and the gradients G of the class score
with respect to them, and each method is a small formula over the two. Two work at the input's
pixels, from gradients with respect to the image. Comparing them shows which conclusions about the
maps depend on the method chosen.

- Grad-CAM (Selvaraju et al. 2017): channel weights are the spatially averaged gradients.
- Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per position, so several instances count.
- HiResCAM (Draelos & Carin 2020): sum_k G_k * A_k per cell, which on a pooled linear head adds up to the score.
- XGrad-CAM (Fu et al. 2020): weights sum(G_k * A_k) / sum(A_k), from its sensitivity and conservation axioms.
- LayerCAM (Jiang et al. 2021): sum_k relu(G_k) * A_k per cell, so shallow layers give usable maps.
- Eigen-CAM (Muhammad & Yeasin 2020): the activations' first principal component; needs no gradient or class.
- Score-CAM (Wang et al. 2020): each channel masks the input; the masked images' scores weight the channels.
- Integrated Gradients (Sundararajan et al. 2017): gradients along the path from a black image; complete.
- SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of the image, which removes speckle.

The class score is the logit (layer "logits"), not the softmax probability, whose gradient vanishes
once the model is confident. Arithmetic is float32 whatever the model's compute dtype, and each
image gets its own weights, so a batched call equals the single-image calls. Gradients come from
the backend's own differentiation, TensorFlow's or JAX's. Every map is relu'd, placed at the
input's pixels by cifarcam.explain.geometry (a layer's cells sit at their receptive fields'
centres) and divided by its peak: values in [0, 1], all zeros where there is no positive evidence.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.explain import geometry

STEPS = 16  # Integrated Gradients' midpoints on the path from the black image (sized to the stage's time budget)
SAMPLES = 16  # SmoothGrad's noisy copies per image
NOISE = 0.15  # SmoothGrad's noise sd as a share of the image's range (max - min), the paper's 10-20%
XGRADCAM_EPSILON = 1e-7  # pytorch-grad-cam's, against an all-zero channel
MASK_EPSILON = 1e-8  # pytorch-grad-cam's, in Score-CAM's min-max scaling of a constant channel


@dataclass(frozen=True)
class LayerPass:
    """What one forward and backward pass to a layer gives the CAM methods, as float32 arrays."""

    model: keras.Model
    images: np.ndarray  # (N, H, W, C)
    classes: np.ndarray  # (N,) the class explained in each image
    features: np.ndarray  # (N, h, w, K) the layer's activations A
    gradients: np.ndarray | None  # (N, h, w, K) d logit / d A; None when no method asked for uses them
    centres: tuple  # (ys, xs) of the layer's cells in input pixels, for placing Score-CAM's masks
    batch_size: int


@dataclass(frozen=True)
class Method:
    """An attribution method: `signed` gives its maps before the relu.

    At a layer it takes a LayerPass and gives (N, h, w) maps at the layer's cells; at the pixels
    (at_layer False) it takes (model, images, classes, batch_size, seed) and gives (N, H, W) maps.
    """

    signed: Callable[..., np.ndarray]
    at_layer: bool = True
    uses_gradients: bool = True


def _gradcam(run):
    return _channel_weighted(run.features, run.gradients.mean(axis=(1, 2)))


def _gradcam_plus_plus(run):
    """Eq. 19 of Chattopadhay et al. with the exponential-score closed form of the higher derivatives."""
    squared, cubed = run.gradients**2, run.gradients**3
    denominator = 2 * squared + run.features.sum(axis=(1, 2), keepdims=True) * cubed
    alphas = np.divide(squared, denominator, out=np.zeros_like(squared), where=denominator != 0)
    return _channel_weighted(run.features, (alphas * np.maximum(run.gradients, 0)).sum(axis=(1, 2)))


def _hirescam(run):
    return (run.gradients * run.features).sum(axis=-1)


def _xgradcam(run):
    totals = run.features.sum(axis=(1, 2)) + XGRADCAM_EPSILON
    return _channel_weighted(run.features, (run.gradients * run.features).sum(axis=(1, 2)) / totals)


def _layercam(run):
    return (np.maximum(run.gradients, 0) * run.features).sum(axis=-1)


def _eigencam(run):
    """The cells' projection on the first principal component of their activation vectors
    (pytorch-grad-cam's get_2d_projection). A principal component's sign is arbitrary; this one is
    chosen so that the map correlates positively with the channels' sum (a tie keeps the SVD's).
    """
    n, height, width, channels = run.features.shape
    cells = run.features.reshape(n, height * width, channels)
    centred = cells - cells.mean(axis=1, keepdims=True)
    first = np.linalg.svd(centred, full_matrices=False)[2][:, 0]  # (N, K): each image's top right-singular vector
    projections = np.einsum("npk,nk->np", centred, first)
    signs = np.where(np.einsum("np,np->n", projections, cells.sum(axis=-1)) < 0, -1, 1)
    return (signs[:, None] * projections).reshape(n, height, width)


def _scorecam(run):
    """Each channel, placed at the input's pixels and min-max scaled to [0, 1], masks the image; the
    softmax over the channels of the masked images' class logits weights the channels."""
    logits = _logits_model(run.model)
    scores = []
    for image, features, target in zip(run.images, run.features, run.classes, strict=True):
        masks = geometry.place(np.moveaxis(features, -1, 0), run.centres, image.shape[:2])  # (K, H, W)
        lows, highs = masks.min(axis=(1, 2), keepdims=True), masks.max(axis=(1, 2), keepdims=True)
        masks = (masks - lows) / (highs - lows + MASK_EPSILON)
        scores.append(_predict(logits, image * masks[..., None], run.batch_size)[:, target])
    scores = np.stack(scores)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return _channel_weighted(run.features, weights / weights.sum(axis=1, keepdims=True))


def _integrated_gradients_map(model, images, classes, batch_size, seed):
    return integrated_gradients(model, images, classes, batch_size=batch_size).sum(axis=-1)


def _smoothgrad_map(model, images, classes, batch_size, seed):
    return np.abs(smoothgrad(model, images, classes, seed=seed, batch_size=batch_size)).max(axis=-1)


METHODS = {
    "gradcam": Method(_gradcam),
    "gradcam++": Method(_gradcam_plus_plus),
    "hirescam": Method(_hirescam),
    "xgradcam": Method(_xgradcam),
    "layercam": Method(_layercam),
    "eigencam": Method(_eigencam, uses_gradients=False),
    "scorecam": Method(_scorecam, uses_gradients=False),
    "integrated_gradients": Method(_integrated_gradients_map, at_layer=False),
    "smoothgrad": Method(_smoothgrad_map, at_layer=False),
}
TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "hirescam": "HiResCAM",
    "xgradcam": "XGrad-CAM",
    "layercam": "LayerCAM",
    "eigencam": "Eigen-CAM",
    "scorecam": "Score-CAM",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
}  # as the figures name them
CAM_METHODS = tuple(name for name, method in METHODS.items() if method.at_layer)
PIXEL_METHODS = tuple(name for name, method in METHODS.items() if not method.at_layer)


def attribution_maps(model, images, classes, method, layer=None, batch_size=64, seed=0):
    """(N, H, W) float32 maps in [0, 1] at the input's resolution, one per image for its class in `classes`.

    `layer` is the Keras layer the CAM methods look at (None: the last of geometry.blocks(model));
    the pixel methods ignore it, and only SmoothGrad uses `seed`. `batch_size` bounds the images
    per forward pass, masked copies and path points included.
    """
    _check(method, METHODS, "attribution")
    if METHODS[method].at_layer:
        layer = list(geometry.blocks(model).values())[-1] if layer is None else layer
        return cam_maps(model, images, classes, layer, (method,), batch_size)[method]
    signed = METHODS[method].signed(model, np.asarray(images, np.float32), np.asarray(classes), batch_size, seed)
    return _scaled(np.maximum(signed, 0))


def cam_maps(model, images, classes, layer, methods=CAM_METHODS, batch_size=64):
    """{method: (N, H, W) float32 maps in [0, 1]} for CAM methods at one layer, from one forward and backward pass."""
    run = _layer_pass(model, images, classes, layer, methods, batch_size)
    size = run.images.shape[1:3]
    return {
        method: _scaled(geometry.place(np.maximum(METHODS[method].signed(run), 0), run.centres, size))
        for method in methods
    }


def cell_maps(model, images, classes, layer, methods=CAM_METHODS, batch_size=64):
    """{method: (N, h, w) float32} at the layer's own cells, before the relu, the placing and the scaling.

    HiResCAM's map adds up to the logit less the bias on a globally pooled head, for instance.
    """
    run = _layer_pass(model, images, classes, layer, methods, batch_size)
    return {method: METHODS[method].signed(run).astype(np.float32) for method in methods}


def integrated_gradients(model, images, classes, steps=STEPS, batch_size=64):
    """(N, H, W, C) attributions: the image times the mean gradient of its class logit at `steps`
    midpoints of the straight path from the black image (the Riemann sum of the path integral).

    They add up to about logit(image) - logit(black), closer with more steps (completeness).
    """
    images = np.asarray(images, np.float32)
    alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32)[:, None, None, None]
    return images * _mean_gradient(model, images, classes, lambda chunk: alphas * chunk[:, None], steps, batch_size)


def smoothgrad(model, images, classes, samples=SAMPLES, noise=NOISE, seed=0, batch_size=64):
    """(N, H, W, C): the mean gradient of each image's class logit over `samples` noisy copies of it.

    The noise is Gaussian with sd `noise` times the image's range, from the same seeded draws for
    every image, so that an image's map does not depend on the batch it comes in.
    """
    images = np.asarray(images, np.float32)
    draws = np.random.default_rng(seed).standard_normal((samples, *images.shape[1:])).astype(np.float32)

    def noisy(chunk):
        spread = noise * (chunk.max(axis=(1, 2, 3)) - chunk.min(axis=(1, 2, 3)))
        return chunk[:, None] + spread[:, None, None, None, None] * draws

    return _mean_gradient(model, images, classes, noisy, samples, batch_size)


def _layer_pass(model, images, classes, layer, methods, batch_size):
    for method in methods:
        _check(method, CAM_METHODS, "CAM")
    images, classes = np.asarray(images, np.float32), np.asarray(classes)
    body = keras.Model(model.inputs[0], layer.output)
    head = keras.Model(layer.output, model.get_layer("logits").output)
    uses_gradients = any(METHODS[method].uses_gradients for method in methods)
    features, gradients = [], []
    for start in range(0, len(images), batch_size):
        chunk = body(keras.ops.convert_to_tensor(images[start : start + batch_size]), training=False)
        features.append(_numpy(chunk))
        if uses_gradients:
            gradients.append(_class_gradient(head, chunk, classes[start : start + batch_size]))
    gradients = np.concatenate(gradients) if uses_gradients else None
    centres = geometry.cell_centres(model, layer)
    return LayerPass(model, images, classes, np.concatenate(features), gradients, centres, batch_size)


def _mean_gradient(model, images, classes, points, copies, batch_size):
    """Per image, the mean gradient of its class logit over its `copies` points, points(chunk) of
    shape (n, copies, H, W, C); each pass takes as many images as batch_size rows hold, at least one."""
    logits, classes = _logits_model(model), np.asarray(classes)
    per_pass = max(1, batch_size // copies)
    means = []
    for start in range(0, len(images), per_pass):
        rows = points(images[start : start + per_pass]).reshape(-1, *images.shape[1:])
        targets = np.repeat(classes[start : start + per_pass], copies)
        gradients = _class_gradient(logits, keras.ops.convert_to_tensor(rows), targets)
        means.append(gradients.reshape(-1, copies, *images.shape[1:]).mean(axis=1))
    return np.concatenate(means)


def _class_gradient(function, inputs, classes):
    """The gradient of each row's class score, function(inputs)[i, classes[i]] in float32, with respect to the row."""
    chosen = keras.ops.one_hot(classes, function.output.shape[-1], dtype="float32")
    return _numpy(_gradient_of_sum(lambda x: chosen * keras.ops.cast(function(x, training=False), "float32"), inputs))


def _gradient_of_sum(function, x):
    """The gradient of sum(function(x)) with respect to the tensor x, by the backend's autodiff.

    Summing over the batch is exact here: each image's score depends on its own input only.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(function(x))
        return tape.gradient(total, x)
    if backend == "jax":
        import jax

        return jax.grad(lambda value: function(value).sum())(x)
    raise RuntimeError(
        f"attribution maps need the tensorflow or jax backend, not {backend}: set KERAS_BACKEND to one of them"
    )


def _logits_model(model):
    return keras.Model(model.inputs[0], model.get_layer("logits").output)


def _predict(model, images, batch_size):
    """The model's outputs in float32, by its compiled predict step (traced once per batch shape)."""
    chunks = [model.predict_on_batch(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks).astype(np.float32)


def _numpy(tensor):
    return keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))


def _channel_weighted(features, weights):
    """pytorch-grad-cam's BaseCAM map: the channels summed with per-image weights (N, K)."""
    return np.einsum("nhwk,nk->nhw", features, weights)


def _scaled(maps):
    """Each map divided by its peak; a map without a positive value stays all zeros."""
    maps = np.asarray(maps, np.float32)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)


def _check(method, known, kind):
    if method not in known:
        raise ValueError(f"unknown {kind} method '{method}': choose one of {', '.join(known)}")
