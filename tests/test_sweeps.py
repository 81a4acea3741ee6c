"""Sweeps on a real (local) Slurm cluster: `python -m cifarcam.sweep` runs each grid point of a tiny project as an
array task in its own clone of a bare git origin, pushes it to the origin and a local DVC remote, and gathers it."""

import re
import subprocess
import sys
import time

import pytest
from pipeline_project import Project, experiments, make_image_folder_archive, tiny_params

from cifarcam.scale.grid import experiment_name, points

pytestmark = pytest.mark.slow  # real Slurm, dvc and git end to end; each grid point is a tiny pipeline run

METRICS = "reports/metrics.json"
RGB_TRAINING = "reports/train/rgb/seed42/metrics.json"
GRID = ["-S", "+train_rgb.learning_rate=0.002,0.02", "-S", "+train_rgb.epochs=1"]  # 2 x 1, off the default 0.005


@pytest.fixture(scope="module")
def project(tmp_path_factory, slurm_cluster):
    """A committed tiny run, pushed to a bare git origin and to a local DVC remote (its default)."""
    root = tmp_path_factory.mktemp("sweeps")
    archive = make_image_folder_archive(root / "cifar10-tiny.tar.gz")
    project = Project.create(root / "repo", **tiny_params(archive))
    project.env |= {"SLURM_CONF": str(slurm_cluster / "etc/slurm.conf")}
    project.repro()
    project.commit("tiny run")
    project.dvc("remote", "add", "-d", "local", str(root / "store"))
    project.commit("share through a local remote")
    project.run("git", "init", "-q", "--bare", str(root / "origin.git"))
    project.git("remote", "add", "origin", str(root / "origin.git"))
    project.git("push", "-q", "-u", "origin", "HEAD")
    project.dvc("push", "-q")
    project.origin, project.workdir = root / "origin.git", root / "sweeps"
    return project


def sweep(project, *args, check=True):
    return project.run(sys.executable, "-m", "cifarcam.sweep", *args, "--workdir", str(project.workdir), check=check)


def names_of(*specs):
    return [experiment_name(point) for point in points([spec for spec in specs if spec != "-S"])]


def on_origin(project):
    """The names of the experiments the bare origin holds."""
    refs = project.git("ls-remote", str(project.origin), "refs/exps/*").stdout.split()
    return {ref.rsplit("/", 1)[1] for ref in refs if ref.startswith("refs/exps/")}


@pytest.fixture(scope="module")
def first_sweep(project):
    """`submit --gather` of the 2 x 1 grid: its output; the other tests build on its two experiments."""
    return sweep(project, "submit", *GRID, "--gather").stdout


def test_a_grid_runs_as_an_array_job_and_both_experiments_come_back(project, first_sweep):
    assert "2 points at" in first_sweep and "0 already on" in first_sweep and "2 to run" in first_sweep
    assert re.search(r"submitted job \d+: tasks 0-1", first_sweep), first_sweep
    low, high = names_of(*GRID)
    assert {f"ok      {low}", f"ok      {high}"} <= {line[:22] for line in first_sweep.splitlines()}, first_sweep
    assert on_origin(project) == {low, high}

    shown = experiments(project)
    assert shown[low]["params"]["train_rgb"]["learning_rate"] == 0.002
    assert shown[high]["params"]["train_rgb"]["learning_rate"] == 0.02
    for name in (low, high):
        assert shown[name]["params"]["train_rgb"]["epochs"] == 1
        assert {"accuracy", "f1"} <= shown[name]["metrics"][METRICS]["rgb"].keys()
        assert shown[name]["metrics"][RGB_TRAINING]["epochs_run"] == 1
    assert shown[low]["metrics"][RGB_TRAINING]["best_val_loss"] != shown[high]["metrics"][RGB_TRAINING]["best_val_loss"]

    ranking = project.dvc(*first_sweep.splitlines()[-1].split()[1:], "--csv").stdout  # the command gather prints
    ranked = [line.split(",")[0] for line in ranking.splitlines() if line.startswith("sweep-")]
    assert sorted(ranked) == sorted([low, high])
    assert ranked[0] == min((low, high), key=lambda name: shown[name]["metrics"][RGB_TRAINING]["best_val_loss"])


