import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import spearmanr

from cifarcam.explain import sanity

IMAGES = np.random.default_rng(0).random((6, 16, 16, 3)).astype(np.float32)


def small_network(seed=0):
    """conv -> batch norm -> conv -> global average pooling -> dense: four weighted layers."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def gradient_magnitude(model):
    """|d p_0 / d x|, the largest over channels: a map that depends on every weight."""
    x = tf.constant(IMAGES)
    with tf.GradientTape() as tape:
        tape.watch(x)
        probability = model(x, training=False)[:, 0]
    return np.abs(tape.gradient(probability, x).numpy()).max(axis=-1)


def test_gradient_maps_decorrelate_as_the_network_is_randomised():
    model = small_network()
    result = sanity.cascading_randomisation(model, gradient_magnitude, steps=None)
    assert result["layers"] == [["dense"], ["conv2"], ["norm"], ["conv1"]]
    assert len(result["per_step"]) == 4 and result["mean_spearman"] == pytest.approx(np.mean(result["per_step"]))
    assert max(result["per_step"]) < 0.5
    assert sanity.spearman(gradient_magnitude(model), gradient_magnitude(model)).min() == pytest.approx(1.0)


def test_a_map_of_the_image_alone_passes_through_randomisation_unchanged():
    result = sanity.cascading_randomisation(small_network(), lambda model: IMAGES.mean(axis=-1), steps=2)
    assert result["per_step"] == [1.0, 1.0] and result["layers"] == [["dense", "conv2"], ["norm", "conv1"]]


def test_trained_weights_come_back_bit_for_bit_and_moving_statistics_are_left_alone():
    model = small_network()
    norm = model.get_layer("norm")
    norm.gamma.assign(np.linspace(0.5, 1.5, 8))  # as if trained
    norm.moving_mean.assign(np.linspace(0.1, 0.8, 8))
    before = [weight.copy() for weight in model.get_weights()]
    seen = []

    def explain(model):
        seen.append((norm.gamma.numpy().copy(), norm.moving_mean.numpy().copy()))
        if len(seen) == 4:
            raise RuntimeError("explanation failed")
        return gradient_magnitude(model)

    with pytest.raises(RuntimeError, match="explanation failed"):
        sanity.cascading_randomisation(model, explain, steps=4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    (trained_gamma, trained_mean), *_, (gamma, mean) = seen  # trained, then after dense, conv2 and the batch norm
    assert np.array_equal(mean, trained_mean) and not np.array_equal(gamma, trained_gamma)


def test_randomisation_is_seeded():
    first, again, other = (
        sanity.cascading_randomisation(small_network(), gradient_magnitude, steps=2, seed=seed) for seed in (0, 0, 1)
    )
    assert first == again and first["per_step"] != other["per_step"]


def test_spearman_matches_scipy_and_is_zero_for_a_constant_map():
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, 5, (3, 8, 8)).astype(float), rng.random((3, 8, 8))  # ties in the first
    expected = [spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second, strict=True)]
    np.testing.assert_allclose(sanity.spearman(first, second), expected, atol=1e-12)
    assert sanity.spearman(np.ones((1, 8, 8)), second[:1]).tolist() == [0.0]
