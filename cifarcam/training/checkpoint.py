"""Resumable training: after every epoch, the model with its optimizer state and where training stood.

A killed run resumes from its last finished epoch when the parameters and data are the same
(a fingerprint of both is kept beside the checkpoint) and ends with the weights an uninterrupted
run would have: the random draws' seed states are kept too. Anything else starts afresh. Once training
has finished the folder keeps only a small marker: a forced rerun really trains again, and the
finished folder is the same for every run, so DVC can cache it, push it and check it out.
"""

import hashlib
import json
import math

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.core.files import atomic_output

MODEL, BEST_WEIGHTS, SEEDS, STATE = "model.keras", "best_weights.npz", "seeds.npz", "state.json"


def fingerprint(params, arrays):
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on the validation loss whose patience count and best weights survive a restart.

    A patience of None never stops (a fixed schedule runs all its epochs) but keeps the same state.
    """

    def __init__(self, patience, resume_from=None):
        super().__init__(
            monitor="val_loss", patience=math.inf if patience is None else patience, restore_best_weights=True
        )
        self.resume_from = resume_from
        if resume_from:
            self.best_weights = resume_from[1]  # before training too: a run that had stopped only takes them

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume_from:
            state, self.best_weights = self.resume_from
            self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]

    def state(self):
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch}


class Checkpoint(keras.callbacks.Callback):
    """Saves the model, the early-stopping state and the history so far after every healthy epoch.

    `output(folder)` gives the partial folder to write (data-parallel training: only process 0's is kept).
    """

    def __init__(self, folder, fingerprint, early_stopping, history, output=atomic_output):
        super().__init__()
        self.folder, self.fingerprint, self.early_stopping, self.history = folder, fingerprint, early_stopping, history
        self.output = output

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        self.history.append(logs)
        if not all(math.isfinite(value) for value in logs.values()):
            return
        with self.output(self.folder) as partial:
            partial.mkdir()
            self.model.save(partial / MODEL)
            np.savez(partial / BEST_WEIGHTS, *self.early_stopping.best_weights)
            np.savez(partial / SEEDS, *(keras.ops.convert_to_numpy(seed) for seed in seed_states(self.model)))
            state = {
                "fingerprint": self.fingerprint,
                "epochs_done": epoch + 1,
                "stop": bool(self.model.stop_training),
                "early_stopping": self.early_stopping.state(),
                "history": self.history,
            }
            (partial / STATE).write_text(json.dumps(state))


def seed_states(model):
    """The state of the model's random draws (augmentation, dropout), which a .keras file leaves out:
    reloaded without it, a resumed training would draw the first epochs' shifts and masks again."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _state(folder, fingerprint):
    try:
        state = json.loads((folder / STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    # a checkpoint without the seeds (made before they were kept) would not resume the same run
    return state if state.get("fingerprint") == fingerprint and (folder / SEEDS).exists() else None


def epochs_done(folder, fingerprint):
    """The epochs a checkpoint made with this fingerprint holds (0: none), read without loading it."""
    state = _state(folder, fingerprint)
    return state["epochs_done"] if state else 0


def load(folder, fingerprint):
    """(model, state, best_weights) of a checkpoint made with this fingerprint, else None."""
    state = _state(folder, fingerprint)
    if state is None:
        return None
    best_weights = _arrays(folder / BEST_WEIGHTS)
    model = keras.models.load_model(folder / MODEL)
    for seed, value in zip(seed_states(model), _arrays(folder / SEEDS), strict=True):
        seed.assign(value)
    return model, state, best_weights


def _arrays(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def finish(folder):
    """Replace the checkpoint with the marker of a finished training."""
    with atomic_output(folder) as partial:
        partial.mkdir()
        (partial / STATE).write_text(json.dumps({"finished": True}) + "\n")
