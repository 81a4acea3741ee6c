"""Grad-CAM (Selvaraju et al. 2017) on the pre-softmax logits, batched with per-image weights."""

import cv2
import keras
import numpy as np
import tensorflow as tf


def last_feature_map_layer(model):
    """The layer Grad-CAM looks at: the last 4-D output at the resolution of the last convolution.

    That is the last convolution itself, or what follows it at the same size (batch norm, an
    activation, a residual sum), but never a pooled map: after pooling a 32x32 input four times
    only 2x2 positions are left to point at.
    """
    maps = [layer for layer in model.layers if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)]
    convolutions = [layer for layer in maps if isinstance(layer, keras.layers.Conv2D)]
    if not convolutions:
        raise ValueError(f"model {model.name} has no convolution for Grad-CAM to look at")
    size = convolutions[-1].output.shape[1:3]
    return [layer for layer in maps if layer.output.shape[1:3] == size][-1]


def gradcam(model, images, class_indices, logits_layer="logits"):
    """Heatmaps in [0, 1] of shape (N, H, W) at the input's resolution, one per image and class.

    The class score is the logit, not the softmax probability, whose gradient vanishes once the
    model is confident. Each image gets its own channel weights (its gradients averaged over
    space only), so a batched call equals the single-image calls.
    """
    feature_layer = last_feature_map_layer(model)
    probe = keras.Model(model.inputs, [feature_layer.output, model.get_layer(logits_layer).output])
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, logits = probe(images, training=False)
        scores = tf.gather(logits, np.asarray(class_indices), axis=1, batch_dims=1)
    gradients = tape.gradient(scores, features)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1)).numpy()
    peaks = maps.max(axis=(1, 2), keepdims=True)
    maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
    height, width = images.shape[1:3]
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in maps])


def overlay(image, heatmap, alpha=0.4):
    """An image in [0, 1] (H, W, 1 or 3) blended with a JET-coloured heatmap, as uint8 RGB."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    colours = cv2.applyColorMap(np.uint8(255 * heatmap), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.uint8(255 * np.clip((1 - alpha) * rgb + alpha * colours, 0, 1))
