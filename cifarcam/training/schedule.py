"""The learning-rate schedules of a train section: constant, one-cycle (piecewise linear) or a warmed-up cosine."""

import itertools

from cifarcam.core.backend import keras


@keras.saving.register_keras_serializable(package="cifarcam")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate interpolated linearly between (step, rate) knots, constant beyond the last."""

    def __init__(self, steps, rates):
        self.steps, self.rates = [float(s) for s in steps], [float(r) for r in rates]

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = keras.ops.full_like(step, self.rates[0])
        for (s0, r0), (s1, r1) in itertools.pairwise(zip(self.steps, self.rates, strict=True)):
            fraction = keras.ops.clip((step - s0) / max(s1 - s0, 1.0), 0.0, 1.0)
            rate = rate + fraction * (r1 - r0)
        return rate

    def get_config(self):
        return {"steps": self.steps, "rates": self.rates}


def learning_rate(params, steps_per_epoch):
    """A constant rate, a one-cycle (linear warm-up, then linear decay) or a warmed-up cosine.

    The warm-up starts at `lr_start` times the peak, and the decay ends at `lr_end` times it; its
    length in steps is truncated, as airbench's is.
    """
    peak, total = params["learning_rate"], params["epochs"] * steps_per_epoch
    warmup = int(params["warmup"] * total)
    start, end = peak * params["lr_start"], peak * params["lr_end"]
    if params["schedule"] == "onecycle":
        return (
            PiecewiseLinear([0, warmup, total], [start, peak, end])
            if warmup
            else PiecewiseLinear([0, total], [peak, end])
        )
    if params["schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            start if warmup else peak,
            total - warmup,
            alpha=params["lr_end"],
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    return peak
