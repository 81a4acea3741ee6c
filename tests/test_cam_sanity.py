"""Do the maps explain the model? A planted feature for every method, and model randomization (Adebayo et al.)."""

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

from cifarcam.explain import methods

PATCH = 6


def planted_patch_data(count, seed):
    """Noise images with one coloured patch at a random place; the patch's colour is the class."""
    rng = np.random.default_rng(seed)
    images = rng.random((count, 32, 32, 3)).astype("float32") * 0.5
    labels = rng.integers(0, 2, count)
    corners = rng.integers(0, 32 - PATCH, (count, 2))
    for image, label, (row, column) in zip(images, labels, corners, strict=True):
        image[row : row + PATCH, column : column + PATCH] = (1.0, 0.0, 0.0) if label == 0 else (0.0, 1.0, 0.0)
    return images, labels, corners


def small_cnn(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained():
    images, labels, _ = planted_patch_data(1500, seed=0)
    model = small_cnn(seed=0)
    model.fit(images, labels, epochs=6, batch_size=50, verbose=0)
    return model


@pytest.mark.parametrize("method", methods.CAM_METHODS)
def test_the_peak_falls_on_the_planted_patch(trained, method):
    images, labels, corners = planted_patch_data(200, seed=1)
    assert trained.evaluate(images, labels, verbose=0)[1] > 0.95
    maps = methods.attribution_maps(trained, images, labels, method)
    peaks = np.stack(np.unravel_index(maps.reshape(len(maps), -1).argmax(axis=1), (32, 32)), axis=1)
    inside = np.all((peaks >= corners - 1) & (peaks < corners + PATCH + 1), axis=1)  # a pixel of slack at the edge
    assert inside.mean() >= 0.9


def test_integrated_gradients_put_more_than_their_share_on_the_planted_patch(trained):
    """A pixel map's peak is one pixel, noisy; its mass near the patch (a pixel of slack) is what shows the evidence.
    SmoothGrad is left out: its gradient magnitude measures sensitivity, which is lower on this patch than on the
    noise around it (0.2-0.4 of the patch's area share here)."""
    images, labels, corners = planted_patch_data(200, seed=1)
    maps = methods.attribution_maps(trained, images, labels, "integrated_gradients")
    near = np.zeros(maps.shape, bool)
    for mask, (row, column) in zip(near, corners, strict=True):
        mask[max(row - 1, 0) : row + PATCH + 1, max(column - 1, 0) : column + PATCH + 1] = True
    share = (maps * near).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert np.mean(share > near.mean(axis=(1, 2))) >= 0.9


def test_maps_depend_on_the_learned_weights(trained):
    """Model-parameter randomization (Adebayo et al. 2018): re-initialised weights give unrelated maps."""
    images, labels, _ = planted_patch_data(50, seed=2)
    maps = methods.attribution_maps(trained, images, labels, "gradcam")
    noisy = methods.attribution_maps(
        trained, images + np.random.default_rng(3).normal(0, 0.01, images.shape).astype("float32"), labels, "gradcam"
    )
    randomized = small_cnn(seed=1)
    random_maps = methods.attribution_maps(randomized, images, labels, "gradcam")

    def mean_rank_correlation(a, b):
        return np.nanmean([spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b, strict=True)])

    itself = mean_rank_correlation(maps, noisy)
    unrelated = mean_rank_correlation(maps, random_maps)
    assert itself > 0.9
    assert unrelated < itself - 0.5
