"""Train one model as a train_* section of params.yaml describes it, logging each epoch with DVCLive.

Training resumes from a checkpoint after a kill; only the network (not the augmenting
training wrapper of cifarcam.recipe) is returned, so inference and Grad-CAM see a plain classifier.
Under CIFARCAM_DISTRIBUTE=data_parallel (cifarcam.distributed) every process trains its shard of
each batch, and only process 0 writes.
"""

import contextlib
import math
import time

from dvclive import Live

from cifarcam import checkpoint, distributed, precision
from cifarcam.backend import keras
from cifarcam.batches import Batches
from cifarcam.errors import PipelineError
from cifarcam.recipe import callbacks, compile_trainer, one_hot


def make_deterministic(seed):
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels.

    TensorFlow's other half of determinism, one op at a time, must be set before it starts:
    `cifarcam/backend.py` does it.
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


def train(data, params, live_dir, checkpoint_dir, place=None):
    """Build (or resume), fit and return the model described by `params` (a train_* section).

    `data` holds the split's uint8 images, as `load_prepared(path, scale=False)` gives them;
    `place` is this process's `distributed.Place` (default: the only process).
    """
    place = place or distributed.Place()
    make_deterministic(params["seed"])
    # resolved first, so that a checkpoint made in another precision (on another machine) is not resumed
    params = params | {"precision": precision.resolve(params["precision"])}
    print(f"computing in {params['precision']}")
    arrays = place.evened(*(data[key] for key in ("x_train", "y_train", "x_val", "y_val")))
    x_train, y_train, x_val, y_val = arrays
    run_fingerprint = checkpoint.fingerprint(params, arrays)
    # agreed before loading: loading makes variables, which all processes must make together
    place.check_agreed(checkpoint.epochs_done(checkpoint_dir, run_fingerprint), checkpoint_dir)
    with place.scope():  # where the variables are made: a tf.distribute strategy's under mirrored
        resumed = checkpoint.load(checkpoint_dir, run_fingerprint)
        model = resumed[0] if resumed else compile_trainer(params, x_train)
    if resumed:
        _, state, best_weights = resumed
        history = state["history"]
        print(f"resuming from the checkpoint after epoch {state['epochs_done']} in {checkpoint_dir}")
        early_stopping = checkpoint.ResumableEarlyStopping(params["patience"], (state["early_stopping"], best_weights))
    else:
        state, history = None, []
        early_stopping = checkpoint.ResumableEarlyStopping(params["patience"])
    saver = checkpoint.Checkpoint(checkpoint_dir, run_fingerprint, early_stopping, history, output=place.output)

    with Live(live_dir, dvcyaml=None, save_dvc_exp=False) if place.writes else contextlib.nullcontext() as live:
        for logs in history if live else ():
            log_epoch(live, logs)
        started = time.perf_counter()
        if state and state["stop"]:
            model.set_weights(best_weights)
        else:
            x_shard, y_shard, x_val_shard, y_val_shard = place.shard(x_train, y_train) + place.shard(x_val, y_val)
            batch_size, initial_epoch = params["batch_size"] // place.process_count, state["epochs_done"] if state else 0
            model.fit(
                Batches(x_shard, one_hot(y_shard), batch_size, params["seed"], epoch=initial_epoch),
                validation_data=Batches(x_val_shard, one_hot(y_val_shard), batch_size),
                shuffle=False,
                initial_epoch=initial_epoch,
                epochs=params["epochs"],
                callbacks=[
                    keras.callbacks.TerminateOnNaN(),
                    *callbacks(params, model, len(x_train)),
                    early_stopping,
                    saver,
                    *([LiveLogger(live)] if live else []),
                ],
                verbose=2 if place.writes else 0,
            )
        losses = [logs["loss"] for logs in history]
        if not all(math.isfinite(loss) for loss in losses):
            raise PipelineError(
                f"training diverged: the loss became NaN at epoch {len(losses)}; lower learning_rate in params.yaml"
            )
        val_losses = [logs["val_loss"] for logs in history]
        best_epoch = val_losses.index(min(val_losses)) + 1
        if live:
            live.summary.update(
                {
                    "epochs_run": len(losses),
                    "best_epoch": best_epoch,
                    "best_val_loss": min(val_losses),
                    "best_val_accuracy": history[best_epoch - 1]["val_accuracy"],
                }
            )
        print(f"trained {len(losses)} epochs in {time.perf_counter() - started:.0f} s; best epoch {best_epoch}")
    return model.layers[-1]
