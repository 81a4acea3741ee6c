"""Data-parallel training through Keras's distribution API on JAX: several CPU devices, and two processes over gloo."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from pipeline_project import ROOT
from test_train import DEFAULT, SMALL_RESNET

from cifarcam.core.errors import PipelineError
from cifarcam.scale import distributed

WORKER = ROOT / "tests" / "distributed_worker.py"
JAX = {"KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def test_process_shards_are_disjoint_equal_and_cover_the_evened_rows():
    rows = np.arange(41)
    shards = [distributed.Place(pid, 3, 3).shard(rows)[0] for pid in range(3)]
    assert [len(shard) for shard in shards] == [13, 13, 13]
    assert sorted(np.concatenate(shards).tolist()) == list(range(39))
    assert distributed.Place().shard(rows)[0].tolist() == rows.tolist()


def test_an_unknown_distribution_and_the_tensorflow_backend_are_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("CIFARCAM_DISTRIBUTE", "horovod")
    with pytest.raises(PipelineError, match="not a distribution: set it to data_parallel"):
        distributed.start(256)
    monkeypatch.setenv("CIFARCAM_DISTRIBUTE", "data_parallel")
    with pytest.raises(
        PipelineError, match="needs KERAS_BACKEND=jax: Keras's distribution API does not support TensorFlow"
    ):
        distributed.start(256)  # the tests' backend is TensorFlow (conftest.py)


def run_worker(folder, epochs, env, *extra):
    return subprocess.run(
        [sys.executable, WORKER, folder, str(epochs), *map(str, extra)],
        cwd=ROOT,
        env=os.environ | JAX | env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_run(folder, pid=0):
    return json.loads((folder / f"run-{pid}.json").read_text())


def test_a_batch_that_does_not_split_over_the_devices_is_refused(tmp_path):
    script = "from cifarcam.scale import distributed; distributed.start(15)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ | JAX | TWO_DEVICES | {"CIFARCAM_DISTRIBUTE": "data_parallel"},
    )
    assert result.returncode != 0
    assert (
        "batch_size 15 does not split over 2 devices: set train.batch_size in params.yaml to a multiple of 2"
        in result.stderr
    )


@pytest.mark.slow
def test_two_devices_in_one_process_train_as_one_device_does(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, env in ((one, {}), (two, TWO_DEVICES | {"CIFARCAM_DISTRIBUTE": "data_parallel"})):
        folder.mkdir()
        result = run_worker(folder, 2, env)
        assert result.returncode == 0, result.stderr[-3000:]
    assert read_run(two)["place"] == [0, 1, 2]
    assert "data parallel: process 0 of 1, 2 devices in all" in result.stdout
    losses = [[epoch["loss"] for epoch in read_run(folder)["history"]] for folder in (one, two)]
    assert np.allclose(losses[0], losses[1], rtol=1e-3), losses  # the same batches, only split
    first, second = np.load(one / "weights-0.npz"), np.load(two / "weights-0.npz")
    assert all(np.allclose(first[name], second[name], atol=1e-3) for name in first.files)


# the default's recipe, small: its whitening bias stops after the first epoch and leaves TensorFlow's step
AIRBENCH = {
    key: DEFAULT[key] for key in SMALL_RESNET if key not in ("epochs", "batch_size", "precision", "patience", "seed")
}
AIRBENCH |= {"widths": [8, 8, 8], "whiten_bias_epochs": 1}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [{}, AIRBENCH], ids=["resnet", "airbench"])
def test_mirrored_over_two_tensorflow_devices_trains_as_one_device_does(recipe, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, env in ((one, {}), (two, {"CIFARCAM_DISTRIBUTE": "mirrored", "TEST_LOGICAL_CPUS": "2"})):
        folder.mkdir()
        result = run_worker(folder, 2, env | {"KERAS_BACKEND": "tensorflow", "TEST_PARAMS": json.dumps(recipe)})
        assert result.returncode == 0, result.stderr[-3000:]
    assert "mirrored: 2 devices of this host" in result.stdout and read_run(two)["place"] == [0, 1, 2]
    losses = [[epoch["loss"] for epoch in read_run(folder)["history"]] for folder in (one, two)]
    # the same batches, but each replica draws its own augmentation: close, not equal (2% seen)
    assert np.allclose(losses[0], losses[1], rtol=0.1), losses


def start_processes(folder, epochs, port, checkpoints=()):
    """Two workers on localhost, process i pinned to core i, joined through JAX's runtime (gloo collectives)."""
    processes = []
    for pid in (0, 1):
        env = (
            os.environ
            | JAX
            | {
                "CIFARCAM_DISTRIBUTE": "data_parallel",
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                "KERAS_DISTRIBUTION_PROCESS_ID": str(pid),
            }
        )
        command = [
            "taskset",
            "-c",
            str(pid % os.cpu_count()),
            sys.executable,
            WORKER,
            folder,
            str(epochs),
            *checkpoints[pid : pid + 1],
        ]
        log = open(folder / f"log-{pid}.txt", "w")
        processes.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    return processes


