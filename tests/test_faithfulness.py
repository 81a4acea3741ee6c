import keras
import numpy as np
import pytest

from cifarcam.explain import faithfulness

PATCH, TOP = 6, 13  # the evidence: a 6x6 patch in the middle of the image


def patch_model(gain=20.0, threshold=0.75):
    """A fixed model whose class 1 probability is sigmoid(2 gain (m - threshold)), m the patch's mean."""
    inputs = keras.Input((32, 32, 1))
    patch = keras.layers.Cropping2D(((TOP, 32 - TOP - PATCH), (TOP, 32 - TOP - PATCH)))(inputs)
    logits = keras.layers.Dense(
        2,
        kernel_initializer=keras.initializers.Constant([[-gain, gain]]),
        bias_initializer=keras.initializers.Constant([gain * threshold, -gain * threshold]),
    )(keras.layers.GlobalAveragePooling2D()(patch))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def patch_images(count, seed=0):
    """Dim noise with a bright patch: the model says class 1 for all of them, and blurring the patch undoes that."""
    images = np.random.default_rng(seed).random((count, 32, 32, 1)).astype(np.float32) * 0.3
    images[:, TOP : TOP + PATCH, TOP : TOP + PATCH] = 1.0
    return images


def region_maps(count, top=TOP, left=TOP):
    maps = np.zeros((count, 32, 32), np.float32)
    maps[:, top : top + PATCH, left : left + PATCH] = 1.0
    return maps


@pytest.fixture(scope="module")
def model():
    return patch_model()


def ramp(height=32, width=32):
    ys, xs = np.mgrid[:height, :width]
    return np.stack([0.1 + 0.02 * ys + 0.01 * xs, 0.9 - 0.01 * ys + 0.005 * xs], axis=-1)[None].astype(np.float32)


def test_imputation_without_noise_reproduces_a_linear_ramp_inside_the_image():
    removed = np.zeros((1, 32, 32), bool)
    removed[0, 1:-1, 1:-1] = np.random.default_rng(0).random((30, 30)) < 0.7  # a weighted neighbour mean is exact
    filled = faithfulness.impute(ramp(), removed, noise=0)
    assert np.abs(filled - ramp()).max() < 1e-5


def test_a_removed_pixel_is_the_weighted_mean_of_its_neighbours_inside_the_image():
    images = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    removed = np.zeros((1, 32, 32), bool)
    removed[0, 5, 7] = removed[0, 0, 0] = True
    filled = faithfulness.impute(images, removed, noise=0)[0]
    image = images[0]
    direct, diagonal = image[[4, 6, 5, 5], [7, 7, 6, 8]].sum(axis=0), image[[4, 4, 6, 6], [6, 8, 6, 8]].sum(axis=0)
    np.testing.assert_allclose(filled[5, 7], direct / 6 + diagonal / 12, rtol=1e-5)
    corner = (image[0, 1] / 6 + image[1, 0] / 6 + image[1, 1] / 12) / (5 / 12)  # weights outside the image drop out
    np.testing.assert_allclose(filled[0, 0], corner, rtol=1e-5)


def test_imputation_adds_small_seeded_noise_to_the_removed_pixels_only():
    images = np.random.default_rng(2).random((4, 32, 32, 3)).astype(np.float32)
    removed = np.random.default_rng(3).random((4, 32, 32)) < 0.9
    noisy, exact = faithfulness.impute(images, removed, seed=5), faithfulness.impute(images, removed, noise=0)
    assert np.array_equal(noisy[~removed], images[~removed])
    assert np.all(np.isfinite(noisy)) and noisy.min() > -0.06 and noisy.max() < 1.06
    assert (noisy - exact)[removed].std() == pytest.approx(faithfulness.NOISE, rel=0.05)
    assert np.array_equal(noisy, faithfulness.impute(images, removed, seed=5))
    assert np.array_equal(faithfulness.impute(images, np.zeros_like(removed)), images)


def test_images_are_imputed_independently_of_their_batch(monkeypatch):
    images = np.random.default_rng(4).random((3, 32, 32, 1)).astype(np.float32)
    removed = np.random.default_rng(5).random((3, 32, 32)) < 0.5
    alone = [faithfulness.impute(images[i : i + 1], removed[i : i + 1], noise=0) for i in range(3)]
    monkeypatch.setattr(faithfulness, "IMPUTE_BLOCK", 2)
    np.testing.assert_allclose(faithfulness.impute(images, removed, noise=0), np.concatenate(alone), atol=1e-6)


