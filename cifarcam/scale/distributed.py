"""Data-parallel training over every device of every process, through Keras's distribution API.

`CIFARCAM_DISTRIBUTE=data_parallel` (JAX backend) lays the weights out replicated and splits
each global batch (params.yaml's `batch_size`) over all devices: the same recipe, only spread out.
Several processes (hosts) join through JAX's distributed runtime, configured by Keras's variables
KERAS_DISTRIBUTION_JOB_ADDRESSES (the coordinator's host:port, first), KERAS_DISTRIBUTION_NUM_PROCESSES
and KERAS_DISTRIBUTION_PROCESS_ID, or, inside a Slurm job of several tasks with none of them set,
from Slurm's own variables (JAX reads them). Each process feeds its own shard of the images; only
process 0 writes the model, DVCLive's records and the checkpoints.

`CIFARCAM_DISTRIBUTE=mirrored` (TensorFlow backend) is tf.distribute.MirroredStrategy over the
host's GPUs (or, with none, its logical CPU devices): several devices of one host only, since
Keras 3 does not support tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras#20585).
"""

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.core.errors import PipelineError
from cifarcam.core.files import atomic_output

MODE_VARIABLE = "CIFARCAM_DISTRIBUTE"
KERAS_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclass(frozen=True)
class Place:
    """Where this process stands in the training: its index, how many processes, how many devices in all."""

    process_id: int = 0
    process_count: int = 1
    device_count: int = 1
    scope: Callable = contextlib.nullcontext  # where the model's variables are made (a tf.distribute strategy's)

    @property
    def writes(self):
        return self.process_id == 0

    def output(self, path):
        """`atomic_output(path)` for process 0; elsewhere a path in a folder thrown away after.

        Keras's saving makes variables, which every process of a multi-process distribution must
        make together, so every process saves and only process 0 keeps what it saved.
        """
        return atomic_output(path) if self.writes else _thrown_away(path.name)

    def check_agreed(self, epochs_done, checkpoint_dir):
        """Stop unless every process resumes from the same epoch (so from the same checkpoint)."""
        if self.process_count == 1:
            return
        from jax.experimental import multihost_utils

        seen = multihost_utils.process_allgather(np.int32(epochs_done)).tolist()
        if len(set(seen)) > 1:
            raise PipelineError(
                f"the processes found checkpoints after epochs {seen} in {checkpoint_dir}: put the checkpoints "
                "folder on storage every process shares, or delete it on every host to start afresh"
            )

    def evened(self, *arrays):
        """Each array without its last rows past a multiple of `process_count` (at most `process_count - 1`).

        Shares of equal length keep every process at the same step count: a collective waits for all.
        """
        return tuple(array[: len(array) // self.process_count * self.process_count] for array in arrays)

    def shard(self, *arrays):
        """This process's share of each evened array: every `process_count`-th row."""
        return tuple(array[self.process_id :: self.process_count] for array in self.evened(*arrays))


def start(batch_size):
    """Set up the distribution `CIFARCAM_DISTRIBUTE` asks for (before any model is built); this process's Place."""
    mode = os.environ.get(MODE_VARIABLE, "")
    if not mode:
        return Place()
    if mode not in ("data_parallel", "mirrored"):
        raise PipelineError(
            f"{MODE_VARIABLE}={mode!r} is not a distribution: set it to data_parallel (JAX) or mirrored "
            "(TensorFlow), or unset it"
        )
    if mode == "mirrored":
        return _mirrored(batch_size)
    if keras.backend.backend() != "jax":
        raise PipelineError(
            f"{MODE_VARIABLE}=data_parallel needs KERAS_BACKEND=jax: Keras's distribution API does not support "
            "TensorFlow yet (on TensorFlow, mirrored spreads over one host's devices)"
        )
    if _joins_several_processes():
        keras.distribution.initialize()
    import jax

    devices = keras.distribution.list_devices()
    place = Place(jax.process_index(), jax.process_count(), len(devices))
    _check_split(batch_size, place.device_count)
    # auto_shard_dataset=False: each process passes its own shard (Place.shard) as NumPy arrays
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    print(f"data parallel: process {place.process_id} of {place.process_count}, {place.device_count} devices in all")
    return place


def _mirrored(batch_size):
    if keras.backend.backend() != "tensorflow":
        raise PipelineError(
            f"{MODE_VARIABLE}=mirrored is TensorFlow's MirroredStrategy: set KERAS_BACKEND=tensorflow, or use "
            "data_parallel on JAX"
        )
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    _check_split(batch_size, strategy.num_replicas_in_sync)
    print(f"mirrored: {strategy.num_replicas_in_sync} devices of this host")
    return Place(device_count=strategy.num_replicas_in_sync, scope=strategy.scope)


def _check_split(batch_size, device_count):
    if batch_size % device_count:
        raise PipelineError(
            f"batch_size {batch_size} does not split over {device_count} devices: set train.batch_size in "
            f"params.yaml to a multiple of {device_count}"
        )


def _joins_several_processes():
    if any(name in os.environ for name in KERAS_VARIABLES):
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1


@contextlib.contextmanager
def _thrown_away(name):
    with tempfile.TemporaryDirectory(prefix="cifarcam-unkept-") as folder:
        yield Path(folder) / name
