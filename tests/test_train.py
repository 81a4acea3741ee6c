import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pipeline_project import ROOT
from recipes import SHARED

from cifarcam.core.errors import PipelineError
from cifarcam.training.train import train

DEFAULT = SHARED
# A small ResNet on a plain AdamW recipe: what these tests check does not depend on the default's recipe.
SMALL_RESNET = {
    "arch": "resnet",
    "widths": [8, 16, 16],
    "batchnorm_momentum": 0.9,
    "activation": "relu",
    "optimizer": "adamw",
    "momentum": 0.9,
    "learning_rate": 0.005,
    "bias_lr_scale": 1,
    "whiten_bias_epochs": None,
    "warmup": 0.25,
    "lr_start": 0.1,
    "weight_decay": 0.2,
    "weight_decay_mode": "decoupled",
    "label_smoothing": 0.1,
    "flip": "random",
    "epochs": 2,
    "batch_size": 16,
    "precision": "float32",
    "patience": 3,
    "seed": 7,
}
PARAMS = DEFAULT | SMALL_RESNET


def tiny_data(seed=0, per_class=6):
    """Gray uint8 images (as the pipeline stores them) whose class sets their brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def split():
        labels = np.repeat(np.arange(10), per_class)
        images = labels[:, None, None, None] / 10 + rng.random((len(labels), 32, 32, 1)) * 0.1
        return np.round(images * 255).astype(np.uint8), labels

    (x_train, y_train), (x_val, y_val) = split(), split()
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}


def test_training_logs_every_epoch_with_dvclive(tmp_path):
    model = train(tiny_data(), PARAMS, tmp_path / "live", tmp_path / "checkpoint")
    assert model.output_shape == (None, 10)
    for split in ("train", "val"):
        for metric in ("loss", "accuracy"):
            rows = (tmp_path / "live" / "plots" / "metrics" / split / f"{metric}.tsv").read_text().splitlines()
            assert rows[0] == f"step\t{metric}" and len(rows) == 1 + PARAMS["epochs"]
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["epochs_run"] == 2 and 1 <= summary["best_epoch"] <= 2


def test_the_same_seed_gives_the_same_weights(tmp_path):
    first = train(tiny_data(), PARAMS, tmp_path / "a", tmp_path / "a-checkpoint").get_weights()
    second = train(tiny_data(), PARAMS, tmp_path / "b", tmp_path / "b-checkpoint").get_weights()
    other = train(tiny_data(), PARAMS | {"seed": 8}, tmp_path / "c", tmp_path / "c-checkpoint").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other, strict=True))


# One epoch of the default recipe at full width on 1,280 images, saved as weights: the smallest run in
# which TensorFlow's side-by-side ops (inter-op threads) made two processes differ on a 2-core Zen 3.
FULL_WIDTH_EPOCH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, "tests")
    from test_train import DEFAULT
    from cifarcam.training.train import train
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 154)
    images = np.clip(labels[:, None, None, None] * 20 + rng.integers(0, 80, (1540, 32, 32, 3)), 0, 255).astype(np.uint8)
    data = {"x_train": images[:1280], "y_train": labels[:1280], "x_val": images[1280:], "y_val": labels[1280:]}
    params = DEFAULT | {"epochs": 1, "batch_size": 256}
    folder = Path(sys.argv[1])
    np.savez(folder / "weights.npz", *train(data, params, folder / "live", folder / "checkpoint").get_weights())
    """
)


@pytest.mark.slow
def test_two_processes_train_the_full_width_network_to_the_same_weights(tmp_path):
    weights = []
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        result = subprocess.run(
            [sys.executable, "-c", FULL_WIDTH_EPOCH, tmp_path / run],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        weights.append(np.load(tmp_path / run / "weights.npz"))
    first, second = weights
    assert all(np.array_equal(first[name], second[name]) for name in first.files)


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="NaN.*learning_rate"):
        train(tiny_data(), PARAMS | {"learning_rate": 1e30}, tmp_path / "live", tmp_path / "checkpoint")
