"""Class activation maps on the pre-softmax logits: Grad-CAM and Grad-CAM++, batched per image.

Grad-CAM (Selvaraju et al. 2017) weights each feature channel by its spatially averaged gradient;
Grad-CAM++ (Chattopadhay et al. 2018) weights the positive gradients by per-position
coefficients, which credits several instances of a class rather than the strongest one. The
class score is the logit, not the softmax probability, whose gradient vanishes once the model
is confident. Arithmetic is float32 whatever the model's compute dtype.
"""

import cv2
import keras
import numpy as np
import tensorflow as tf

METHODS = ("gradcam", "gradcam++")


def last_feature_map_layer(model):
    """The layer the maps look at: the last 4-D output at the resolution of the last convolution.

    That is the last convolution itself, or what follows it at the same size (batch norm, an
    activation, a residual sum), but never a pooled map: after pooling a 32x32 input four times
    only 2x2 positions are left to point at.
    """
    maps = [layer for layer in model.layers if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)]
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
    if method not in METHODS:
        raise ValueError(f"unknown CAM method '{method}': choose one of {', '.join(METHODS)}")
    probe = keras.Model(model.inputs, [last_feature_map_layer(model).output, model.get_layer(logits_layer).output])
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, logits = probe(images, training=False)
        scores = tf.gather(logits, np.asarray(class_indices), axis=1, batch_dims=1)
    gradients = tf.cast(tape.gradient(scores, features), tf.float32).numpy()
    features = tf.cast(features, tf.float32).numpy()
    weights = _gradcam_weights(gradients) if method == "gradcam" else _gradcam_plus_plus_weights(gradients, features)
    maps = np.maximum(np.einsum("nhwk,nk->nhw", features, weights), 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
    return upsample(maps, images.shape[1:3])


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
