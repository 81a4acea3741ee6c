"""End to end: the real `dvc repro` on a throwaway git repository."""

import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from pipeline_project import ROOT, SHARED_COPY, Project, make_image_folder_archive, tiny_params

from cifarcam.core.names import model_labels
from cifarcam.core.params import recipes

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

STAGES = ["download", "preprocess", "train_gray@42", "train_rgb@42", "evaluate", "gradcam", "report"]
FIGURES = [
    "class_accuracy.png",
    "gray_reliability.png",
    "rgb_reliability.png",
    "gray_confusion.png",
    "rgb_confusion.png",
]


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
        assert (project.path / f"models/{variant}/seed42.keras").exists()
    assert (
        f"| {model_labels(recipes(project.path / 'params.yaml'))['rgb']} |"
        in (project.path / "reports/results.md").read_text()
    )
    assert "up to date" in project.dvc("status").stdout


def test_the_statistics_and_the_write_up_come_from_the_same_run(project):
    project.repro()
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    for variant in ("gray", "rgb"):
        scores = metrics[variant]
        assert scores["accuracy_ci95_low"] <= scores["accuracy"] <= scores["accuracy_ci95_high"]
        assert scores["error_rate"] == pytest.approx(1 - scores["accuracy"])
        assert sum(scores["class_error"].values()) / 10 == pytest.approx(
            scores["error_rate"]
        )  # 2 test images per class
        calibrated = scores["calibration"]
        assert {
            "ece",
            "nll",
            "brier",
            "mean_confidence",
            "ece_ci95_low",
            "ece_ci95_high",
            "temperature",
            "scaled",
        } <= calibrated.keys()
        assert calibrated["scaled"]["nll"] > 0 and calibrated["temperature"] > 0
    assert (
        "failed to load" not in project.dvc("metrics", "show").stderr
    )  # DVC reads a key named "error" as a failed load
    test = metrics["rgb_vs_gray"]
    assert test["accuracy_difference"] == pytest.approx(metrics["rgb"]["accuracy"] - metrics["gray"]["accuracy"])
    assert (test["rgb_right_gray_wrong"] - test["gray_right_rgb_wrong"]) / 20 == pytest.approx(
        test["accuracy_difference"]
    )
    assert 0 < test["mcnemar_p"] <= 1
    for name in FIGURES:
        assert (project.path / "reports/figures" / name).read_bytes()[:4] == b"\x89PNG"
    write_up = (project.path / "reports/README.md").read_text()
    assert (
        f"| {model_labels(recipes(project.path / 'params.yaml'))['rgb']} | "
        f"{100 * metrics['rgb']['accuracy']:.2f}% ({100 * metrics['rgb']['accuracy_ci95_low']:.2f}%" in write_up
    )
    assert f"McNemar's exact p = {test['mcnemar_p']:.3g}" in write_up
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", write_up)
    assert len(links) == 17 and all((project.path / "reports" / link).is_file() for link in links)


def test_the_explanations_are_chosen_on_validation_and_scored_beside_nulls_of_each_resolution(project):
    project.repro()
    explanations = json.loads((project.path / "reports/explanations.json").read_text())
    choice = explanations["choice"]
    best = max(
        ((method, layer) for method, by_layer in explanations["validation"].items() for layer in by_layer),
        key=lambda c: sum(explanations["validation"][c[0]][c[1]].values()),
    )
    assert (choice["method"], choice["layer"]) == best  # the validation score decided, not the test set
    for variant in ("gray", "rgb"):
        section = explanations[variant]
        assert section["images"] == 20 and section["resolution"] == {
            "block1": "15x15",
            "block2": "7x7",
            "block3": "3x3",
            "pixels": "32x32",
        }
        assert len([1 for by_layer in section["scores"].values() for _ in by_layer]) == 7 * 3 + 2
        assert {layer for by_layer in section["nulls"].values() for layer in by_layer} == set(section["resolution"])
        for by_layer in [*section["scores"].values(), *section["nulls"].values()]:
            for scores in by_layer.values():
                for score in ("road_morf", "road_lerf", "deletion", "insertion", "road_combined"):
                    assert scores[score]["ci95_low"] <= scores[score]["mean"] <= scores[score]["ci95_high"]
        assert set(section["sanity"]) == set(section["scores"])
        assert all(-1 <= check["mean_spearman"] <= 1 for check in section["sanity"].values())
    assert explanations["colour_attention"]["sample"]["images"] == 20
    shown = project.dvc("metrics", "show", "--json").stdout
    assert "explanations.json" in shown and "road_combined" in shown  # dvc metrics diff compares them
    write_up = (project.path / "reports/README.md").read_text()
    assert f"**Chosen on validation: {choice['method']} at {choice['layer']}" in write_up
    assert "| null: random | block3 3x3 |" in write_up