def test_an_experiment_s_model_pulls_into_a_fresh_clone_of_the_origin(project, first_sweep, tmp_path):
    low, _ = names_of(*GRID)
    copy = Project(tmp_path / "fresh")
    copy.env = dict(project.env)
    project.run("git", "clone", "-q", str(project.origin), str(copy.path))
    copy.dvc("exp", "pull", "origin", low)
    copy.dvc("exp", "apply", low)
    copy.dvc("pull")
    assert (copy.path / "models/rgb/seed42.keras").stat().st_size > 0
    assert "Data and pipelines are up to date" in copy.dvc("status").stdout
    assert "learning_rate: 0.002" in (copy.path / "params.yaml").read_text()


def test_a_failing_point_ends_as_a_failed_task_with_its_error_and_the_other_lands(project, first_sweep):
    grid = ["-S", "+train_rgb.learning_rate=0.003", "-S", "+train_rgb.epochs=0,1"]
    bad, good = names_of(*grid)
    result = sweep(project, "submit", *grid, "--gather", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: 1 of 2 tasks of job" in result.stderr
    failed = next(line for line in result.stdout.splitlines() if line.startswith("failed"))
    assert bad in failed and "train_rgb.epochs=0" in failed
    assert failed.endswith("error: params.yaml: train_rgb.epochs must be an integer ≥ 1, got 0"), failed
    log = failed.split()[4].rstrip(":")
    assert "error: params.yaml: train_rgb.epochs must be an integer ≥ 1, got 0" in open(log).read().splitlines()
    assert f"ok      {good}" in result.stdout
    assert bad not in on_origin(project) and good in on_origin(project)
    shown = experiments(project)
    assert bad not in shown and shown[good]["params"]["train_rgb"]["learning_rate"] == 0.003


def wait_for_line(path, pattern, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and re.search(pattern, path.read_text(), re.MULTILINE)):
        assert time.monotonic() < deadline, f"{path} never showed {pattern!r}"
        time.sleep(0.5)


def test_a_cancelled_task_pushes_nothing_and_a_resubmission_runs_only_the_missing_point(project, first_sweep):
    grid = ["-S", "+train_rgb.learning_rate=0.002,0.02,0.01", "-S", "+train_rgb.epochs=1"]  # the first sweep, one more
    *_, new = names_of(*grid)
    submitted = sweep(project, "submit", *grid).stdout
    assert "3 points at" in submitted and "2 already on" in submitted and "1 to run" in submitted, submitted
    job = re.search(r"submitted job (\d+): tasks 0-0,", submitted).group(1)

    log = project.workdir / "jobs" / f"{job}_0.log"
    wait_for_line(log, r"^Running stage 'train_rgb@42'")
    subprocess.run(["scancel", job], check=True, env=project.env)
    result = sweep(project, "wait", job, check=False)
    assert result.returncode == 1 and result.stdout.startswith(f"failed  {new}"), result.stdout
    assert "CANCELLED" in log.read_text() and "pushed" not in log.read_text()
    assert new not in on_origin(project)

    again = sweep(project, "submit", *grid, "--wait").stdout
    assert "2 already on" in again and "1 to run" in again and f"ok      {new}" in again, again
    assert new in on_origin(project)


def test_a_commit_that_is_not_on_the_origin_is_refused_in_one_line(project):
    project.git("commit", "-q", "--allow-empty", "-m", "not pushed")
    try:
        result = sweep(project, "submit", *GRID, check=False)
        head = project.git("rev-parse", "--short=7", "HEAD").stdout.strip()
        assert result.returncode == 1, result.stdout
        refusal = f"error: commit {head} is not on {project.origin}: `git push` it first"
        assert result.stderr.startswith(refusal) and result.stderr.count("\n") == 1, result.stderr
    finally:
        project.git("reset", "-q", "--hard", "HEAD~1")
