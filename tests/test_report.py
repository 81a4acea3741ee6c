import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pipeline_project import CLASSES, ROOT

from cifarcam.core import names, params
from cifarcam.study import report, seeds

GAINS = {
    "airplane": 0.01,
    "automobile": 0.0,
    "bird": 0.05,
    "cat": 0.04,
    "deer": 0.03,
    "dog": 0.06,
    "frog": 0.02,
    "horse": 0.01,
    "ship": -0.01,
    "truck": 0.0,
}


CALIBRATION = {
    "ece": 0.0312,
    "nll": 0.4321,
    "brier": 0.1234,
    "ece_ci95_low": 0.03,
    "ece_ci95_high": 0.033,
    "nll_ci95_low": 0.42,
    "nll_ci95_high": 0.44,
    "brier_ci95_low": 0.12,
    "brier_ci95_high": 0.13,
}


def model_metrics(accuracy):
    return {
        "accuracy": accuracy,
        "precision": accuracy + 0.001,
        "recall": accuracy,
        "f1": accuracy - 0.001,
        "accuracy_ci95_low": accuracy - 0.006,
        "accuracy_ci95_high": accuracy + 0.006,
        "test_images": 10000,
        "calibration": {
            **CALIBRATION,
            "mean_confidence": accuracy - 0.05,
            "temperature": 0.612,
            "scaled": {
                "ece": 0.0101,
                "nll": 0.3456,
                "brier": 0.1111,
                "mean_confidence": accuracy - 0.01,
                "ece_ci95_low": 0.008,
                "ece_ci95_high": 0.012,
                "nll_ci95_low": 0.33,
                "nll_ci95_high": 0.36,
                "brier_ci95_low": 0.1,
                "brier_ci95_high": 0.12,
            },
            "without_tta": {"ece": 0.0222, "mean_confidence": accuracy - 0.03},
        },
    }


def interval(mean, half=0.01, **more):
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half} | more


def given_explanations(excess=(0.004, -0.002)):
    """explanations.json for two methods at two layers; `excess`: gray's and RGB's concentration above the null."""
    layers = {"block2": "7x7", "block3": "3x3", "pixels": "32x32"}
    scores = {"road_morf": interval(0.31), "road_lerf": interval(0.62), "road_combined": interval(0.31)}
    scores |= {"deletion": interval(0.22), "insertion": interval(0.58)}
    section = {
        "images": 200,
        "resolution": layers,
        "scores": {"hirescam": {"block2": scores, "block3": scores}, "smoothgrad": {"pixels": scores}},
        "nulls": {"random": {"block3": scores | {"road_combined": interval(0.05)}}},
        "sanity": {
            "hirescam": {"layer": "block3", "mean_spearman": 0.12},
            "smoothgrad": {"layer": "pixels", "mean_spearman": 0.41},
        },
        "chosen_minus_nulls": {"random": interval(0.26, p=1e-9, holm_p=4e-9)},
    }
    diffuse = {"gray": interval(excess[0], 0.002, p=0.03), "rgb": interval(excess[1], 0.003, p=0.4)}
    diffuse["rgb_minus_gray"] = interval(excess[1] - excess[0], 0.003, p=0.01, holm_p=0.02)
    return {
        "choice": {
            "method": "hirescam",
            "layer": "block2",
            "resolution": "7x7",
            "validation_road_combined": {"gray": 0.301, "rgb": 0.322},
            "rule": "the highest ROAD LeRF − MoRF on validation images, mean over both models",
        },
        "gray": section,
        "rgb": section,
        "diffuseness": {"hirescam": {"block2": diffuse}},
        "colour_attention": {
            "method": "hirescam",
            "layer": "block2",
            "sample": interval(0.61, images=200),
            "null_other_image": interval(0.21),
            "sample_above_null": interval(0.40, p=1e-20),
            "same_call": interval(0.63, images=180),
            "only_rgb_right": interval(0.48, images=412),
            "only_gray_right": interval(0.5, images=226),
            "one_right_minus_same_call": {"difference": -0.14, "p": 1e-5},
        },
    }


def correct_per_image(recall, per_class=1000):
    """Booleans over a test set of `per_class` images per class: the first recall[name] share of each class right."""
    return np.concatenate([np.arange(per_class) < round(recall[name] * per_class) for name in CLASSES])


