"""The training recipe of a train_* section: network, augmentation, optimizer, schedule and loss.

Backend-neutral (TensorFlow or JAX), so that the pipeline's CPU runs and the GPU
benchmarks train the same recipe. The network is wrapped in a training model with the
augmentation in front; `trainer.layers[-1]` is the network itself.
"""

import math

import numpy as np

from cifarcam import batches, models, precision
from cifarcam.augment import Augment
from cifarcam.backend import keras
from cifarcam.data import to_unit_range
from cifarcam.lookahead import Lookahead

WHITENING_IMAGES = 5000  # airbench's: enough for a stable 12x12 patch covariance


@keras.saving.register_keras_serializable(package="cifarcam")
class UnitRange(keras.layers.Layer):
    """uint8 pixels to float32 in [0, 1], bit for bit as cifarcam.data.to_unit_range divides them.

    The trainer takes the stored uint8 images, so that fit's copies of the data are a quarter the
    size. The 256 values are looked up in a table of NumPy's own quotients: a division inside the
    compiled step would not be exact, as TensorFlow rewrites x / 255 into x * (1 / 255).
    """

    def call(self, images):
        table = keras.ops.convert_to_tensor(to_unit_range(np.arange(256, dtype=np.uint8)))
        return keras.ops.take(table, keras.ops.cast(images, "int32"))


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
    """A constant rate, a one-cycle (linear warm-up, then linear decay) or a warmed-up cosine.

    The warm-up starts at `lr_start` times the peak, and the decay ends at `lr_end` times it; its
    length in steps is truncated, as airbench's is.
    """
    peak, total = params["learning_rate"], params["epochs"] * steps_per_epoch
    warmup = int(params["warmup"] * total)
    start, end = peak * params["lr_start"], peak * params["lr_end"]
    if params["schedule"] == "onecycle":
        return PiecewiseLinear([0, warmup, total], [start, peak, end]) if warmup else PiecewiseLinear([0, total], [peak, end])
    if params["schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            start if warmup else peak, total - warmup, alpha=params["lr_end"], warmup_target=peak if warmup else None, warmup_steps=warmup
        )
    return peak


class _BiasRate:
    """Scales the learning rate of BN's shifts (`beta`) by `bias_lr_scale`, as airbench does (64x),
    and stops training the whitening bias after `whiten_bias_steps` steps, as airbench does after 3 epochs.

    Weight decay is applied before the step at the unscaled rate, so the shifts decay as the rest.
    A stopped bias keeps its value and its optimizer state: like a PyTorch weight without a
    gradient, it neither steps nor decays.
    """

    def __init__(self, bias_lr_scale=1.0, whiten_bias_steps=None, **options):
        super().__init__(**options)
        self.bias_lr_scale, self.whiten_bias_steps = bias_lr_scale, whiten_bias_steps

    def build(self, variables):
        super().build(variables)
        # update_step may see the backend's variable (TensorFlow's is named "<layer>/beta:0"): go by index
        self._scaled = {self._get_variable_index(variable) for variable in variables if variable.name == "beta"}
        # by index too: a list of variables on the optimizer would be tracked as its own state
        stopping = [self._get_variable_index(v) for v in variables if v.path == "whiten/bias" and self.whiten_bias_steps is not None]
        self._stopping_index = stopping[0] if stopping else None

    def _backend_apply_gradients(self, grads, trainable_variables):
        if self._stopping_index is None:
            return super()._backend_apply_gradients(grads, trainable_variables)
        index = self._stopping_index
        slots = [getattr(self, name)[index] for name in ("momentums", "_momentums", "_velocities") if getattr(self, name, None)]
        stopping = [self._trainable_variables[index], *slots]
        kept = [keras.ops.copy(variable.value) for variable in stopping]
        super()._backend_apply_gradients(grads, trainable_variables)
        stopped = keras.ops.greater_equal(self.iterations, self.whiten_bias_steps)
        for variable, value in zip(stopping, kept):
            variable.assign(keras.ops.where(stopped, value, variable.value))

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._scaled:
            learning_rate = learning_rate * self.bias_lr_scale
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return super().get_config() | {"bias_lr_scale": self.bias_lr_scale, "whiten_bias_steps": self.whiten_bias_steps}


