"""Training, evaluation and the maps run on Keras's JAX backend too, without TensorFlow, and a
model moves between backends."""

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from pipeline_project import ROOT, Project, make_image_folder_archive, tiny_params
from test_train import PARAMS, tiny_data

from cifarcam import cam, models
from cifarcam.choices import CAM_METHODS
from cifarcam.data import to_unit_range
from cifarcam.train import train

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

JAX_TRAINS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    import keras
    sys.path.insert(0, "tests")
    from test_train import PARAMS, tiny_data
    from cifarcam.data import to_unit_range
    from cifarcam.train import train
    folder = Path(sys.argv[1])
    assert keras.backend.backend() == "jax"
    model = train(tiny_data(), PARAMS, folder / "live", folder / "checkpoint")
    model.save(f"{folder}/jax.keras")
    np.save(f"{folder}/jax.npy", model.predict(to_unit_range(tiny_data()["x_val"]), verbose=0))
    """
)

JAX_EVALUATES = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    import keras
    sys.path.insert(0, "tests")
    from test_train import tiny_data
    from cifarcam.data import to_unit_range
    from cifarcam import cam, models, tta
    from cifarcam.choices import CAM_METHODS
    folder = Path(sys.argv[1])
    assert keras.backend.backend() == "jax"
    model = models.load(f"{folder}/tensorflow.keras")
    images = to_unit_range(tiny_data()["x_val"])
    np.save(f"{folder}/loaded.npy", tta.predict_probabilities(model, images, "flip_translate"))
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    np.save(f"{folder}/predicted.npy", predicted)
    for method in CAM_METHODS:
        np.save(f"{folder}/{method}.npy", cam.class_activation_maps(model, images, predicted, method))
    """
)


def without_tensorflow(folder):
    """A folder for PYTHONPATH in which `import tensorflow` fails, as on the GPU machine (JAX only)."""
    (folder / "tensorflow").mkdir(parents=True)
    (folder / "tensorflow" / "__init__.py").write_text("raise ImportError('no TensorFlow on this machine (blocked by the test)')\n")
    return folder


def run_under_jax(script, folder):
    pythonpath = os.pathsep.join([str(without_tensorflow(folder / "blocked")), str(ROOT)])
    env = os.environ | {"KERAS_BACKEND": "jax", "PYTHONPATH": pythonpath}
    result = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_a_model_trained_under_jax_predicts_the_same_under_tensorflow(tmp_path, precision):
    params = PARAMS | {"precision": precision}
    run_under_jax(JAX_TRAINS.replace("PARAMS, f", f"PARAMS | {{'precision': {precision!r}}}, f"), tmp_path)
    loaded = models.load(tmp_path / "jax.keras")
    expected = np.load(tmp_path / "jax.npy")
    tolerance = 1e-5 if params["precision"] == "float32" else 2e-2
    assert np.allclose(loaded.predict(to_unit_range(tiny_data()["x_val"]), verbose=0), expected, atol=tolerance)
    assert (tmp_path / "live" / "metrics.json").is_file()  # the DVCLive logging ran under JAX too


def test_a_model_trained_under_tensorflow_evaluates_and_explains_the_same_under_jax(tmp_path):
    from cifarcam import tta

    model = train(tiny_data(), PARAMS, tmp_path / "live", tmp_path / "checkpoint")
    model.save(tmp_path / "tensorflow.keras")
    run_under_jax(JAX_EVALUATES, tmp_path)
    images = to_unit_range(tiny_data()["x_val"])
    expected = tta.predict_probabilities(model, images, "flip_translate")
    assert np.allclose(np.load(tmp_path / "loaded.npy"), expected, atol=1e-5)
    predicted = np.load(tmp_path / "predicted.npy")  # JAX's calls, so that a near tie cannot pick another class here
    for method in CAM_METHODS:
        maps = cam.class_activation_maps(model, images, predicted, method)
        assert (maps.max(axis=(1, 2)) > 0.9).all()  # no empty map: the comparison below means something
        assert np.allclose(np.load(tmp_path / f"{method}.npy"), maps, atol=1e-4), method


def test_the_whole_pipeline_runs_under_jax_without_tensorflow(tmp_path):
    project = Project.create(tmp_path / "repo", **tiny_params(make_image_folder_archive(tmp_path / "cifar10-tiny.tar.gz")))
    pythonpath = os.pathsep.join(filter(None, [str(without_tensorflow(tmp_path / "blocked")), os.environ.get("PYTHONPATH")]))
    project.env |= {"KERAS_BACKEND": "jax", "PYTHONPATH": pythonpath}
    assert "ImportError" in project.run(sys.executable, "-c", "import tensorflow", check=False).stderr
    result = project.repro()
    assert result.stages == ["download", "preprocess", "train_gray", "train_rgb", "evaluate", "gradcam", "report"]
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    for variant in ("gray", "rgb"):
        assert 0 <= metrics[variant]["accuracy"] <= 1 and metrics[variant]["cam"]["images"] > 0
        assert (project.path / f"reports/cam/{variant}_cam.png").read_bytes()[:4] == b"\x89PNG"
    cv2.imwrite(str(project.path / "photo.png"), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    explained = project.run(sys.executable, "-m", "cifarcam.predict", "photo.png", "--model", "models/rgb.keras", "--out", "out")
    assert explained.stdout.startswith("photo.png: ") and cv2.imread(str(project.path / "out/photo_cam.png")).shape == (48, 64, 3)
