"""The attention statistics: concentration against a null of the same resolution, and gray/RGB map agreement."""

import numpy as np
import pytest
from scipy import stats

from cifarcam.explain import geometry
from cifarcam.study import attention

CENTRES_3X3 = (np.array([4.0, 12.0, 20.0]), np.array([4.0, 12.0, 20.0]))


def coarse_maps(count, seed, hot_cell=False):
    """Maps drawn the way a 3x3 layer's are: random cells, or one hot cell, placed at 32x32."""
    cells = np.random.default_rng(seed).random((count, 3, 3)).astype(np.float32)
    if hot_cell:
        cells = np.zeros_like(cells)
        cells[:, 1, 1] = 1
    return geometry.place(cells, CENTRES_3X3, (32, 32))


def test_random_maps_are_not_above_their_own_null_and_a_hot_cell_is():
    null = [coarse_maps(200, seed) for seed in range(1, 9)]
    random = attention.diffuseness(
        {"gray": attention.over_null(coarse_maps(200, 0), null)}
        | {"rgb": attention.over_null(coarse_maps(200, 10), null)}
    )
    assert random["gray"]["ci95_low"] < 0 < random["gray"]["ci95_high"]
    assert random["rgb_minus_gray"]["p"] > 0.01
    hot = attention.over_null(coarse_maps(200, 0, hot_cell=True), null)
    assert hot.min() > 0.05  # one hot cell of nine is concentrated for a 3x3 map
    assert attention.diffuseness({"gray": hot, "rgb": hot * 0})["rgb_minus_gray"]["ci95_high"] < 0


def test_rank_agreement_is_spearman_and_zero_for_constant_maps():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 8, 8)), rng.random((5, 8, 8))
    expected = [stats.spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b, strict=True)]
    assert np.allclose(attention.rank_agreement(a, b), expected)
    assert np.allclose(attention.rank_agreement(a, a), 1)
    assert attention.rank_agreement(np.ones((1, 8, 8)), b[:1])[0] == 0


def test_colour_and_attention_separates_images_by_who_is_right():
    rng = np.random.default_rng(0)
    gray = rng.random((120, 8, 8))
    rgb = gray.copy()
    gray_right = np.arange(120) % 4 != 0
    rgb_right = np.arange(120) % 4 != 1
    disagree = gray_right != rgb_right
    rgb[disagree] = rng.random((disagree.sum(), 8, 8))  # the maps differ exactly where the calls do
    sampled = np.arange(120) < 80
    found = attention.colour_and_attention(gray, rgb, gray_right, rgb_right, sampled)
    assert found["sample"]["images"] == 80
    assert found["same_call"]["mean"] == pytest.approx(1.0)
    assert abs(found["only_rgb_right"]["mean"]) < 0.2 and found["only_rgb_right"]["images"] == 30
    assert found["one_right_minus_same_call"]["difference"] < -0.8 and found["one_right_minus_same_call"]["p"] < 1e-6
    assert abs(found["null_other_image"]["mean"]) < 0.1
    assert found["sample_above_null"]["ci95_low"] > 0 and found["sample_above_null"]["p"] < 1e-6
