"""Training, evaluation and the maps run on Keras's JAX backend too, without TensorFlow, and a
model moves between backends."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from pipeline_project import ROOT, Project, make_image_folder_archive, tiny_params
from test_train import DEFAULT, PARAMS, tiny_data

from cifarcam.core.choices import EXPLANATION_METHODS
from cifarcam.data.prepare import to_unit_range
from cifarcam.explain import methods
from cifarcam.training import models
from cifarcam.training.train import train

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

JAX_TRAINS = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path
    import numpy as np
    import keras
    sys.path.insert(0, "tests")
    from test_train import tiny_data
    from cifarcam.data.prepare import to_unit_range
    from cifarcam.training.train import train
    folder, params = Path(sys.argv[1]), json.loads(sys.argv[2])
    assert keras.backend.backend() == "jax"
    model = train(tiny_data(), params, folder / "live", folder / "checkpoint")
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
    from cifarcam.data.prepare import to_unit_range
    from cifarcam.explain import methods
    from cifarcam.study import tta
    from cifarcam.training import models
    from cifarcam.core.choices import EXPLANATION_METHODS
    folder = Path(sys.argv[1])
    assert keras.backend.backend() == "jax"
    model = models.load(f"{folder}/tensorflow.keras")
    images = to_unit_range(tiny_data()["x_val"])
    np.save(f"{folder}/loaded.npy", tta.predict_probabilities(model, images, "flip_translate"))
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    np.save(f"{folder}/predicted.npy", predicted)
    for method in EXPLANATION_METHODS:  # every other image: nine methods, Score-CAM's masked passes among them
        np.save(f"{folder}/{method}.npy", methods.attribution_maps(model, images[::2], predicted[::2], method))
    """
)


def without_tensorflow(folder):
    """A folder for PYTHONPATH in which `import tensorflow` fails, as on the GPU machine (JAX only)."""
    (folder / "tensorflow").mkdir(parents=True, exist_ok=True)
    (folder / "tensorflow" / "__init__.py").write_text(
        "raise ImportError('no TensorFlow on this machine (blocked by the test)')\n"
    )
    return folder


def run_under_jax(script, folder, *args):
    command, options = under_jax(script, folder, *args)
    result = subprocess.run(command, **options, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def under_jax(script, folder, *args):
    """The command and the subprocess options that run `script` on `folder` under JAX, TensorFlow blocked."""
    pythonpath = os.pathsep.join([str(without_tensorflow(folder / "blocked")), str(ROOT)])
    command = [sys.executable, "-c", script, str(folder), *args]
    return command, {"cwd": ROOT, "env": os.environ | {"KERAS_BACKEND": "jax", "PYTHONPATH": pythonpath}}


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_a_model_trained_under_jax_predicts_the_same_under_tensorflow(tmp_path, precision):
    params = PARAMS | {"precision": precision}
    run_under_jax(JAX_TRAINS, tmp_path, json.dumps(params))
    loaded = models.load(tmp_path / "jax.keras")
    expected = np.load(tmp_path / "jax.npy")
    tolerance = 1e-5 if params["precision"] == "float32" else 2e-2
    assert np.allclose(loaded.predict(to_unit_range(tiny_data()["x_val"]), verbose=0), expected, atol=tolerance)
    assert (tmp_path / "live" / "metrics.json").is_file()  # the DVCLive logging ran under JAX too


def test_a_killed_training_under_jax_resumes_to_the_uninterrupted_runs_weights(tmp_path):
    # the default recipe, airbench's: its shifts are random draws, whose state the weights leave out
    params = json.dumps(DEFAULT | {"widths": [8, 16, 16], "epochs": 30, "batch_size": 8, "precision": "float32"})
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    run_under_jax(JAX_TRAINS, uninterrupted, params)
    command, options = under_jax(JAX_TRAINS, resumed, params)
    killed = subprocess.Popen(command, **options, start_new_session=True)
    state = resumed / "checkpoint" / "state.json"
    deadline = time.monotonic() + 300
    while not (state.exists() and json.loads(state.read_text())["epochs_done"] >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert 2 <= json.loads(state.read_text())["epochs_done"] < 30
    run_under_jax(JAX_TRAINS, resumed, params)
    resumed_weights = models.load(resumed / "jax.keras").get_weights()
    uninterrupted_weights = models.load(uninterrupted / "jax.keras").get_weights()
    for resumed_weight, uninterrupted_weight in zip(resumed_weights, uninterrupted_weights, strict=True):
        np.testing.assert_array_equal(resumed_weight, uninterrupted_weight)


def test_a_model_trained_under_tensorflow_evaluates_and_explains_the_same_under_jax(tmp_path):
    from cifarcam.study import tta

    model = train(tiny_data(), PARAMS, tmp_path / "live", tmp_path / "checkpoint")
    model.save(tmp_path / "tensorflow.keras")
    run_under_jax(JAX_EVALUATES, tmp_path)
    images = to_unit_range(tiny_data()["x_val"])
    expected = tta.predict_probabilities(model, images, "flip_translate")
    assert np.allclose(np.load(tmp_path / "loaded.npy"), expected, atol=1e-5)
    predicted = np.load(tmp_path / "predicted.npy")  # JAX's calls, so that a near tie cannot pick another class here
    for method in EXPLANATION_METHODS:
        maps = methods.attribution_maps(model, images[::2], predicted[::2], method)
        assert (maps.max(axis=(1, 2)) > 0.9).all()  # no empty map: the comparison below means something
        assert np.allclose(np.load(tmp_path / f"{method}.npy"), maps, atol=1e-4), method


def test_the_whole_pipeline_runs_under_jax_without_tensorflow(tmp_path):
    project = Project.create(
        tmp_path / "repo", **tiny_params(make_image_folder_archive(tmp_path / "cifar10-tiny.tar.gz"))
    )
    pythonpath = os.pathsep.join(
        filter(None, [str(without_tensorflow(tmp_path / "blocked")), os.environ.get("PYTHONPATH")])
    )
    project.env |= {"KERAS_BACKEND": "jax", "PYTHONPATH": pythonpath}
    assert "ImportError" in project.run(sys.executable, "-c", "import tensorflow", check=False).stderr
    result = project.repro()
    assert result.stages == ["download", "preprocess", "train_gray@42", "train_rgb@42", "evaluate", "gradcam", "report"]
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    explanations = json.loads((project.path / "reports/explanations.json").read_text())
    assert explanations["choice"]["method"] in EXPLANATION_METHODS
    for variant in ("gray", "rgb"):
        assert 0 <= metrics[variant]["accuracy"] <= 1 and explanations[variant]["images"] > 0
        assert (project.path / f"reports/cam/{variant}_cam.png").read_bytes()[:4] == b"\x89PNG"
    cv2.imwrite(str(project.path / "photo.png"), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    explained = project.run(
        sys.executable, "-m", "cifarcam.predict", "photo.png", "--model", "models/rgb/seed42.keras", "--out", "out"
    )
    assert explained.stdout.startswith("photo.png: ") and cv2.imread(str(project.path / "out/photo_cam.png")).shape == (
        48,
        64,
        3,
    )
