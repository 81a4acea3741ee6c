"""The study's two CNNs, rebuilt as DEVELOPERS.md describes them.

Both end in a linear `logits` layer followed by a separate softmax, so that Grad-CAM can take
gradients of the pre-softmax class score (the softmax saturates and flattens the gradients).
"""

from pathlib import Path

import keras
from keras import layers

from cifarcam.errors import PipelineError

NUM_CLASSES = 10


def seed_gray_cnn(input_shape=(32, 32, 1), dropout=0.5, filters=(32, 64, 128, 256)):
    """The study's grayscale CNN: Conv+ReLU+MaxPool stacks, global average pooling, dropout."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classifier_head(inputs, x, "seed_gray_cnn")


def seed_rgb_cnn(input_shape=(32, 32, 3), dropout=0.5, filters=(32, 64, 128, 256)):
    """The study's RGB CNN: 32→64→128→256 filters, two same-padded convolutions per stage."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(dropout / 2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classifier_head(inputs, x, "seed_rgb_cnn")


def _classifier_head(inputs, features, name):
    logits = layers.Dense(NUM_CLASSES, name="logits")(features)
    probabilities = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name)


ARCHITECTURES = {"seed_gray_cnn": seed_gray_cnn, "seed_rgb_cnn": seed_rgb_cnn}


def build(arch, input_shape, dropout):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{arch}': choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](input_shape=input_shape, dropout=dropout)


def load(path):
    """Load a saved model in Keras's safe mode, which refuses files that would run code."""
    if not Path(path).is_file():
        raise PipelineError(f"model {path} not found: train it first (dvc repro) or check the path")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean the same to the user
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise PipelineError(f"cannot load model {path}: {reason}") from None
