"""Class activation maps on the pre-softmax logits: Grad-CAM and Grad-CAM++, batched per image.

Grad-CAM (Selvaraju et al. 2017) weights each feature channel by its spatially averaged gradient;
Grad-CAM++ (Chattopadhay et al. 2018) weights the positive gradients by per-position
coefficients, which credits several instances of a class rather than the strongest one. The
class score is the logit, not the softmax probability, whose gradient vanishes once the model
is confident. Arithmetic is float32 whatever the model's compute dtype. The gradients are taken
by the backend's own differentiation, TensorFlow's or JAX's, so the maps need no TensorFlow on a
JAX machine.
"""

import cv2
import numpy as np

from cifarcam.core.backend import keras
from cifarcam.core.choices import EXPLANATION_METHODS


def last_feature_map_layer(model):
    """The layer the maps look at: the last 4-D output at the resolution of the last convolution.

    That is the last convolution itself, or what follows it at the same size (batch norm, an
    activation, a residual sum), but never a pooled map: after pooling a 32x32 input four times
    only 2x2 positions are left to point at.
    """
    maps = [
        layer
        for layer in model.layers
        if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
    ]
    convolutions = [layer for layer in maps if isinstance(layer, keras.layers.Conv2D)]
    if not convolutions:
        raise ValueError(f"model {model.name} has no convolution for a class activation map to look at")
    size = convolutions[-1].output.shape[1:3]
    return [layer for layer in maps if layer.output.shape[1:3] == size][-1]


def class_activation_maps(model, images, class_indices, method="gradcam", logits_layer="logits"):
    """Maps in [0, 1] of shape (N, H, W) at the input's resolution, one per image and class.

    Each image gets its own channel weights (gradients reduced over space only), so a batched
    call equals the single-image calls. A map with no positive evidence is all zeros.
    """
    if method not in EXPLANATION_METHODS:
        raise ValueError(f"unknown CAM method '{method}': choose one of {', '.join(EXPLANATION_METHODS)}")
    target = last_feature_map_layer(model)
    body = keras.Model(model.inputs[0], target.output)
    head = keras.Model(target.output, model.get_layer(logits_layer).output)
    features = body(keras.ops.convert_to_tensor(np.asarray(images, np.float32)), training=False)
    chosen = keras.ops.one_hot(np.asarray(class_indices), head.output.shape[-1], dtype="float32")
    gradients = _gradient_of_sum(lambda x: chosen * keras.ops.cast(head(x, training=False), "float32"), features)
    gradients, features = (keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")) for x in (gradients, features))
    weights = _gradcam_weights(gradients) if method == "gradcam" else _gradcam_plus_plus_weights(gradients, features)
    maps = np.maximum(np.einsum("nhwk,nk->nhw", features, weights), 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
    return upsample(maps, np.shape(images)[1:3])


def _gradient_of_sum(function, x):
    """The gradient of sum(function(x)) with respect to the tensor x, by the backend's autodiff.

    Summing over the batch is exact here: each image's score depends on its own features only.
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
        f"class activation maps need the tensorflow or jax backend, not {backend}: set KERAS_BACKEND to one of them"
    )


def _gradcam_weights(gradients):
    return gradients.mean(axis=(1, 2))


def _gradcam_plus_plus_weights(gradients, features):
    """Eq. 19 of Chattopadhay et al. with the exponential-score closed form of the higher derivatives."""
    squared, cubed = gradients**2, gradients**3
    denominator = 2 * squared + features.sum(axis=(1, 2), keepdims=True) * cubed
    alphas = np.divide(squared, denominator, out=np.zeros_like(squared), where=denominator != 0)
    return (alphas * np.maximum(gradients, 0)).sum(axis=(1, 2))


def upsample(maps, size):
    """Bilinear resize of (N, h, w) maps to `size`, with half-pixel centres (OpenCV's convention)."""
    height, width = size
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in maps]).astype(np.float32)


def overlay(image, heatmap, alpha=0.4):
    """An image in [0, 1] (H, W, 1 or 3) blended with a JET-coloured heatmap, as uint8 RGB."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    colours = cv2.applyColorMap(np.uint8(255 * heatmap), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.uint8(255 * np.clip((1 - alpha) * rgb + alpha * colours, 0, 1))