def finish(processes, folder):
    for process in processes:
        process.wait(timeout=600)
    return [(process.returncode, (folder / f"log-{pid}.txt").read_text()) for pid, process in enumerate(processes)]


@pytest.mark.slow
def test_two_processes_see_disjoint_shards_end_with_the_same_weights_and_only_process_0_writes(tmp_path):
    folder, alone = tmp_path / "two", tmp_path / "one"
    folder.mkdir(), alone.mkdir()
    for code, log in finish(start_processes(folder, 3, port=12421), folder):
        assert code == 0, log[-3000:]
    runs = [read_run(folder, pid) for pid in (0, 1)]
    assert [run["place"] for run in runs] == [[0, 2, 2], [1, 2, 2]]
    assert not set(runs[0]["fed"]) & set(runs[1]["fed"]) and len(runs[0]["fed"]) == len(runs[1]["fed"]) == 60
    weights = [np.load(folder / f"weights-{pid}.npz") for pid in (0, 1)]
    assert all(np.array_equal(weights[0][name], weights[1][name]) for name in weights[0].files)
    assert (folder / "live-0" / "metrics.json").exists() and (folder / "model-0.keras").exists()
    assert not (folder / "live-1").exists() and not (folder / "model-1.keras").exists()

    result = run_worker(alone, 3, {})
    assert result.returncode == 0, result.stderr[-3000:]
    # the same global batch and seed, other images in each batch: the same training, not the same numbers
    final = [run["history"][-1] for run in (runs[0], read_run(alone))]
    assert abs(final[0]["loss"] - final[1]["loss"]) < 0.3 * final[1]["loss"], final
    assert abs(final[0]["val_loss"] - final[1]["val_loss"]) < 0.3 * final[1]["val_loss"], final


@pytest.mark.slow
def test_a_killed_two_process_training_resumes_on_both_processes(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    state = folder / "checkpoint" / "state.json"
    processes = start_processes(folder, 40, port=12431)
    deadline = time.monotonic() + 300
    while not (state.exists() and json.loads(state.read_text())["epochs_done"] >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in processes:
        os.killpg(process.pid, signal.SIGKILL)
    finish(processes, folder)
    done = json.loads(state.read_text())["epochs_done"]
    assert 2 <= done < 40

    for code, log in finish(start_processes(folder, 40, port=12432), folder):
        assert code == 0, log[-3000:]
        assert f"resuming from the checkpoint after epoch {done}" in log and "Epoch 1/40" not in log
    runs = [read_run(folder, pid) for pid in (0, 1)]
    assert len(runs[0]["history"]) == 40
    weights = [np.load(folder / f"weights-{pid}.npz") for pid in (0, 1)]
    assert all(np.array_equal(weights[0][name], weights[1][name]) for name in weights[0].files)


@pytest.mark.slow
def test_processes_that_see_different_checkpoints_stop_with_one_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for code, log in finish(start_processes(folder, 1, port=12441), folder):
        assert code == 0, log[-3000:]
    # process 1 looks in a folder of its own, as on a host that does not share process 0's storage
    for code, log in finish(
        start_processes(folder, 1, port=12442, checkpoints=(folder / "checkpoint", tmp_path / "elsewhere")), folder
    ):
        assert code != 0
        assert "the processes found checkpoints after epochs [1, 0]" in log and "storage every process shares" in log
