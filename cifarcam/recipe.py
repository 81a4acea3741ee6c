"""The training recipe of a train_* section: network, augmentation, optimizer, schedule and loss.

Backend-neutral (TensorFlow, JAX or torch), so that the pipeline's CPU runs and the GPU
benchmarks train the same recipe. The network is wrapped in a training model with the
augmentation in front; `trainer.layers[-1]` is the network itself.
"""

import math

import keras
import numpy as np

from cifarcam import models
from cifarcam.augment import Augment


@keras.saving.register_keras_serializable(package="cifarcam")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate interpolated linearly between (step, rate) knots, constant beyond the last."""

    def __init__(self, steps, rates):
        self.steps, self.rates = [float(s) for s in steps], [float(r) for r in rates]

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = keras.ops.full_like(step, self.rates[0])
        for (s0, r0), (s1, r1) in zip(zip(self.steps, self.rates), zip(self.steps[1:], self.rates[1:])):
            fraction = keras.ops.clip((step - s0) / max(s1 - s0, 1.0), 0.0, 1.0)
            rate = rate + fraction * (r1 - r0)
        return rate

    def get_config(self):
        return {"steps": self.steps, "rates": self.rates}


def learning_rate(params, steps_per_epoch):
    """A constant rate, a one-cycle (linear warm-up then linear decay to 0) or a warmed-up cosine."""
    peak, total = params["learning_rate"], params["epochs"] * steps_per_epoch
    warmup = round(params["warmup"] * total)
    if params["schedule"] == "onecycle":
        return PiecewiseLinear([0, warmup, total], [peak * 0.1, peak, 0.0])
    if params["schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            peak * 0.1 if warmup else peak, total - warmup, warmup_target=peak if warmup else None, warmup_steps=warmup
        )
    return peak


def optimizer(params, steps_per_epoch):
    """AdamW (Adam when weight_decay is 0) or SGD with Nesterov momentum; weight decay is decoupled."""
    options = {"learning_rate": learning_rate(params, steps_per_epoch), "weight_decay": params["weight_decay"]}
    if params["optimizer"] == "sgd":
        return keras.optimizers.SGD(momentum=0.9, nesterov=True, **options)
    return keras.optimizers.AdamW(**options)


def compile_trainer(params, train_images):
    """The training model: augmentation in front of the network, compiled with the recipe.

    `params["precision"]` applies to this model only: the global dtype policy is restored after.
    """
    steps_per_epoch = math.ceil(len(train_images) / params["batch_size"])
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(params["precision"])
    try:
        network = models.build(
            params["arch"],
            train_images.shape[1:],
            params["dropout"],
            params["widths"],
            params["depth"],
            params["batchnorm_momentum"],
            params["activation"],
        )
        augment = Augment(params["flip"], params["translate"], params["cutout"], steps_per_epoch, params["seed"])
        trainer = keras.Sequential([keras.Input(train_images.shape[1:]), augment, network], name="trainer")
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    trainer.compile(
        optimizer=optimizer(params, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params["label_smoothing"]),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return trainer


def one_hot(labels):
    return np.eye(models.NUM_CLASSES, dtype=np.float32)[labels]


