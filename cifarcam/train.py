"""Train one model as a train_* section of params.yaml describes it, logging each epoch with DVCLive.

Training resumes from a checkpoint after a kill; only the network (not the augmenting
training wrapper of cifarcam.recipe) is returned, so inference and Grad-CAM see a plain classifier.
"""

import math
import time

from dvclive import Live

from cifarcam import checkpoint, precision
from cifarcam.backend import keras
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


def train(data, params, live_dir, checkpoint_dir):
    """Build (or resume), fit and return the model described by `params` (a train_* section).

    `data` holds the split's uint8 images, as `load_prepared(path, scale=False)` gives them.
    """
    make_deterministic(params["seed"])
    # resolved first, so that a checkpoint made in another precision (on another machine) is not resumed
    params = params | {"precision": precision.resolve(params["precision"])}
    print(f"computing in {params['precision']}")
    arrays = (data["x_train"], data["y_train"], data["x_val"], data["y_val"])
    run_fingerprint = checkpoint.fingerprint(params, arrays)
    resumed = checkpoint.load(checkpoint_dir, run_fingerprint)
    if resumed:
        model, state, best_weights = resumed
        history = state["history"]
        print(f"resuming from the checkpoint after epoch {state['epochs_done']} in {checkpoint_dir}")
        early_stopping = checkpoint.ResumableEarlyStopping(params["patience"], (state["early_stopping"], best_weights))
    else:
        model, state, history = compile_trainer(params, data["x_train"]), None, []
        early_stopping = checkpoint.ResumableEarlyStopping(params["patience"])
    saver = checkpoint.Checkpoint(checkpoint_dir, run_fingerprint, early_stopping, history)

    with Live(live_dir, dvcyaml=None, save_dvc_exp=False) as live:
        for logs in history:
            log_epoch(live, logs)
        started = time.perf_counter()
        if state and state["stop"]:
            model.set_weights(best_weights)
        else:
            model.fit(
                data["x_train"],
                one_hot(data["y_train"]),
                validation_data=(data["x_val"], one_hot(data["y_val"])),
                initial_epoch=state["epochs_done"] if state else 0,
                epochs=params["epochs"],
                batch_size=params["batch_size"],
                callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks(params, model, len(data["x_train"])), early_stopping, saver, LiveLogger(live)],
                verbose=2,
            )
        losses = [logs["loss"] for logs in history]
        if not all(math.isfinite(loss) for loss in losses):
            raise PipelineError(
                f"training diverged: the loss became NaN at epoch {len(losses)}; lower learning_rate in params.yaml"
            )
        val_losses = [logs["val_loss"] for logs in history]
        best_epoch = val_losses.index(min(val_losses)) + 1
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