def given_run(rgb_accuracy=0.9024, trained=(42,)):
    comparison = {
        "rgb_right_gray_wrong": 412,
        "gray_right_rgb_wrong": 226,
        "mcnemar_p": 1.8e-13,
        "accuracy_difference": rgb_accuracy - 0.8838,
        "accuracy_difference_ci95_low": 0.0125,
        "accuracy_difference_ci95_high": 0.0247,
    }
    metrics = {"gray": model_metrics(0.8838), "rgb": model_metrics(rgb_accuracy)}
    metrics["rgb_vs_gray"] = comparison
    per_seed = {}
    for i, seed in enumerate(trained):  # each further seed 0.3 points more accurate in RGB
        shift = 0.003 * i
        per_seed[str(seed)] = {
            variant: {
                "accuracy": metrics[variant]["accuracy"] + (shift if variant == "rgb" else 0),
                "temperature": 0.612 + 0.01 * i,
            }
            for variant in ("gray", "rgb")
        } | {"rgb_vs_gray": comparison | {"accuracy_difference": comparison["accuracy_difference"] + shift}}
    truth = np.repeat(np.arange(len(CLASSES)), 1000)
    gray = correct_per_image(dict.fromkeys(CLASSES, 0.8))
    rgb = correct_per_image({name: 0.8 + gain for name, gain in GAINS.items()})
    gains = seeds.class_gains([rgb] * len(trained), [gray] * len(trained), truth)
    metrics["seeds"] = seeds.section(per_seed, gains)
    pairs = [
        {"pair": ["cat", "dog"], "count": 191, "cat_as_dog": 101, "dog_as_cat": 90},
        {"pair": ["bird", "deer"], "count": 82, "bird_as_deer": 50, "deer_as_bird": 32},
        {"pair": ["bird", "cat"], "count": 67, "bird_as_cat": 40, "cat_as_bird": 27},
    ]
    evaluation = {
        "gray": {"per_class": {name: {"recall": 0.8} for name in CLASSES}, "most_confused_pairs": pairs},
        "rgb": {"per_class": {name: {"recall": 0.8 + GAINS[name]} for name in CLASSES}, "most_confused_pairs": pairs},
        "class_gains": gains,
    }
    return metrics, evaluation, given_explanations()


LABELS = {"gray": "gray ResNet", "rgb": "RGB ResNet"}
SMOOTHING = {"gray": 0.2, "rgb": 0.2}


def test_every_architecture_has_a_label():
    assert [names.model_label(v, a) for v, a in [("gray", "resnet"), ("rgb", "airbench")]] == [
        "gray ResNet",
        "RGB airbench94",
    ]
    assert (
        names.model_label("gray", "study_gray_cnn") == "gray study CNN"
        and names.model_label("rgb", "study_rgb_cnn") == "RGB study CNN"
    )


def test_the_write_up_carries_the_runs_numbers_and_verdicts():
    text = report.write_up(*given_run(), LABELS, SMOOTHING)
    assert "| gray ResNet | 88.38% (87.78%–88.98%) |" in text and "| RGB ResNet | 90.24% (89.64%–90.84%) |" in text
    assert "0.0312 | 0.4321 | 0.1234 |" in text
    assert "**Cat and dog are the most confused pair.** **holds** for 2 of 2 models" in text
    assert "cat/dog, 191 test images (cat → dog 101, dog → cat 90); next bird/deer 82" in text
    assert "**RGB is more accurate than gray.** **holds**" in text
    assert (
        "+1.86 points (95% CI +1.25 to +2.47)" in text
        and "412 images were right only in RGB and 226 only in gray" in text
    )
    assert "McNemar's exact p = 1.8e-13" in text
    assert "**The maps are diffuse.** **does not hold** for hirescam at block2 (7x7)" in text
    assert "Above the null: gray ResNet +0.40 points (+0.20 to +0.60, p = 0.03); RGB ResNet -0.20" in text
    assert "RGB − gray, paired per image: -0.60 (-0.90 to -0.30), Holm p = 0.02, over 200 test images" in text
    assert "**Chosen on validation: hirescam at block2 (7x7)**" in text and "(gray 0.301, rgb 0.322)" in text
    assert "On the test images it beats every null at its resolution" in text
    assert "| hirescam | block3 3x3 | 0.310 (0.300–0.320) | 0.620 (0.610–0.630) |" in text
    assert "| null: random | block3 3x3 | 0.310 (0.300–0.320) | 0.620 (0.610–0.630) | 0.050 (0.040–0.060) |" in text
    assert "| 0.580 (0.570–0.590) | 0.12 |" in text and "| smoothgrad | pixels 32x32 |" in text
    assert "0.61 (0.60 to 0.62) over 200 test images, against 0.21 (0.20 to 0.22) for maps of different" in text
    assert "Where only RGB is right: 0.48 (0.47 to 0.49) (412 images)" in text
    assert "One training seed shows that these two trained networks differ" in text
    assert "`dvc exp run -S 'seeds=[42,1,2]'`" in text
    animals, vehicles = sum(GAINS[c] for c in seeds.ANIMALS) / 6, (0.01 + 0.0 - 0.01 + 0.0) / 4
    assert "**Colour helps especially for animals.** **holds**" in text
    assert f"{100 * (animals - vehicles):+.2f} points (95% CI" in text and "one seed" in text
    assert "RGB's accuracy minus gray's per class, largest first (95% CI): dog +6.00 (+" in text
    assert (
        "beyond chance after Holm's correction over the ten: airplane, bird, cat, deer, dog, frog, horse; "
        "where it hurts: ship." in text
    )
    assert "| 42 | 88.38% | 90.24% | +1.86 (+1.25 to +2.47) | 1.8e-13 | 0.612 | 0.612 |" in text
    assert "mean ± sd" not in text and "figures/seeds.png" not in text


