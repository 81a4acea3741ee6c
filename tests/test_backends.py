"""Training and evaluation run on Keras's JAX backend too, and a model moves between backends."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cifarcam import models
from cifarcam.data import to_unit_range
from cifarcam.train import train
from pipeline_project import ROOT
from test_train import PARAMS, tiny_data

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
    from cifarcam import models, tta
    folder = Path(sys.argv[1])
    assert keras.backend.backend() == "jax"
    model = models.load(f"{folder}/tensorflow.keras")
    np.save(f"{folder}/loaded.npy", tta.predict_probabilities(model, to_unit_range(tiny_data()["x_val"]), "flip_translate"))
    """
)


def run_under_jax(script, folder):
    env = os.environ | {"KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
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


def test_a_model_trained_under_tensorflow_evaluates_under_jax(tmp_path):
    from cifarcam import tta

    model = train(tiny_data(), PARAMS, tmp_path / "live", tmp_path / "checkpoint")
    model.save(tmp_path / "tensorflow.keras")
    run_under_jax(JAX_EVALUATES, tmp_path)
    expected = tta.predict_probabilities(model, to_unit_range(tiny_data()["x_val"]), "flip_translate")
    assert np.allclose(np.load(tmp_path / "loaded.npy"), expected, atol=1e-5)
