"""The training recipe of a train section: network, augmentation, optimizer, schedule and loss, compiled as one model.

Backend-neutral (TensorFlow or JAX), so that the pipeline's CPU runs and the GPU
benchmarks train the same recipe. The network is wrapped in a training model with the
augmentation in front; `trainer.layers[-1]` is the network itself.
"""

import math

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.data.prepare import to_unit_range
from cifarcam.training import batches, models, precision
from cifarcam.training.augment import Augment
from cifarcam.training.layers import UnitRange
from cifarcam.training.lookahead import Lookahead
from cifarcam.training.optimizers import optimizer

WHITENING_IMAGES = 5000  # airbench's: enough for a stable 12x12 patch covariance


def compile_trainer(params, train_images):
    """The training model: uint8 images scaled to [0, 1], augmented, then the network; compiled with the recipe.

    `params["precision"]` (`auto`: see cifarcam.training.precision) applies to this model only: the global
    dtype policy is restored after.
    """
    if train_images.dtype != np.uint8:
        raise ValueError(
            f"the trainer takes uint8 images, not {train_images.dtype}: load them with load_prepared(path, scale=False)"
        )
    steps = batches.steps_per_epoch(len(train_images), params["batch_size"])
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision.resolve(params["precision"]))
    try:
        network = models.build(params, train_images.shape[1:])
        if params["arch"] == "airbench":
            stride = math.ceil(
                len(train_images) / WHITENING_IMAGES
            )  # spread over the classes, which the split keeps in order
            network.get_layer("whiten").adapt(to_unit_range(train_images[::stride]))
        augment = Augment(params["flip"], params["translate"], params["cutout"], steps, params["seed"])
        scale = UnitRange(name="unit_range", dtype="float32")
        trainer = keras.Sequential(
            [keras.Input(train_images.shape[1:], dtype="uint8"), scale, augment, network], name="trainer"
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    trainer.compile(
        optimizer=optimizer(params, steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params["label_smoothing"]),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return trainer


class FreezeWhiteningBias(keras.callbacks.Callback):
    """From epoch `epoch` on, TensorFlow's training step leaves the stopped whitening bias out.

    The optimizer already keeps the bias still from then on (see optimizers._BiasRate), but while the bias is
    trainable the step computes its gradient, and with it the input gradient of the first
    convolution: 6% of a step on the AMX CPU. Without a trained weight before that convolution,
    TensorFlow drops the whole branch, as PyTorch's autograd does for airbench. (JAX's trainer
    takes a fixed list of trainable variables, so there the bias stays in.)
    """

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        bias = self.model.layers[-1].get_layer("whiten").bias
        if epoch >= self.epoch and bias.trainable:
            bias.trainable = False
            self.model.make_train_function(force=True)


def callbacks(params, trainer, train_count):
    """What the recipe adds to `fit` besides the optimizer: the lookahead, when it is on, and on
    TensorFlow the frozen whitening bias once it stops."""
    steps = batches.steps_per_epoch(train_count, params["batch_size"])
    added = []
    if params["lookahead"]:
        added.append(Lookahead(trainer.layers[-1], params["lookahead"], steps, params["epochs"]))
    if (
        params["arch"] == "airbench"
        and params["whiten_bias_epochs"] is not None
        and keras.backend.backend() == "tensorflow"
    ):
        added.append(FreezeWhiteningBias(params["whiten_bias_epochs"]))
    return added


def one_hot(labels):
    return np.eye(models.NUM_CLASSES, dtype=np.float32)[labels]