def test_an_unknown_layer_stops_the_explanations_with_one_line_and_writes_nothing(project):
    project.repro()
    before = (project.path / "reports/explanations.json").read_bytes()
    project.set_params(**{"gradcam.layers": ["block1", "block4"]})
    try:
        result = project.run(sys.executable, "-m", "stages.gradcam", check=False)
    finally:
        project.git("checkout", "params.yaml")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert errors == ["error: unknown layer 'block4' for airbench: choose one of block1, block2, block3"]
    assert (project.path / "reports/explanations.json").read_bytes() == before
    assert not list((project.path / "reports").glob(".*partial*"))


def test_a_change_to_the_write_up_reruns_only_the_report(project):
    project.repro()
    stage = project.path / "cifarcam/study/report.py"
    stage.write_text(stage.read_text().replace("this run's write-up", "this run, written up"))
    assert project.repro().stages == ["report"]
    assert (
        (project.path / "reports/README.md")
        .read_text()
        .startswith("# Gray against RGB on CIFAR-10: this run, written up")
    )
    project.git("checkout", "cifarcam/study/report.py")
    assert project.repro().stages == ["report"]


RENDER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Run on load, after the page's own scripts: record in the DOM whether each image decoded.
IMAGE_PROBE = (
    "<script>addEventListener('load', () => { for (const image of document.images) "
    "image.setAttribute('data-natural-width', image.naturalWidth); });</script>"
)


