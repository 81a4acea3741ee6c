"""DVC experiments on the real pipeline: `dvc exp run -S`, a queued grid search, revision diffs, reproducibility."""

import csv
import io
import json
import re

import pytest
import yaml
from pipeline_project import (
    Project,
    experiments,
    make_image_folder_archive,
    reset_workspace,
    tiny_params,
    wait_for_queue,
)

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

METRICS = "reports/metrics.json"
RGB_TRAINING = "reports/train/rgb/seed42/metrics.json"
SCORES = {"accuracy", "precision", "recall", "f1"}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A project whose first commit holds a finished tiny run (dvc.lock, reports) with everything in DVC's cache."""
    root = tmp_path_factory.mktemp("experiments")
    archive = make_image_folder_archive(root / "cifar10-tiny.tar.gz")
    project = Project.create(root / "repo", **tiny_params(archive))
    project.repro()
    project.commit("tiny run")
    yield project
    project.dvc("queue", "stop", check=False)


@pytest.fixture
def project(baseline):
    reset_workspace(baseline)
    return baseline


def read_metrics(project):
    return json.loads((project.path / METRICS).read_text())


def test_exp_run_with_a_set_param_shows_both_models_params_and_metrics(project):
    result = project.dvc("exp", "run", "-n", "rgb-two-epochs", "-S", "+train_rgb.epochs=2")
    assert "Running stage 'train_rgb@42'" in result.stdout and "Running stage 'train_gray@42'" not in result.stdout

    shown = experiments(project)
    experiment = shown["rgb-two-epochs"]
    assert experiment["params"]["train_rgb"] == {"epochs": 2} and experiment["params"]["train_gray"] == {}
    assert {"arch", "epochs", "batch_size", "learning_rate", "dropout", "patience"} <= set(
        experiment["params"]["train"]
    )
    for variant in ("gray", "rgb"):
        assert SCORES <= experiment["metrics"][METRICS][variant].keys()
        assert {"epochs_run", "best_val_loss"} <= experiment["metrics"][
            f"reports/train/{variant}/seed42/metrics.json"
        ].keys()
    assert experiment["metrics"]["reports/train/rgb/seed42/metrics.json"]["epochs_run"] == 2
    branch = project.git("branch", "--show-current").stdout.strip()
    assert shown[branch]["params"]["train_rgb"] == {}  # the commit itself is left alone
    assert read_metrics(project) == experiment["metrics"][METRICS]  # `exp run` leaves its results in the workspace

    table = project.dvc("exp", "show", "--csv").stdout
    header = next(csv.reader(io.StringIO(table)))
    assert {"train.epochs", "train.learning_rate", "train_rgb.epochs"} <= set(header)
    for variant in ("gray", "rgb"):
        assert f"{variant}.accuracy" in header or f"{METRICS}:{variant}.accuracy" in header, header
    assert "rgb-two-epochs" in [row[0] for row in csv.reader(io.StringIO(table))]


