"""Where the maps' cells sit: the computed centres against where a constructed network really looks."""

import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.core.errors import PipelineError
from cifarcam.explain import geometry

ARCHITECTURES = [
    ("airbench", (32, 32, 3), {"widths": [8, 8, 8]}),
    ("resnet", (32, 32, 3), {"widths": [8, 8, 8]}),
    ("study_gray_cnn", (32, 32, 1), {"widths": [4, 4, 4, 4], "dropout": 0.0}),
    ("study_rgb_cnn", (32, 32, 3), {"widths": [4, 4, 4, 4], "dropout": 0.0}),
]


def positive_network(arch, shape, keys):
    """The architecture with every kernel a positive constant and no shifts: each map a symmetric blur of the input."""
    model = build_network(arch, shape, **keys)
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name == "kernel":
            value = np.full(variable.shape, 1 / np.prod(variable.shape[:-1]), np.float32)
        elif name in ("gamma", "moving_variance", "std"):
            value = np.ones(variable.shape, np.float32)
        else:
            value = np.zeros(variable.shape, np.float32)
        variable.assign(value)
    return model


def diagonal_dots(shape):
    """One image per position p on the diagonal: a single bright pixel at (p, p) on black."""
    size, _, channels = shape
    images = np.zeros((size, size, size, channels), np.float32)
    images[np.arange(size), np.arange(size), np.arange(size)] = 1
    return images


@pytest.mark.parametrize(("arch", "shape", "keys"), ARCHITECTURES, ids=[a[0] for a in ARCHITECTURES])
def test_each_cell_is_drawn_where_the_network_looks_within_a_pixel(arch, shape, keys):
    """A dot moved along the diagonal of a 96x96 input: each diagonal cell whose receptive field lies inside
    the image responds most around its computed centre (padding breaks the field's symmetry at the border)."""
    shape = (96, 96, shape[-1])
    model = positive_network(arch, shape, keys)
    images = diagonal_dots(shape)
    for name, layer in geometry.blocks(model).items():
        responses = keras.Model(model.inputs, layer.output).predict(images, verbose=0).sum(axis=-1)
        ys, xs = geometry.cell_centres(model, layer)
        assert ys.tolist() == xs.tolist()
        checked = 0
        for i, centre in enumerate(ys):
            response = responses[:, i, i]
            seen = np.flatnonzero(response > 0)
            if seen.min() == 0 or seen.max() == shape[0] - 1:
                continue
            peak = np.flatnonzero(response >= response.max() * (1 - 1e-4)).mean()
            assert abs(peak - centre) <= 1, (name, i, peak, centre)
            checked += 1
        assert checked >= 2, name


def test_a_plain_resize_misplaces_airbench_cells_and_placement_does_not():
    """The error issue 33 found: a resize draws the 3x3 map's corner cell at 26 px, where it looks at 20."""
    model = positive_network(*ARCHITECTURES[0])
    layer = geometry.blocks(model)["block3"]
    ys, xs = geometry.cell_centres(model, layer)
    assert ys.tolist() == xs.tolist() == [4, 12, 20]
    corner = np.zeros((1, 3, 3), np.float32)
    corner[0, 2, 2] = 1
    placed = geometry.place(corner, (ys, xs), (32, 32))[0]
    assert placed[20, 20] == 1 and placed[19, 20] < 1 and placed[20, 19] < 1  # rises to the cell's centre, then flat
    import cv2

    resized = cv2.resize(corner[0], (32, 32), interpolation=cv2.INTER_LINEAR)
    assert np.argwhere(resized == resized.max()).min() >= 25


def test_blocks_are_the_three_deepest_resolutions_of_each_architecture():
    found = {
        arch: [geometry.resolution(layer) for layer in geometry.blocks(build_network(arch, shape, **keys)).values()]
        for arch, shape, keys in ARCHITECTURES
    }
    assert found["airbench"] == ["15x15", "7x7", "3x3"]
    assert found["resnet"] == found["study_gray_cnn"] == found["study_rgb_cnn"] == ["16x16", "8x8", "4x4"]
    blocks = geometry.blocks(build_network("airbench", (32, 32, 3)))
    assert [layer.name for layer in blocks.values()] == ["group1_2_act", "group2_2_act", "group3_2_act"]


def test_placement_interpolates_between_centres_and_is_flat_beyond_them():
    maps = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    placed = geometry.place(maps, (np.array([2.0, 6.0]), np.array([1.0, 3.0, 5.0])), (8, 7))
    assert placed.shape == (1, 8, 7)
    assert placed[0, 2, 1] == 0 and placed[0, 6, 5] == 5 and placed[0, 4, 2] == pytest.approx(2.0)
    assert (placed[0, :3, 0] == 0).all() and (placed[0, 6:, 6] == 5).all()
    assert geometry.place(maps, None, (2, 3)) is not None


def test_an_unknown_block_names_the_blocks_there_are():
    model = build_network("airbench", (32, 32, 3))
    with pytest.raises(
        PipelineError, match="unknown layer 'block4' for airbench: choose one of block1, block2, block3"
    ):
        geometry.block(model, "block4")
