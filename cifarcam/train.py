"""Train one model with early stopping on the validation split, logging each epoch with DVCLive."""

import math
import time

import keras
from dvclive import Live

from cifarcam import models
from cifarcam.errors import PipelineError


def make_deterministic(seed):
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels."""
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
        for name, value in (logs or {}).items():
            split, metric = ("val", name[4:]) if name.startswith("val_") else ("train", name)
            if metric in ("loss", "accuracy"):
                self.live.log_metric(f"{split}/{metric}", float(value))
        self.live.next_step()


def train(data, params, live_dir):
    """Build, fit and return the model described by `params` (one train_* section of params.yaml)."""
    make_deterministic(params["seed"])
    model = models.build(params["arch"], data["x_train"].shape[1:], params["dropout"])
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params["patience"], restore_best_weights=True
    )
    with Live(live_dir, dvcyaml=None, save_dvc_exp=False) as live:
        started = time.perf_counter()
        history = model.fit(
            data["x_train"],
            data["y_train"],
            validation_data=(data["x_val"], data["y_val"]),
            epochs=params["epochs"],
            batch_size=params["batch_size"],
            callbacks=[keras.callbacks.TerminateOnNaN(), early_stopping, LiveLogger(live)],
            verbose=2,
        )
        losses = history.history["loss"]
        if any(math.isnan(loss) or math.isinf(loss) for loss in losses):
            raise PipelineError(
                f"training diverged: the loss became NaN at epoch {len(losses)}; lower learning_rate in params.yaml"
            )
        val_losses = history.history["val_loss"]
        best_epoch = val_losses.index(min(val_losses)) + 1
        live.summary.update(
            {
                "epochs_run": len(losses),
                "best_epoch": best_epoch,
                "best_val_loss": min(val_losses),
                "best_val_accuracy": history.history["val_accuracy"][best_epoch - 1],
                "train_seconds": round(time.perf_counter() - started, 1),
            }
        )
    return model
