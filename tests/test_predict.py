"""The predict command, run as users run it: a subprocess on real files."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
from pipeline_project import ROOT
from recipes import build_network


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for arch, channels, name in (("study_rgb_cnn", 3, "rgb"), ("study_gray_cnn", 1, "gray")):
        build_network(arch, (32, 32, channels), dropout=0.5).save(folder / f"{name}.keras")
    return folder


def predict(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "cifarcam.predict", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_images_of_any_size_and_format_get_top3_and_a_full_size_overlay(tmp_path, model_paths):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "wide.jpg"), rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "gray.png"), rng.integers(0, 256, (50, 50), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), rng.integers(0, 256, (64, 48, 4), dtype=np.uint8))
    for model in ("rgb", "gray"):
        out = tmp_path / f"out-{model}"
        result = predict(
            "wide.jpg", "gray.png", "alpha.png", "--model", model_paths / f"{model}.keras", "--out", out, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 3
        for line in lines:
            guesses = line.split(": ", 1)[1].split(" -> ")[0].split(", ")
            probabilities = [float(guess.split()[-1]) for guess in guesses]
            assert len(guesses) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert cv2.imread(str(out / "wide_cam.png")).shape == (90, 160, 3)
        assert cv2.imread(str(out / "gray_cam.png")).shape == (50, 50, 3)
        assert cv2.imread(str(out / "alpha_cam.png")).shape == (64, 48, 3)


@pytest.mark.parametrize(
    "make_input, model, message",
    [
        (
            lambda d: (d / "notes.txt").write_text("not an image") and "notes.txt",
            "rgb.keras",
            "notes.txt is not an image",
        ),
        (lambda d: "absent.png", "rgb.keras", "cannot read absent.png"),
        (
            lambda d: cv2.imwrite(str(d / "ok.png"), np.zeros((8, 8, 3), np.uint8)) and "ok.png",
            "missing.keras",
            "missing.keras not found",
        ),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, model_paths, make_input, model, message):
    name = make_input(tmp_path)
    result = predict(name, "--model", model_paths / model, "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