@keras.saving.register_keras_serializable(package="cifarcam")
class SGD(_BiasRate, keras.optimizers.SGD):
    pass


@keras.saving.register_keras_serializable(package="cifarcam")
class AdamW(_BiasRate, keras.optimizers.AdamW):
    pass


@keras.saving.register_keras_serializable(package="cifarcam")
class CoupledSGD(_BiasRate, keras.optimizers.SGD):
    """torch.optim.SGD's update, which airbench trains with: the weight decay is added to the gradient
    (so it passes through the momentum), and the learning rate scales the momentum's output instead
    of entering it (Keras's SGD differs there whenever the rate changes from step to step).

    BN's shifts, whose rate is `bias_lr_scale` times higher, decay at `coupled_weight_decay /
    bias_lr_scale`: every weight then shrinks by the same share per step, as in airbench's two
    parameter groups.
    """

    def __init__(self, coupled_weight_decay=0.0, **options):
        super().__init__(**options)
        self.coupled_weight_decay = coupled_weight_decay

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        scale = self.bias_lr_scale if index in self._scaled else 1.0
        learning_rate = keras.ops.cast(learning_rate, variable.dtype) * scale
        gradient = keras.ops.cast(gradient, variable.dtype) + (self.coupled_weight_decay / scale) * variable
        if self.momentum == 0:
            self.assign_sub(variable, learning_rate * gradient)
            return
        momentum, buffer = keras.ops.cast(self.momentum, variable.dtype), self.momentums[index]
        self.assign(buffer, momentum * buffer + gradient)
        self.assign_sub(variable, learning_rate * (gradient + momentum * buffer if self.nesterov else buffer))

    def get_config(self):
        return super().get_config() | {"coupled_weight_decay": self.coupled_weight_decay}


@keras.saving.register_keras_serializable(package="cifarcam")
class Muon(CoupledSGD):
    """airbench94_muon's optimizer (Jordan et al. 2024): Muon for the convolution kernels, CoupledSGD for the rest.

    Each kernel steps along its orthogonalized Nesterov momentum (`muon_momentum`): the update
    matrix (kernel positions x input channels, by output channels) with its singular values pushed
    towards 1 by three Newton-Schulz iterations, so that every direction of the update moves
    alike, at `muon_scale` times the scheduled rate. The kernel is first renormalized to a norm of
    sqrt(output channels) and is not decayed. The other weights take CoupledSGD's steps; the
    whitening bias joins BN's shifts at `bias_lr_scale` times the rate, as in airbench94_muon.
    """

    NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)  # airbench's quintic: the steepest slope at zero that still converges

    def __init__(self, muon_scale=1.0, muon_momentum=0.6, **options):
        super().__init__(**options)
        self.muon_scale, self.muon_momentum = muon_scale, muon_momentum

    def build(self, variables):
        super().build(variables)
        self._orthogonalized = {self._get_variable_index(v) for v in variables if len(v.shape) == 4}
        self._scaled |= {self._get_variable_index(v) for v in variables if v.path == "whiten/bias"}

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if index not in self._orthogonalized:
            return super().update_step(gradient, variable, learning_rate)
        momentum, buffer = keras.ops.cast(self.muon_momentum, variable.dtype), self.momentums[index]
        gradient = keras.ops.cast(gradient, variable.dtype)
        self.assign(buffer, momentum * buffer + gradient)
        update = orthogonalized(gradient + momentum * buffer)
        outputs = variable.shape[-1]
        self.assign(variable, variable * (math.sqrt(outputs) / keras.ops.norm(keras.ops.reshape(variable, (-1,)))))
        self.assign_sub(variable, keras.ops.cast(learning_rate, variable.dtype) * self.muon_scale * update)

    def get_config(self):
        return super().get_config() | {"muon_scale": self.muon_scale, "muon_momentum": self.muon_momentum}