def test_an_image_with_every_pixel_removed_cannot_be_imputed():
    with pytest.raises(ValueError, match="every pixel removed"):
        faithfulness.impute(np.zeros((1, 4, 4, 1)), np.ones((1, 4, 4), bool))


def test_a_map_on_the_evidence_beats_a_map_elsewhere_and_the_random_null(model):
    images = patch_images(16)
    maps = {
        "evidence": region_maps(16),
        "elsewhere": region_maps(16, 0, 0),
        "random": np.random.default_rng(6).random((16, 32, 32)).astype(np.float32),
    }
    scores = faithfulness.per_image_many(model, images, maps, np.ones(16, int))
    means = {name: {score: values.mean() for score, values in by_score.items()} for name, by_score in scores.items()}
    for score in faithfulness.SCORES:
        sign = 1 if faithfulness.LOWER_IS_BETTER[score] else -1
        for other in ("elsewhere", "random"):
            assert sign * (means[other][score] - means["evidence"][score]) > 0.15, (score, other, means)
    assert faithfulness.road_combined(scores["evidence"]).mean() > 0.95


def test_equal_relevance_is_ordered_at_random_not_by_pixel_index(model):
    ranks = faithfulness.relevance_ranks(np.ones((400, 32, 32)), np.random.default_rng(7))
    assert ranks[:, 0, 0].mean() == pytest.approx(1023 / 2, abs=50)  # by index, pixel (0, 0) would always go first
    images = patch_images(48)
    constant, shuffled = np.ones((48, 32, 32), np.float32), np.random.default_rng(8).random((48, 32, 32))
    scores = faithfulness.per_image_many(model, images, {"constant": constant, "shuffled": shuffled}, np.ones(48, int))
    for score in faithfulness.SCORES:
        assert scores["constant"][score].mean() == pytest.approx(scores["shuffled"][score].mean(), abs=0.06), score


def test_a_model_that_ignores_the_image_scores_its_probability_everywhere():
    inputs = keras.Input((32, 32, 3))
    logits = keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant([0, 1, 2]))(
        keras.layers.GlobalAveragePooling2D()(inputs)
    )
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    images = np.random.default_rng(9).random((3, 32, 32, 3)).astype(np.float32)
    scores = faithfulness.per_image(model, images, images[..., 0], np.array([0, 1, 2]), steps=4)
    expected = np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum()
    for score in faithfulness.SCORES:
        np.testing.assert_allclose(scores[score], expected, rtol=1e-5)


def test_a_set_scores_the_same_alone_and_among_others_across_chunks(model, monkeypatch):
    monkeypatch.setattr(faithfulness, "VARIANTS_PER_CALL", 4 * 3 * 2)  # steps=4: two images per predict call
    images, maps = patch_images(5), np.random.default_rng(10).random((2, 5, 32, 32))
    together = faithfulness.per_image_many(model, images, {"a": maps[0], "b": maps[1]}, np.ones(5, int), steps=4)
    alone = faithfulness.per_image(model, images, maps[1], np.ones(5, int), steps=4)
    for score in faithfulness.SCORES:
        np.testing.assert_array_equal(together["b"][score], alone[score])
    with pytest.raises(ValueError, match="at least 2"):
        faithfulness.per_image(model, images, maps[0], np.ones(5, int), steps=1)


def test_the_bootstrap_interval_covers_the_mean_and_shrinks_with_more_images():
    values = np.random.default_rng(11).normal(0.5, 0.2, 2000)
    few, many = faithfulness.bootstrap(values[:50]), faithfulness.bootstrap(values)
    for summary in (few, many):
        assert summary["ci95_low"] < summary["mean"] < summary["ci95_high"]
    assert many["ci95_high"] - many["ci95_low"] < (few["ci95_high"] - few["ci95_low"]) / 4
    assert many["ci95_high"] - many["ci95_low"] == pytest.approx(2 * 1.96 * 0.2 / np.sqrt(2000), rel=0.15)
    assert set(faithfulness.bootstrap(values, confidence=0.9)) == {"mean", "ci90_low", "ci90_high"}


def test_road_combined_is_lerf_minus_morf():
    scores = {"road_morf": np.array([0.2, 0.5]), "road_lerf": np.array([0.9, 0.4])}
    np.testing.assert_allclose(faithfulness.road_combined(scores), [0.7, -0.1])


def test_concentration_tells_a_point_from_a_uniform_map():
    maps = np.zeros((3, 32, 32), np.float32)
    maps[0, 5, 5], maps[1] = 1.0, 1.0
    np.testing.assert_allclose(faithfulness.concentration(maps), [1.0, 102 / 1024, 0.0])
