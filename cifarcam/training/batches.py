"""Batches for Keras's fit: training images reshuffled every epoch in full batches only, as airbench trains.

`fit` on arrays ends each epoch with a smaller batch (40,000 images at 1,024 leave 64), which
takes a full step on few images: the loss is a mean. With a high learning rate and batch-norm
statistics that follow the last batches, that one noisy step just before each validation cost
airbench94's recipe in Keras 11 points of validation accuracy after its first epoch (46% against
airbench94's 57%); without it the two agree. The images a last batch would hold wait for the next
epoch's shuffle. Validation goes through the same feed, in order and whole.
"""

import math

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.core.errors import PipelineError


def steps_per_epoch(count, batch_size):
    """Training steps of one epoch of `count` images: full batches only."""
    if count < batch_size:
        raise PipelineError(
            f"batch_size {batch_size} is larger than the {count} training images: lower batch_size in params.yaml"
        )
    return count // batch_size


class Batches(keras.utils.PyDataset):
    """Batches of (uint8 images, one-hot labels).

    With a `seed`, for training: full batches only, in an order drawn from (seed, epoch), so that a
    training resumed at `epoch` sees the batches an uninterrupted one would have (fit it with
    `shuffle=False`, or Keras reorders the batches too). Without, for validation: every image once,
    in order, the last batch as small as it comes.
    """

    def __init__(self, images, labels, batch_size, seed=None, epoch=0):
        # On TensorFlow two threads fill Keras's own queue: with one, the batches go through tf.data's
        # autotuned prefetch, whose iterator took up to 8 s to shut down after an epoch of 35. On JAX
        # that queue fed one device and two devices different batches; a plain generator feeds both alike.
        super().__init__(workers=2 if keras.backend.backend() == "tensorflow" else 1)
        self.images, self.labels, self.batch_size, self.seed, self.epoch = images, labels, batch_size, seed, epoch
        if seed is None:
            self.steps, self.order = math.ceil(len(images) / batch_size), None
        else:
            self.steps, self.order = steps_per_epoch(len(images), batch_size), self._shuffled()

    def _shuffled(self):
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        chosen = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.order is not None:
            chosen = self.order[chosen]
        return self.images[chosen], self.labels[chosen]

    def on_epoch_end(self):
        self.epoch += 1
        if self.order is not None:
            self.order = self._shuffled()