def rendered_dom(page, profile):
    """The page's DOM after headless Chromium has run its scripts (ten seconds of virtual time)."""
    command = [
        shutil.which("chromium") or "chromium",
        *RENDER_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout


def chart(dom, plot_id):
    """What Vega drew into the div of one plot: from the div to the end of its SVG."""
    start = dom.index(f'<div id="{plot_id}"')
    return dom[start : dom.index("</svg>", start)]


@pytest.mark.slow
def test_the_plots_page_renders_in_a_browser_with_vega_from_npm(project, tmp_path):
    project.repro()
    (project.path / "node_modules").unlink(missing_ok=True)
    (project.path / "node_modules").symlink_to(ROOT / "node_modules")  # what `npm ci` installs, kept out of git
    project.dvc("plots", "show", "--html-template", "plots-template.html", "-o", "dvc_plots")
    page = project.path / "dvc_plots/index.html"
    assert "cdn.jsdelivr" not in page.read_text()
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    dom = rendered_dom(probed, tmp_path / "profile")

    for variant in ("gray", "rgb"):
        for split in ("train", "val"):
            curve = pd.read_csv(
                project.path / f"reports/train/{variant}/seed42/plots/metrics/{split}/loss.tsv", sep="\t"
            )
            svg = chart(dom, f"reports_train_{variant}_seed42_plots_metrics_{split}_loss_tsv")
            assert ">step</text>" in svg and ">loss</text>" in svg  # the axes' titles
            ((first, path),) = re.findall(
                r'aria-label="step: 0; loss: ([-\d.e]+); rev: workspace" [^>]*line mark" d="([^"]+)"', svg
            )
            assert float(first) == pytest.approx(curve["loss"][0], rel=1e-6)
            assert len(re.findall("[ML]", path)) == len(curve)  # one vertex per epoch
        svg = chart(dom, f"reports_confusion_{variant}_csv")
        drawn = re.findall(r'aria-label="actual: (\w+); predicted: (\w+); xy_count: (\d+)"[^>]*rect mark"', svg)
        confusion = pd.read_csv(project.path / f"reports/confusion/{variant}.csv").value_counts()
        cells = {(actual, predicted): int(count) for actual, predicted, count in drawn}
        assert {
            pair: count for pair, count in cells.items() if count
        } == confusion.to_dict()  # the grid's other cells read 0
    decoded = dict(re.findall(r'<img src="static/workspace_([^"]+)" data-natural-width="(\d+)">', dom))
    figures = [
        str(path.relative_to(project.path)).replace("/", "_")
        for folder in ("reports/cam", "reports/figures")
        for path in (project.path / folder).glob("*.png")
    ]
    assert len(figures) == 17 and all(int(decoded.get(name, 0)) > 100 for name in figures), decoded


@pytest.mark.parametrize("variant, other", [("rgb", "gray"), ("gray", "rgb")])
def test_a_training_parameter_reruns_only_that_model_and_what_follows(project, variant, other):
    project.repro()
    project.set_params(**{f"train_{variant}.epochs": 2 if variant == "rgb" else 3})
    result = project.repro()
    assert result.stages == [f"train_{variant}@42", "evaluate", "gradcam", "report"]
    assert f"Stage 'train_{other}@42' didn't change" in result.stdout


def test_a_shared_training_parameter_retrains_both_models_and_a_second_repro_runs_nothing(project):
    project.repro()
    before = yaml.safe_load((project.path / "params.yaml").read_text())
    project.set_params(**{"train.label_smoothing": 0.1})
    assert project.repro().stages == ["train_gray@42", "train_rgb@42", "evaluate", "gradcam", "report"]
    (project.path / "params.yaml").write_text(yaml.safe_dump(before, sort_keys=False))
    assert project.repro().stages == ["train_gray@42", "train_rgb@42", "evaluate", "gradcam", "report"]
    assert project.repro().stages == []


def test_each_seed_trains_its_own_stage_and_the_write_up_gives_the_spread(tmp_path):
    project = Project.create(tmp_path / "repo", **tiny_params(make_image_folder_archive(tmp_path / "tiny.tar.gz")))
    project.set_params(seeds=[1, 2])
    trained = ["train_gray@1", "train_gray@2", "train_rgb@1", "train_rgb@2"]
    assert project.repro().stages == ["download", "preprocess", *trained, "evaluate", "gradcam", "report"]
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    seeds = metrics["seeds"]
    assert list(seeds["per_seed"]) == ["1", "2"] and seeds["gap"]["seeds"] == 2
    assert seeds["per_seed"]["1"]["rgb"]["accuracy"] == metrics["rgb"]["accuracy"]  # the top level: the first seed
    assert {"mean", "sd"} == seeds["rgb"]["accuracy"].keys() == seeds["gray"]["temperature"].keys()
    assert {"paired_t_p", "sign_flip_p"} <= seeds["gap"].keys() and seeds["gap"]["smallest_possible_sign_flip_p"] == 0.5
    assert (project.path / "models/rgb/seed1.keras").read_bytes() != (
        project.path / "models/rgb/seed2.keras"
    ).read_bytes()
    for name in ("gray_reliability.png", "rgb_reliability_scaled.png", "rgb_confusion.png"):
        assert (project.path / "reports/figures/seed2" / name).read_bytes()[:4] == b"\x89PNG"
    assert (project.path / "reports/figures/seeds.png").read_bytes()[:4] == b"\x89PNG"
    text = (project.path / "reports/README.md").read_text()
    assert "over 2 training seeds" in text and "| mean ± sd |" in text and "| class | RGB − gray (points) |" in text
    assert "| 2 |" in text and "Holm p" in text and "temperature" in text
    evaluation = json.loads((project.path / "reports/evaluation.json").read_text())
    assert list(evaluation["other_seeds"]) == ["2"] and len(evaluation["class_gains"]) == 10
    project.commit("two seeds")

    project.set_params(seeds=[1, 2, 3])
    dry = project.repro("--dry")
    assert [stage for stage in dry.stages if stage.startswith("train")] == ["train_gray@3", "train_rgb@3"]
    assert project.repro("--dry", "--force", "--single-item", "train_gray").stages == [
        "train_gray@1",
        "train_gray@2",
        "train_gray@3",
    ]


@pytest.mark.parametrize(
    "seeds, message",
    [
        ([1, -1], "seeds must be integers ≥ 0, e.g. `seeds: [42]`"),
        ([3, 1, 3], "seeds must be distinct, but 3 is listed more than once: list each once"),
    ],
)
def test_wrong_seeds_stop_the_run_with_one_line(tmp_path, seeds, message):
    project = Project.create(tmp_path / "repo", **tiny_params(make_image_folder_archive(tmp_path / "tiny.tar.gz")))
    project.set_params(seeds=seeds)
    result = project.repro(check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (project.path / "models").exists()


def test_seeds_dvc_cannot_expand_are_refused_before_any_stage(tmp_path):
    project = Project.create(tmp_path / "repo", **tiny_params(make_image_folder_archive(tmp_path / "tiny.tar.gz")))
    for seeds in ([], 42):
        project.set_params(seeds=seeds)
        result = project.repro(check=False)
        assert result.returncode != 0 and result.stages == [], result.stdout
        assert "Traceback" not in result.stderr and not (project.path / "data").exists()


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
