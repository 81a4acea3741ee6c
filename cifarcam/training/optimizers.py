"""The optimizers of a train section: Keras's SGD and AdamW, torch.optim.SGD's coupled update, and Muon.

Each can give BN's shifts a learning rate of their own and stop the whitening bias after some
steps, as airbench does (see _BiasRate).
"""

import math

from cifarcam.core.backend import keras
from cifarcam.training.schedule import learning_rate


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
        stopping = [
            self._get_variable_index(v)
            for v in variables
            if v.path == "whiten/bias" and self.whiten_bias_steps is not None
        ]
        self._stopping_index = stopping[0] if stopping else None

    def _backend_apply_gradients(self, grads, trainable_variables):
        if self._stopping_index is None:
            return super()._backend_apply_gradients(grads, trainable_variables)
        index = self._stopping_index
        slots = [
            getattr(self, name)[index]
            for name in ("momentums", "_momentums", "_velocities")
            if getattr(self, name, None)
        ]
        stopping = [self._trainable_variables[index], *slots]
        kept = [keras.ops.copy(variable.value) for variable in stopping]
        super()._backend_apply_gradients(grads, trainable_variables)
        stopped = keras.ops.greater_equal(self.iterations, self.whiten_bias_steps)
        for variable, value in zip(stopping, kept, strict=True):
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
        muon = {
            "muon_scale": params["muon_learning_rate"] / params["learning_rate"],
            "muon_momentum": params["muon_momentum"],
        }
        return Muon(
            coupled_weight_decay=params["weight_decay"],
            learning_rate=rate,
            momentum=params["momentum"],
            nesterov=True,
            **muon,
            **extras,
        )
    if params["weight_decay_mode"] == "coupled":
        if params["optimizer"] != "sgd":
            raise ValueError(f"weight_decay_mode coupled takes optimizer sgd, not {params['optimizer']}")
        return CoupledSGD(
            params["weight_decay"], learning_rate=rate, momentum=params["momentum"], nesterov=True, **extras
        )
    sgd, adamw = (SGD, AdamW) if extras else (keras.optimizers.SGD, keras.optimizers.AdamW)
    options = {"learning_rate": rate, "weight_decay": params["weight_decay"]} | extras
    if params["optimizer"] == "sgd":
        return sgd(momentum=params["momentum"], nesterov=True, **options)
    return adamw(beta_1=params["momentum"], **options)