def test_with_several_seeds_the_write_up_tests_the_gap_over_them():
    text = report.write_up(*given_run(trained=(42, 1, 2)), LABELS, SMOOTHING)
    assert "**RGB is more accurate than gray.** **holds** over 3 training seeds" in text
    assert "+2.16 ± 0.30 points (sd; 95% t interval +1.41 to +2.91)" in text
    assert "exact sign-flip p = 0.25 (the smallest it can give with 3 seeds is 0.25)" in text
    assert "| 2 | 88.38% | 90.84% | +2.46 (+1.25 to +2.47) |" in text
    assert "| mean ± sd | 88.38% ± 0.00 | 90.54% ± 0.30 | +2.16 ± 0.30 | | 0.622 | 0.622 |" in text
    assert "over 3 seeds" in text and "![accuracy and gap per seed](figures/seeds.png)" in text


def test_a_small_gap_over_seeds_does_not_hold():
    text = report.write_up(*given_run(rgb_accuracy=0.8838, trained=(42, 1, 2)), LABELS, SMOOTHING)  # gaps 0 to +0.6
    assert "**RGB is more accurate than gray.** **does not hold** over 3 training seeds" in text


def test_the_write_up_gives_calibration_before_and_after_the_temperature_and_its_causes():
    text = report.write_up(*given_run(), LABELS, SMOOTHING)
    assert (
        "gray ResNet: ECE 0.0312 (0.0300–0.0330), mean confidence 83.38% against accuracy 88.38% (under-confident)"
        in text
    )
    assert "at temperature 0.612, fitted on the validation split, ECE 0.0101 (0.0080–0.0120)" in text
    assert "NLL 0.4321 (0.4200–0.4400) → 0.3456 (0.3300–0.3600)" in text
    assert "label smoothing 0.2 trains every image towards 82.00% on its class" in text
    assert "(ECE gray ResNet 0.0222 without TTA, 0.0312 with it;" in text


def test_a_finding_the_run_overturns_is_marked_so():
    text = report.write_up(*given_run(rgb_accuracy=0.87), LABELS, SMOOTHING)
    assert "**RGB is more accurate than gray.** **does not hold**: RGB is not ahead" in text


def write_run(folder, metrics, evaluation, explanations):
    (folder / "reports").mkdir()
    (folder / "reports/metrics.json").write_text(json.dumps(metrics))
    (folder / "reports/evaluation.json").write_text(json.dumps(evaluation))
    (folder / "reports/explanations.json").write_text(json.dumps(explanations))
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")


def run_report_stage(folder):
    return subprocess.run(
        [sys.executable, "-m", "stages.report"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    write_run(folder, *given_run())
    missing = run_report_stage(folder)
    for _, images in report.figures(LABELS):
        for path, _ in images:
            (folder / "reports" / path).parent.mkdir(exist_ok=True)
            (folder / "reports" / path).write_bytes(b"\x89PNG")
    return folder, missing, run_report_stage(folder)


def test_the_report_stage_refuses_to_write_without_the_figures(stage_run):
    _, missing, _ = stage_run
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert re.fullmatch(
        r"error: reports/figures/class_accuracy.png not found: run the evaluate and gradcam stages first \(dvc "
        r"repro\)\n",
        missing.stderr,
    )


def test_the_report_stage_writes_the_write_up_whose_figure_links_resolve(stage_run):
    folder, _, result = stage_run
    assert result.returncode == 0, result.stderr
    text = (folder / "reports/README.md").read_text()
    assert (
        f"| {names.model_labels(params.recipes(folder / 'params.yaml'))['gray']} | 88.38%" in text
    )  # labelled by the recipe's arch
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 17 and "figures/class_accuracy.png" in links and "cam/rgb_mistakes_cam.png" in links
    assert all((folder / "reports" / link).is_file() for link in links)
