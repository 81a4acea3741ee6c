"""Training augmentation as batched tensor operations.

`Augment` runs inside the compiled training step on any Keras backend: a flip picked per image
with a mask, a translation through reflect padding and a one-hot sum over the few possible
shifts, and a cutout square from coordinate comparisons. Keras's RandomFlip/RandomCrop layers
made an epoch about 90 times slower on JAX (../shared/docs/gpu.md); these are a handful of
elementwise operations on the whole batch.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cifarcam")
class Augment(keras.layers.Layer):
    """Random horizontal flip, translation by up to `translate` pixels and a `cutout`-sized hole.

    Active only in training; at inference it passes images through untouched.
    """

    def __init__(self, flip=True, translate=2, cutout=0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.flip, self.translate, self.cutout, self.seed = flip, translate, cutout, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        if self.flip:
            images = self._flip(images)
        if self.translate:
            images = self._translate(images)
        if self.cutout:
            images = self._cutout(images)
        return images

    def _flip(self, images):
        flipped = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < 0.5
        return ops.where(flipped, ops.flip(images, axis=2), images)

    def _translate(self, images):
        pad, (height, width) = self.translate, images.shape[1:3]
        padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
        batch = ops.shape(images)[0]
        rows = self._one_hot_shift(batch)
        columns = self._one_hot_shift(batch)
        shifted = sum(rows[:, s, None, None, None] * padded[:, s : s + height] for s in range(2 * pad + 1))
        return sum(columns[:, s, None, None, None] * shifted[:, :, s : s + width] for s in range(2 * pad + 1))

    def _one_hot_shift(self, batch):
        shifts = keras.random.randint((batch,), 0, 2 * self.translate + 1, seed=self.seed_generator)
        return ops.one_hot(shifts, 2 * self.translate + 1, dtype=self.compute_dtype)

    def _cutout(self, images):
        batch, (height, width) = ops.shape(images)[0], images.shape[1:3]
        top = keras.random.randint((batch, 1, 1, 1), 1 - self.cutout, height, seed=self.seed_generator)
        left = keras.random.randint((batch, 1, 1, 1), 1 - self.cutout, width, seed=self.seed_generator)
        rows = ops.reshape(ops.arange(height), (1, height, 1, 1))
        columns = ops.reshape(ops.arange(width), (1, 1, width, 1))
        inside = (rows >= top) & (rows < top + self.cutout) & (columns >= left) & (columns < left + self.cutout)
        return ops.where(inside, ops.zeros_like(images), images)

    def get_config(self):
        return super().get_config() | {"flip": self.flip, "translate": self.translate, "cutout": self.cutout, "seed": self.seed}
