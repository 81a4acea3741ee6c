"""Train one model as its recipe (a train section of params.yaml) describes it, logging each epoch with DVCLive.

Training resumes from a checkpoint after a kill; only the network (not the augmenting
training wrapper of cifarcam.training.recipe) is returned, so inference and Grad-CAM see a plain
classifier. Under CIFARCAM_DISTRIBUTE=data_parallel (cifarcam.scale.distributed) every process
trains its shard of each batch, and only process 0 writes.
"""

import contextlib
import math
import time
from dataclasses import dataclass

from dvclive import Live

from cifarcam.core.backend import keras
from cifarcam.core.errors import PipelineError
from cifarcam.scale import distributed
from cifarcam.training import checkpoint, precision
from cifarcam.training.batches import Batches
from cifarcam.training.recipe import callbacks, compile_trainer, one_hot


def make_deterministic(seed):
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels.

    TensorFlow's other half of determinism, one op at a time, must be set before it starts:
    `cifarcam/core/backend.py` does it.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class LiveLogger(keras.callbacks.Callback):
    """Send each epoch's train and validation metrics to DVCLive (backend-neutral, unlike dvclive.keras)."""

    def __init__(self, live):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch, logs=None):
        log_epoch(self.live, logs or {})


def log_epoch(live, logs):
    for name, value in logs.items():
        split, metric = ("val", name[4:]) if name.startswith("val_") else ("train", name)
        if metric in ("loss", "accuracy"):
            live.log_metric(f"{split}/{metric}", float(value))
    live.next_step()


@dataclass
class Run:
    """A training where it stands: the trainer, the epochs done, whether it already stopped, the
    history of every epoch's logs, and the early stopping that keeps the best weights."""

    model: keras.Model
    epochs_done: int
    stopped: bool
    history: list
    early_stopping: checkpoint.ResumableEarlyStopping


def resume(params, x_train, fingerprint, checkpoint_dir, place):
    """The run a checkpoint with this fingerprint holds, or a new one (an untrained, compiled trainer)."""
    # agreed before loading: loading makes variables, which all processes must make together
    place.check_agreed(checkpoint.epochs_done(checkpoint_dir, fingerprint), checkpoint_dir)
    with place.scope():  # where the variables are made: a tf.distribute strategy's under mirrored
        resumed = checkpoint.load(checkpoint_dir, fingerprint)
        if not resumed:
            model = compile_trainer(params, x_train)
            return Run(model, 0, False, [], checkpoint.ResumableEarlyStopping(params["patience"]))
    model, state, best_weights = resumed
    print(f"resuming from the checkpoint after epoch {state['epochs_done']} in {checkpoint_dir}")
    early_stopping = checkpoint.ResumableEarlyStopping(params["patience"], (state["early_stopping"], best_weights))
    return Run(model, state["epochs_done"], state["stop"], state["history"], early_stopping)


def fit(run, params, arrays, fingerprint, checkpoint_dir, place, live):
    """Train the rest of the schedule, checkpointing after every epoch; a stopped run only takes its best weights."""
    if run.stopped:
        run.model.set_weights(run.early_stopping.best_weights)
        return
    x_train, y_train, x_val, y_val = arrays
    x_shard, y_shard, x_val_shard, y_val_shard = place.shard(x_train, y_train) + place.shard(x_val, y_val)
    batch_size = params["batch_size"] // place.process_count
    saver = checkpoint.Checkpoint(checkpoint_dir, fingerprint, run.early_stopping, run.history, output=place.output)
    run.model.fit(
        Batches(x_shard, one_hot(y_shard), batch_size, params["seed"], epoch=run.epochs_done),
        validation_data=Batches(x_val_shard, one_hot(y_val_shard), batch_size),
        shuffle=False,
        initial_epoch=run.epochs_done,
        epochs=params["epochs"],
        callbacks=[
            keras.callbacks.TerminateOnNaN(),
            *callbacks(params, run.model, len(x_train)),
            run.early_stopping,
            saver,
            *([LiveLogger(live)] if live else []),
        ],
        verbose=2 if place.writes else 0,
    )


def summarise(history):
    """The training's summary for DVCLive; a loss that became NaN is the user's to fix."""
    losses = [logs["loss"] for logs in history]
    if not all(math.isfinite(loss) for loss in losses):
        raise PipelineError(
            f"training diverged: the loss became NaN at epoch {len(losses)}; lower learning_rate in params.yaml"
        )
    val_losses = [logs["val_loss"] for logs in history]
    best_epoch = val_losses.index(min(val_losses)) + 1
    return {
        "epochs_run": len(losses),
        "best_epoch": best_epoch,
        "best_val_loss": min(val_losses),
        "best_val_accuracy": history[best_epoch - 1]["val_accuracy"],
    }


def train(data, params, live_dir, checkpoint_dir, place=None):
    """Build (or resume), fit and return the model described by `params` (a variant's recipe).

    `data` holds the split's uint8 images, as `load_prepared(path, scale=False)` gives them;
    `place` is this process's `distributed.Place` (default: the only process).
    """
    place = place or distributed.Place()
    make_deterministic(params["seed"])
    # resolved first, so that a checkpoint made in another precision (on another machine) is not resumed
    params = params | {"precision": precision.resolve(params["precision"])}
    print(f"computing in {params['precision']}")
    arrays = place.evened(*(data[key] for key in ("x_train", "y_train", "x_val", "y_val")))
    fingerprint = checkpoint.fingerprint(params, arrays)
    run = resume(params, arrays[0], fingerprint, checkpoint_dir, place)
    with Live(live_dir, dvcyaml=None, save_dvc_exp=False) if place.writes else contextlib.nullcontext() as live:
        for logs in run.history if live else ():
            log_epoch(live, logs)
        started = time.perf_counter()
        fit(run, params, arrays, fingerprint, checkpoint_dir, place, live)
        summary = summarise(run.history)
        if live:
            live.summary.update(summary)
        print(
            f"trained {summary['epochs_run']} epochs in {time.perf_counter() - started:.0f} s; best epoch "
            f"{summary['best_epoch']}"
        )
    return run.model.layers[-1]
