"""End to end: the real `dvc repro` on a throwaway git repository."""

import json

import pytest

from pipeline_project import SHARED_COPY, Project, make_image_folder_archive, tiny_params

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

STAGES = ["download", "preprocess", "train_gray", "train_rgb", "evaluate", "gradcam"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    archive = make_image_folder_archive(root / "cifar10-tiny.tar.gz")
    return Project.create(root / "repo", **tiny_params(archive))


def test_repro_runs_every_stage_and_writes_the_reports(project):
    result = project.repro()
    assert result.stages == STAGES
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    for variant in ("gray", "rgb"):
        assert {"accuracy", "precision", "recall", "f1"} <= metrics[variant].keys()
        assert all(0.0 <= metrics[variant][key] <= 1.0 for key in ("accuracy", "precision", "recall", "f1"))
        assert metrics[variant]["test_images"] == 20
        assert (project.path / f"reports/cam/{variant}_cam.png").read_bytes()[:4] == b"\x89PNG"
        assert (project.path / f"models/{variant}.keras").exists()
    assert "| RGB CNN |" in (project.path / "reports/results.md").read_text()
    assert "up to date" in project.dvc("status").stdout


@pytest.mark.parametrize("variant, other", [("rgb", "gray"), ("gray", "rgb")])
def test_a_training_parameter_reruns_only_that_model_and_what_follows(project, variant, other):
    project.repro()
    project.set_params(**{f"train_{variant}.epochs": 2 if variant == "rgb" else 3})
    result = project.repro()
    assert result.stages == [f"train_{variant}", "evaluate", "gradcam"]
    assert f"Stage 'train_{other}' didn't change" in result.stdout or f"train_{other}" not in result.stdout


def test_metrics_show_reads_both_models(project):
    project.repro()
    shown = project.dvc("metrics", "show", "--json").stdout
    assert '"gray"' in shown and '"rgb"' in shown and '"accuracy"' in shown


def test_a_failing_download_leaves_nothing_for_dvc_to_cache(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(make_image_folder_archive(tmp_path / "good.tar.gz").read_bytes()[:500])
    project = Project.create(tmp_path / "repo", **tiny_params(broken))
    result = project.repro(check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "truncated" in errors[0] and str(broken) in errors[0]
    assert not (project.path / "data/raw").exists() or not any((project.path / "data/raw").iterdir())
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_COPY.exists(), reason="needs ../shared/data/cifar10-jpeg.tar.gz")
def test_a_quick_run_on_the_real_shared_copy(tmp_path):
    params = tiny_params(SHARED_COPY) | {"preprocess.max_per_class": 10}
    project = Project.create(tmp_path / "repo", **params)
    assert project.repro().stages == STAGES
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    assert metrics["rgb"]["test_images"] == metrics["gray"]["test_images"] == 100
