import json

import numpy as np
import pytest
import yaml

from cifarcam.errors import PipelineError
from cifarcam.train import train
from pipeline_project import ROOT

SMALL_RESNET = {"widths": [8, 16, 16], "epochs": 2, "batch_size": 16, "precision": "float32", "patience": 3, "seed": 7}
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())["train_gray"] | SMALL_RESNET


def tiny_data(seed=0, per_class=6):
    """Gray images whose class sets their brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def split():
        labels = np.repeat(np.arange(10), per_class)
        images = labels[:, None, None, None] / 10 + rng.random((len(labels), 32, 32, 1)) * 0.1
        return images.astype("float32"), labels

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
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other))


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="NaN.*learning_rate"):
        train(tiny_data(), PARAMS | {"learning_rate": 1e30}, tmp_path / "live", tmp_path / "checkpoint")
