"""The networks' own layers: the uint8-to-[0, 1] scaling, and airbench's patch-whitening first layer.

The whitening layer is a 2x2 convolution that whitens image patches, set from data, never trained.
As in airbench, the images are first standardized per channel; the filters are then the
eigenvectors of the uncentred second moment of all 2x2 patches of the standardized training
images, each scaled by 1/sqrt(eigenvalue + eps), with their negatives beside them (so that a ReLU
or GELU after it keeps both signs): decorrelated inputs of unit variance from the first step on,
which lets the network learn fast. Only the bias learns, from zero.
"""

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.data.prepare import to_unit_range

PATCH = 2
EPSILON = 5e-4  # airbench's, relative to the variance of the standardized images (1 per pixel)


def whitening_parameters(images):
    """(mean, std, kernel) of the whitening layer for float images in [0, 1], shape (N, H, W, C).

    `mean` and `std` standardize each channel (airbench's fixed constants are those of CIFAR-10's
    training set); the kernel whitens the standardized patches without centring them, as airbench's
    `init_whitening_conv` does: after the standardization the mean patch is about zero anyway.
    """
    images = np.asarray(images, np.float32)
    channels = images.shape[-1]
    mean, std = images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))
    if np.any(std == 0):
        raise ValueError("the whitening layer needs training images that vary: a channel of these is all one value")
    standardized = (images - mean) / std
    patches = np.stack(
        [
            standardized[:, row : row + images.shape[1] - PATCH + 1, column : column + images.shape[2] - PATCH + 1]
            for row in range(PATCH)
            for column in range(PATCH)
        ],
        axis=-2,
    ).reshape(-1, PATCH * PATCH * channels)  # (patches, row-major 2x2 positions x channels)
    eigenvalues, eigenvectors = np.linalg.eigh(np.float64(patches.T) @ patches / len(patches))
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + EPSILON)
    filters = np.concatenate([filters, -filters], axis=1)  # (patch dimensions, 2 x patch dimensions)
    return mean, std, filters.reshape(PATCH, PATCH, channels, -1).astype(np.float32)


@keras.saving.register_keras_serializable(package="cifarcam")
class PatchWhitening(keras.layers.Layer):
    """Standardize each channel, then the whitening convolution ('valid' padding, so 32x32 becomes 31x31).

    Call `adapt` to set it. The bias starts at zero and is the only trained weight.
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        width = 2 * PATCH * PATCH * channels
        self.mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(channels,), initializer="ones", trainable=False, name="std")
        self.kernel = self.add_weight(
            shape=(PATCH, PATCH, channels, width), initializer="zeros", trainable=False, name="kernel"
        )
        self.bias = self.add_weight(shape=(width,), initializer="zeros", name="bias")

    def adapt(self, images):
        mean, std, kernel = whitening_parameters(images)
        self.mean.assign(mean)
        self.std.assign(std)
        self.kernel.assign(kernel)
        self.bias.assign(np.zeros(self.bias.shape, np.float32))

    def call(self, images):
        dtype = self.compute_dtype
        standardized = (images - keras.ops.cast(self.mean, dtype)) / keras.ops.cast(self.std, dtype)
        return keras.ops.conv(standardized, keras.ops.cast(self.kernel, dtype), padding="valid") + keras.ops.cast(
            self.bias, dtype
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height - PATCH + 1, width - PATCH + 1, 2 * PATCH * PATCH * channels)


@keras.saving.register_keras_serializable(package="cifarcam")
class UnitRange(keras.layers.Layer):
    """uint8 pixels to float32 in [0, 1], bit for bit as cifarcam.data.prepare.to_unit_range divides them.

    The trainer takes the stored uint8 images, so that fit's copies of the data are a quarter the
    size. The 256 values are looked up in a table of NumPy's own quotients: a division inside the
    compiled step would not be exact, as TensorFlow rewrites x / 255 into x * (1 / 255).
    """

    def call(self, images):
        table = keras.ops.convert_to_tensor(to_unit_range(np.arange(256, dtype=np.uint8)))
        return keras.ops.take(table, keras.ops.cast(images, "int32"))
