import keras
import numpy as np
import pytest

from cifarcam.explain import faithfulness


def bright_corner_model():
    """A fixed model that says class 1 when the top-left 8x8 corner is bright, class 0 when it is not."""
    inputs = keras.Input((32, 32, 1))
    corner = keras.layers.Cropping2D(((0, 24), (0, 24)))(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(corner)
    logits = keras.layers.Dense(
        2,
        kernel_initializer=keras.initializers.Constant([[-10.0, 10.0]]),
        bias_initializer=keras.initializers.Constant([5.0, -5.0]),
    )(pooled)
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def corner_images(count=8):
    images = np.zeros((count, 32, 32, 1), np.float32)
    images[:, :8, :8] = 1.0
    return images


def test_a_map_on_the_evidence_is_more_faithful_than_its_opposite():
    model, images = bright_corner_model(), corner_images()
    right = np.zeros((len(images), 32, 32), np.float32)
    right[:, :8, :8] = 1.0
    classes = np.ones(len(images), int)
    good = faithfulness.summary(model, images, right, classes)
    bad = faithfulness.summary(model, images, 1 - right, classes)
    assert good["morf_auc"] < good["random_auc"] < good["lerf_auc"]
    assert good["faithfulness"] > 0.3 and bad["faithfulness"] < 0


def test_removal_curves_start_at_the_models_probability_and_have_steps_plus_one_points():
    model, images = bright_corner_model(), corner_images(3)
    maps = np.random.default_rng(0).random((3, 32, 32)).astype("float32")
    curves = faithfulness.removal_curves(model, images, maps, np.ones(3, int), steps=4)
    start = model.predict(images, verbose=0)[:, 1].mean()
    for points in curves.values():
        assert len(points) == 5 and points[0] == pytest.approx(start, abs=1e-6)


def test_concentration_tells_a_point_from_a_uniform_map():
    point, uniform = np.zeros((1, 32, 32), np.float32), np.ones((1, 32, 32), np.float32)
    point[0, 5, 5] = 1.0
    assert faithfulness.concentration(point) == {"mass_in_top10pct": 1.0, "area_above_half": 1 / 1024}
    assert faithfulness.concentration(uniform)["mass_in_top10pct"] == pytest.approx(102 / 1024)
    assert faithfulness.concentration(uniform)["area_above_half"] == 1.0
    assert faithfulness.concentration(np.zeros((1, 32, 32), np.float32))["mass_in_top10pct"] == 0.0


def test_area_under_an_even_curve():
    assert faithfulness.area_under([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert faithfulness.area_under([1.0, 0.0]) == pytest.approx(0.5)
