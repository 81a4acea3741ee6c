"""Killed and concurrent runs, through the real `dvc repro`."""

import os
import re
import signal

import numpy as np
import pytest
from pipeline_project import Project, make_image_folder_archive, read_until, start_repro, tiny_params

from cifarcam.training import models

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers


@pytest.fixture
def project(tmp_path):
    archive = make_image_folder_archive(tmp_path / "cifar10-tiny.tar.gz")
    params = tiny_params(archive) | {"train_rgb.epochs": 4, "train_rgb.batch_size": 1, "train_rgb.patience": 10}
    project = Project.create(tmp_path / "repo", **params)
    project.repro("train_gray")
    return project


def test_a_killed_training_resumes_from_its_last_epoch_to_the_uninterrupted_model_and_caches_nothing_half_done(project):
    running = start_repro(project, "train_rgb")
    read_until(running, r"^Epoch 3/4")
    os.killpg(running.pid, signal.SIGKILL)
    running.wait()
    assert not (project.path / "models/rgb/seed42.keras").exists()
    assert not list((project.path / "models").glob(".rgb*"))

    resumed = project.repro("train_rgb")
    done = int(re.search(r"resuming from the checkpoint after epoch (\d)", resumed.stdout).group(1))
    assert 2 <= done < 4
    assert f"Epoch {done + 1}/4" in resumed.stdout and "Epoch 1/4" not in resumed.stdout
    steps = (project.path / "reports/train/rgb/seed42/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    assert [int(row.split("\t")[0]) for row in steps] == [0, 1, 2, 3]
    assert (project.path / "models/rgb/seed42.keras").exists()
    assert [path.name for path in (project.path / "checkpoints/rgb/seed42").iterdir()] == ["state.json"]
    assert "up to date" in project.dvc("status", "train_rgb").stdout

    resumed_weights = models.load(project.path / "models/rgb/seed42.keras").get_weights()
    project.repro("--force", "train_rgb")  # the finished checkpoint is a marker: this trains from the start
    uninterrupted_weights = models.load(project.path / "models/rgb/seed42.keras").get_weights()
    for resumed_weight, uninterrupted_weight in zip(resumed_weights, uninterrupted_weights, strict=True):
        np.testing.assert_array_equal(resumed_weight, uninterrupted_weight)


def test_a_second_repro_at_the_same_time_is_refused_by_dvcs_lock(project):
    project.set_params(**{"train_rgb.epochs": 12})  # a long enough run for the second dvc to start meanwhile
    first = start_repro(project, "train_rgb")
    read_until(first, r"^Epoch 1/12")
    second = project.repro("train_rgb", check=False)
    assert second.returncode != 0
    assert "lock" in (second.stdout + second.stderr).lower()
    first.stdout.read()
    assert first.wait() == 0
    assert "up to date" in project.dvc("status", "train_rgb").stdout
