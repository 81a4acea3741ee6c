"""Drawing a map on its image: the overlays of the figures, and a map resized to a photo's own size."""

import cv2
import numpy as np


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
