"""Keras for the package: every module that computes with a backend imports it from here.

So `import cifarcam`, the download and preprocess stages and the parameter checks never load
TensorFlow, while anything that does load it gets it quiet and reproducible.
"""

import os


def _import_tensorflow_quietly():
    """Load TensorFlow with the C++ start-up banner (oneDNN, CPU features) kept off stderr.

    No setting silences those lines (they are printed before absl logging starts), and they would
    bury the one-line errors of the stages and of predict. Import errors still surface as Python
    exceptions once stderr is back. Set TF_CPP_MIN_LOG_LEVEL yourself to see TensorFlow's logs.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # also hides spurious graph warnings printed at ERROR level
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# One TensorFlow op at a time (each op still uses every core): with ops running side by side, two
# float32 trainings with the same seed drift apart within an epoch.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
_import_tensorflow_quietly()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

__all__ = ["keras", "layers", "ops"]
