"""airbench's first layer: a 2x2 convolution that whitens image patches, set from data, never trained.

Its filters are the eigenvectors of the covariance of all 2x2 patches of the training images,
each scaled by 1/sqrt(eigenvalue + eps), with their negatives beside them (so that a ReLU or GELU
after it keeps both signs): decorrelated inputs of unit variance from the first step on, which
lets the network learn fast. Only the bias learns.
"""

import numpy as np

from cifarcam.backend import keras

PATCH = 2
EPSILON = 5e-4  # airbench's, relative to the variance of its standardized images (about 1 per pixel)


def whitening_kernel(images):
    """(kernel, bias) of the whitening convolution for float images in [0, 1], shape (N, H, W, C).

    The patches are centred (the bias subtracts the mean patch) and scaled by the pixels' standard
    deviation, which is what airbench's per-channel standardization does before it.
    """
    images = np.asarray(images, np.float32)
    channels = images.shape[-1]
    patches = np.stack(
        [images[:, row : row + images.shape[1] - PATCH + 1, column : column + images.shape[2] - PATCH + 1] for row in range(PATCH) for column in range(PATCH)],
        axis=-2,
    ).reshape(-1, PATCH * PATCH * channels)  # (patches, row-major 2x2 positions x channels)
    mean, scale = patches.mean(axis=0), images.std()
    if scale == 0:
        raise ValueError("the whitening layer needs training images that vary: these are all one value")
    centred = (patches - mean) / scale
    eigenvalues, eigenvectors = np.linalg.eigh(np.float64(centred.T) @ centred / len(centred))
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + EPSILON) / scale
    filters = np.concatenate([filters, -filters], axis=1)  # (patch dimensions, 2 x patch dimensions)
    kernel = filters.reshape(PATCH, PATCH, channels, -1)
    return kernel.astype(np.float32), (-mean @ filters).astype(np.float32)


@keras.saving.register_keras_serializable(package="cifarcam")
class PatchWhitening(keras.layers.Layer):
    """The whitening convolution ('valid' padding, so 32x32 becomes 31x31); call `adapt` to set it."""

    def build(self, input_shape):
        channels = input_shape[-1]
        width = 2 * PATCH * PATCH * channels
        self.kernel = self.add_weight(shape=(PATCH, PATCH, channels, width), initializer="zeros", trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(width,), initializer="zeros", name="bias")

    def adapt(self, images):
        kernel, bias = whitening_kernel(images)
        self.kernel.assign(kernel)
        self.bias.assign(bias)

    def call(self, images):
        kernel = keras.ops.cast(self.kernel, self.compute_dtype)
        return keras.ops.conv(images, kernel, padding="valid") + keras.ops.cast(self.bias, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height - PATCH + 1, width - PATCH + 1, 2 * PATCH * PATCH * channels)