def orthogonalized(update, steps=3, epsilon=1e-7):
    """`update` with the singular values of its (positions x inputs, outputs) matrix near 1 (Newton-Schulz)."""
    a, b, c = Muon.NEWTON_SCHULZ
    matrix = keras.ops.reshape(update, (-1, update.shape[-1]))
    wide = matrix.shape[0] <= matrix.shape[1]
    x = matrix if wide else keras.ops.transpose(matrix)
    x = x / (keras.ops.norm(x) + epsilon)  # the largest singular value ≤ 1
    for _ in range(steps):
        gram = keras.ops.matmul(x, keras.ops.transpose(x))
        x = a * x + keras.ops.matmul(b * gram + c * keras.ops.matmul(gram, gram), x)
    return keras.ops.reshape(x if wide else keras.ops.transpose(x), update.shape)


def optimizer(params, steps_per_epoch):
    """Muon (see Muon), AdamW (Adam when weight_decay is 0) or SGD with Nesterov momentum; weight decay
    is decoupled unless `weight_decay_mode` is coupled (SGD and Muon: torch.optim.SGD's, see CoupledSGD).

    Keras's own classes unless BN's shifts get a rate of their own or the whitening bias stops: the
    subclasses compile to another graph, which rounds differently, so a recipe without either
    keeps the plainer one.
    """
    rate = learning_rate(params, steps_per_epoch)
    extras = {"bias_lr_scale": params["bias_lr_scale"]} if params["bias_lr_scale"] != 1 else {}
    if params["whiten_bias_epochs"] is not None:
        extras["whiten_bias_steps"] = params["whiten_bias_epochs"] * steps_per_epoch
    if params["optimizer"] == "muon":
        muon = {"muon_scale": params["muon_learning_rate"] / params["learning_rate"], "muon_momentum": params["muon_momentum"]}
        return Muon(coupled_weight_decay=params["weight_decay"], learning_rate=rate, momentum=params["momentum"], nesterov=True, **muon, **extras)
    if params["weight_decay_mode"] == "coupled":
        if params["optimizer"] != "sgd":
            raise ValueError(f"weight_decay_mode coupled takes optimizer sgd, not {params['optimizer']}")
        return CoupledSGD(params["weight_decay"], learning_rate=rate, momentum=params["momentum"], nesterov=True, **extras)
    sgd, adamw = (SGD, AdamW) if extras else (keras.optimizers.SGD, keras.optimizers.AdamW)
    options = {"learning_rate": rate, "weight_decay": params["weight_decay"]} | extras
    if params["optimizer"] == "sgd":
        return sgd(momentum=params["momentum"], nesterov=True, **options)
    return adamw(beta_1=params["momentum"], **options)


def build_network(params, input_shape):
    """The network of a train_* section, in the current dtype policy."""
    options = [params[key] for key in ("dropout", "widths", "depth", "batchnorm_momentum", "activation")]
    return models.build(params["arch"], input_shape, *options)


def compile_trainer(params, train_images):
    """The training model: uint8 images scaled to [0, 1], augmented, then the network; compiled with the recipe.

    `params["precision"]` (`auto`: see cifarcam.precision) applies to this model only: the global
    dtype policy is restored after.
    """
    if train_images.dtype != np.uint8:
        raise ValueError(f"the trainer takes uint8 images, not {train_images.dtype}: load them with load_prepared(path, scale=False)")
    steps = batches.steps_per_epoch(len(train_images), params["batch_size"])
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision.resolve(params["precision"]))
    try:
        network = build_network(params, train_images.shape[1:])
        if params["arch"] == "airbench":
            stride = math.ceil(len(train_images) / WHITENING_IMAGES)  # spread over the classes, which the split keeps in order
            network.get_layer("whiten").adapt(to_unit_range(train_images[::stride]))
        augment = Augment(params["flip"], params["translate"], params["cutout"], steps, params["seed"])
        scale = UnitRange(name="unit_range", dtype="float32")
        trainer = keras.Sequential([keras.Input(train_images.shape[1:], dtype="uint8"), scale, augment, network], name="trainer")
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

    The optimizer already keeps the bias still from then on (see _BiasRate), but while the bias is
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
    if params["arch"] == "airbench" and params["whiten_bias_epochs"] is not None and keras.backend.backend() == "tensorflow":
        added.append(FreezeWhiteningBias(params["whiten_bias_epochs"]))
    return added


def one_hot(labels):
    return np.eye(models.NUM_CLASSES, dtype=np.float32)[labels]


