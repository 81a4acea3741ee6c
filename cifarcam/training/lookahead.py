"""airbench's lookahead: every few steps the weights are pulled into a slow copy and reset to it.

The slow copy (the network's weights and BN statistics) follows the fast weights with a decay
that grows from 0 to 0.95^5 as (step / total steps)^3: no averaging early on, an average over
the last hundred or so steps at the end, which smooths out the noise of a high learning rate.
The pull also happens at the end of each epoch, so that validation, early stopping and the
checkpoint always see the slow copy (and a resumed run restarts it from the saved weights).
"""

import numpy as np

from cifarcam.core.backend import keras

FINAL_DECAY = 0.95**5  # airbench's, for a pull every 5 steps


class Lookahead(keras.callbacks.Callback):
    """Pulls `network`'s float variables into the slow copy every `every` steps and at each epoch's end."""

    def __init__(self, network, every, steps_per_epoch, epochs):
        super().__init__()
        self.network, self.every, self.steps_per_epoch = network, every, steps_per_epoch
        self.total_steps = steps_per_epoch * epochs

    def on_train_begin(self, logs=None):
        self.variables = [v for v in self.network.variables if "float" in v.dtype]
        self.slow = [keras.ops.convert_to_numpy(v) for v in self.variables]
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0 or self.step % self.steps_per_epoch == 0:
            self.pull(FINAL_DECAY * (self.step / self.total_steps) ** 3)

    def pull(self, decay):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()  # the JAX trainer reloads its state from the variables after this
        for index, variable in enumerate(self.variables):
            fast = keras.ops.convert_to_numpy(variable)
            self.slow[index] = (decay * self.slow[index] + (1 - decay) * fast).astype(np.float32)
            variable.assign(self.slow[index])
