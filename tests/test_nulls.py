import numpy as np
import pytest

from cifarcam.explain import geometry, nulls

AIRBENCH_3X3 = (np.array([4.0, 12.0, 20.0]), np.array([4.0, 12.0, 20.0]))  # geometry's example: off-centre cells
BLOCKS_2X2 = (np.array([7.5, 23.5]), np.array([7.5, 23.5]))  # a plain stride-16 grid


def images(count=3, channels=3, seed=0):
    return np.random.default_rng(seed).random((count, 32, 32, channels)).astype(np.float32)


@pytest.mark.parametrize("centres", [None, AIRBENCH_3X3, BLOCKS_2X2])
def test_every_null_is_a_map_in_the_unit_interval_at_input_resolution(centres):
    maps = nulls.null_maps(images(), centres)
    assert tuple(maps) == nulls.NULLS
    for values in maps.values():
        assert values.shape == (3, 32, 32) and values.dtype == np.float32
        assert values.min() >= 0 and values.max() <= 1 + 1e-6


def test_the_random_null_has_the_layers_resolution_and_its_seed():
    coarse = nulls.null_maps(images(), AIRBENCH_3X3, seed=1)["random"]
    cells = coarse[:, [4, 12, 20]][:, :, [4, 12, 20]]
    np.testing.assert_allclose(coarse, geometry.place(cells, AIRBENCH_3X3, (32, 32)), atol=1e-6)  # 9 numbers a map
    assert np.unique(cells).size == 27
    fine = nulls.null_maps(images(), None, seed=1)["random"]
    assert np.abs(np.diff(coarse, axis=2)).mean() < np.abs(np.diff(fine, axis=2)).mean() / 5
    assert np.array_equal(nulls.null_maps(images(), None, seed=1)["random"], fine)
    assert not np.array_equal(nulls.null_maps(images(), None, seed=2)["random"], fine)


def test_the_centre_prior_peaks_at_the_centre_and_falls_with_distance():
    fine = nulls.null_maps(images(1), None)["centre"][0]
    assert fine[15:17, 15:17].min() == pytest.approx(1.0) and fine.max() == pytest.approx(1.0)
    ys, xs = np.mgrid[:32, :32]
    distance = np.hypot(ys - 15.5, xs - 15.5).ravel()
    order = np.argsort(distance, kind="stable")
    assert np.all(np.diff(fine.ravel()[order]) <= 1e-7)
    coarse = nulls.null_maps(images(1), AIRBENCH_3X3)["centre"][0]
    assert coarse[12, 12] == pytest.approx(1.0) and np.argmax(coarse) == 12 * 32 + 12  # the cell nearest the centre


def test_the_edge_null_peaks_on_a_planted_edge():
    picture = np.full((1, 32, 32, 3), 0.2, np.float32)
    picture[:, :, 16:] = 0.8  # a vertical edge between columns 15 and 16
    fine = nulls.null_maps(picture, None)["edges"][0]
    assert np.all(fine[:, 15:17] == 1.0) and fine[:, :14].max() == 0 and fine[:, 18:].max() == 0
    coarse = nulls.null_maps(picture, BLOCKS_2X2)["edges"][0]
    assert coarse[0, 0] == pytest.approx(1.0) and coarse[0, 31] == pytest.approx(1.0)  # half the edge in each cell


def test_edges_are_averaged_over_each_cells_nearest_pixels():
    picture = images(2)
    magnitude = nulls.edge_magnitude(picture)
    blocks = magnitude.reshape(2, 2, 16, 2, 16).mean(axis=(2, 4))
    coarse = nulls.null_maps(picture, BLOCKS_2X2)["edges"]
    np.testing.assert_allclose(
        coarse[:, [0, 0, 31, 31], [0, 31, 0, 31]], blocks.reshape(2, 4) / blocks.max(axis=(1, 2))[:, None], rtol=1e-5
    )


def test_edges_of_a_gray_image_are_the_same_in_rgb():
    gray = images(2, channels=1)
    np.testing.assert_allclose(nulls.edge_magnitude(np.repeat(gray, 3, axis=-1)), nulls.edge_magnitude(gray), atol=1e-5)
    assert nulls.null_maps(np.zeros((1, 32, 32, 1), np.float32), None)["edges"].max() == 0  # no edge, no NaN
