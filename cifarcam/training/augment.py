"""Training augmentation as batched tensor operations.

`Augment` runs inside the compiled training step on any Keras backend: a flip picked per image
with a mask (at random, or alternating from epoch to epoch as in airbench), a translation through
reflect padding and a one-hot sum over the few possible shifts, and a cutout square from
coordinate comparisons: a handful of elementwise operations on the whole batch, where Keras's
RandomFlip/RandomCrop layers cost many times the training step itself on JAX.
"""

from cifarcam.core.backend import keras, ops
from cifarcam.core.choices import FLIPS


@keras.saving.register_keras_serializable(package="cifarcam")
class Augment(keras.layers.Layer):
    """Horizontal flip, translation by up to `translate` pixels and a `cutout`-sized hole.

    `flip` is "none", "random" (each image, each step, a coin toss) or "alternate": each image is
    mirrored on every other epoch, so that any two consecutive epochs show it both ways (airbench's
    derandomized flip); an epoch is `steps_per_epoch` training calls. Active only in training; at
    inference it passes images through untouched.
    """

    def __init__(self, flip="random", translate=2, cutout=0, steps_per_epoch=1, seed=0, **kwargs):
        super().__init__(**kwargs)
        if flip not in FLIPS:
            raise ValueError(f"unknown flip '{flip}': choose one of {', '.join(FLIPS)}")
        self.flip, self.translate, self.cutout, self.seed = flip, translate, cutout, seed
        self.steps_per_epoch = steps_per_epoch
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.steps_done = self.add_weight(shape=(), dtype="int32", trainable=False, name="steps_done")

    def call(self, images, training=False):
        if not training:
            return images
        if self.flip != "none":
            images = self._flip(images)
        if self.translate:
            images = self._translate(images)
        if self.cutout:
            images = self._cutout(images)
        return images

    def _flip(self, images):
        if self.flip == "random":
            flipped = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < 0.5
        else:
            flipped = self._alternating_flips(images)
        return ops.where(flipped, ops.flip(images, axis=2), images)

    def _alternating_flips(self, images):
        # An image's starting side is the parity of its rounded pixel sum: a pseudo-random bit that
        # needs no index into the data set and that mirroring leaves unchanged.
        pixel_sums = ops.sum(ops.cast(images, "float32"), axis=(1, 2, 3), keepdims=True)
        starts = ops.cast(ops.round(pixel_sums * 255.0), "int32")
        epoch = ops.floor_divide(self.steps_done.value, self.steps_per_epoch)
        self.steps_done.assign_add(1)
        return ops.mod(starts + epoch, 2) == 1

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
        options = {"flip": self.flip, "translate": self.translate, "cutout": self.cutout}
        return super().get_config() | options | {"steps_per_epoch": self.steps_per_epoch, "seed": self.seed}
