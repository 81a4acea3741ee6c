"""The lookahead pulls the weights into its slow copy on schedule, under TensorFlow and JAX alike."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from pipeline_project import ROOT

from cifarcam.training.lookahead import FINAL_DECAY, Lookahead

STEPS_PER_EPOCH, EPOCHS = 6, 2


def tiny_trainer():
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    trainer = keras.Sequential([keras.Input((4,)), network])
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    data = np.random.default_rng(0).random((STEPS_PER_EPOCH * 8, 4)).astype(np.float32)
    return trainer, network, data, data[:, :3] * 2


class RecordedLookahead(Lookahead):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pulls = []

    def pull(self, decay):
        self.pulls.append((self.step, decay))
        super().pull(decay)


def test_pulls_come_every_few_steps_and_at_each_epoch_end_with_a_growing_decay():
    trainer, network, x, y = tiny_trainer()
    lookahead = RecordedLookahead(network, every=4, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS)
    trainer.fit(x, y, batch_size=8, epochs=1, callbacks=[lookahead], verbose=0)
    resumed = RecordedLookahead(network, every=4, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS)
    trainer.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, callbacks=[resumed], verbose=0)
    pulls = lookahead.pulls + resumed.pulls  # the resumed run counts on from the optimizer's steps
    assert [step for step, _ in pulls] == [4, 6, 8, 12]
    assert [decay for _, decay in pulls] == pytest.approx([FINAL_DECAY * (step / 12) ** 3 for step in (4, 6, 8, 12)])


def test_training_ends_on_the_slow_copy_which_averages_the_fast_weights():
    trainer, network, x, y = tiny_trainer()
    lookahead = Lookahead(network, every=2, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS)
    trainer.fit(x, y, batch_size=8, epochs=EPOCHS, callbacks=[lookahead], verbose=0)
    assert len(lookahead.variables) == len(network.variables) == 6  # BN's statistics too
    assert all(
        np.array_equal(keras.ops.convert_to_numpy(v), s)
        for v, s in zip(lookahead.variables, lookahead.slow, strict=True)
    )
    plain, plain_network, _, _ = tiny_trainer()
    plain.fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0)
    assert not np.allclose(network.get_weights()[-2], plain_network.get_weights()[-2])


# A pull with decay 1 sets the weights back to the slow copy, here the initial weights: if the
# trainer ignored the pulls (JAX keeps its own copy of the state), the weights would move.
FROZEN = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    sys.path.insert(0, "tests")
    from test_lookahead import EPOCHS, STEPS_PER_EPOCH, tiny_trainer
    from cifarcam.training.lookahead import Lookahead

    class Frozen(Lookahead):
        def pull(self, decay):
            super().pull(1.0)

    trainer, network, x, y = tiny_trainer()
    initial = network.get_weights()
    trainer.fit(x, y, batch_size=8, epochs=EPOCHS, callbacks=[Frozen(network, 1, STEPS_PER_EPOCH, EPOCHS)], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(initial, network.get_weights())), keras.backend.backend()
    print("frozen under", keras.backend.backend())
    """
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_pulls_reach_the_training_state_under_each_backend(backend):
    env = os.environ | {"KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", FROZEN], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"frozen under {backend}" in result.stdout