def test_a_queued_grid_search_runs_and_the_best_experiment_can_be_kept(project):
    queued = project.dvc(
        "exp", "run", "--queue", "-S", "+train_rgb.learning_rate=0.001,0.01", "-S", "+train_rgb.epochs=2"
    ).stdout
    names = re.findall(r"Queued experiment '([\w-]+)'", queued)
    assert len(names) == 2, queued

    project.dvc("queue", "start", "-j", "1")
    states = wait_for_queue(project, names, timeout_s=480)
    assert set(states.values()) == {"Success"}, project.dvc("queue", "logs", names[0], check=False).stdout

    shown = experiments(project)
    rates = {name: shown[name]["params"]["train_rgb"]["learning_rate"] for name in names}
    assert sorted(rates.values()) == [0.001, 0.01]
    scores = {name: shown[name]["metrics"][METRICS] for name in names}
    validation = {name: shown[name]["metrics"][RGB_TRAINING]["best_val_loss"] for name in names}
    first, second = names
    assert validation[first] != validation[second], validation
    assert scores[first]["gray"] == scores[second]["gray"]  # the sweep is over the RGB model only

    # Pick on the validation split, as a grid search should: the test set stays for the final figures.
    best = min(names, key=validation.get)
    table = project.dvc(
        "exp", "show", "--csv", "--sort-by", f"{RGB_TRAINING}:best_val_loss", "--sort-order", "asc"
    ).stdout
    ranked = [row["Experiment"] for row in csv.DictReader(io.StringIO(table)) if row["Experiment"] in names]
    assert ranked[0] == best

    project.dvc("exp", "apply", best)
    params = yaml.safe_load((project.path / "params.yaml").read_text())
    assert params["train_rgb"]["learning_rate"] == rates[best] and params["train_rgb"]["epochs"] == 2
    assert read_metrics(project) == scores[best]
    assert "up to date" in project.dvc("status").stdout

    project.dvc("exp", "branch", best, "best-learning-rate")
    kept = yaml.safe_load(project.git("show", "best-learning-rate:params.yaml").stdout)
    assert kept["train_rgb"]["learning_rate"] == rates[best]
    assert json.loads(project.git("show", f"best-learning-rate:{METRICS}").stdout) == scores[best]


def test_two_runs_with_the_same_parameters_give_identical_metrics(project):
    first = read_metrics(project)
    curves = {
        path: path.read_text() for path in sorted((project.path / "reports/train").glob("*/*/plots/metrics/*/*.tsv"))
    }
    assert len(curves) == 8
    result = project.repro("-f")
    assert result.stages == ["download", "preprocess", "train_gray@42", "train_rgb@42", "evaluate", "gradcam", "report"]
    second = read_metrics(project)
    assert second["gray"] == first["gray"] and second["rgb"] == first["rgb"]
    assert {path: path.read_text() for path in curves} == curves


def test_revisions_compare_by_params_metrics_and_plots(project, tmp_path):
    project.set_params(**{"train_rgb.epochs": 2})
    assert project.repro().stages == ["train_rgb@42", "evaluate", "gradcam", "report"]
    project.commit("rgb: two epochs")

    assert json.loads(project.dvc("params", "diff", "HEAD~1", "--json").stdout) == {
        "params.yaml": {"train_rgb.epochs": {"old": None, "new": 2}}  # a key added to RGB's overrides
    }
    table = project.dvc("params", "diff", "HEAD~1").stdout
    assert re.search(r"params\.yaml\s+train_rgb\.epochs\s+-\s+2", table), table

    changed = json.loads(project.dvc("metrics", "diff", "HEAD~1", "--json").stdout)[METRICS]
    gray_scores = [key for key in changed if re.search(r"(^|\.)gray\.", key)]  # gray., seeds.per_seed.42.gray., …
    assert changed and not gray_scores, changed  # only changes, by default; the gray model's stay
    everything = json.loads(project.dvc("metrics", "diff", "HEAD~1", "--all", "--json").stdout)
    scores = everything[METRICS]
    for variant in ("gray", "rgb"):
        assert {f"{variant}.{name}" for name in SCORES} <= scores.keys()
    assert all(entry["old"] == entry["new"] for key, entry in scores.items() if key.startswith("gray."))
    assert any(entry["old"] != entry["new"] for key, entry in scores.items() if key.startswith("rgb."))
    assert everything["reports/train/rgb/seed42/metrics.json"]["epochs_run"] == {"old": 1, "new": 2, "diff": 1}

    project.dvc("plots", "diff", "HEAD~1", "-o", str(tmp_path / "plots"))
    page = (tmp_path / "plots/index.html").read_text()
    for variant in ("gray", "rgb"):
        assert f"reports/train/{variant}/seed42/plots/metrics/val/loss.tsv" in page
        assert f"reports/confusion/{variant}.csv" in page
        for revision in ("HEAD~1", "workspace"):
            image = f"static/{revision}_reports_cam_{variant}_cam.png"
            assert image in page and (tmp_path / "plots" / image).read_bytes()[:4] == b"\x89PNG"
