import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.study import tta
from cifarcam.training.augment import Augment


def numbered_images(count=64, size=8, channels=3):
    """Images whose every pixel value is distinct, so that any moved pixel can be traced."""
    values = np.arange(count * size * size * channels, dtype=np.float32)
    return values.reshape(count, size, size, channels) / values.size + 0.01


def reflect_shift(image, dy, dx, pad):
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
    return padded[pad + dy : pad + dy + image.shape[0], pad + dx : pad + dx + image.shape[1]]


def mirrored(images, out):
    """Per image: True if `out` is its mirror, False if it is untouched (anything else fails)."""
    out = keras.ops.convert_to_numpy(out)
    sides = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(side != keep for side, keep in zip(sides, kept, strict=True))
    return np.array(sides)


def test_inference_passes_images_through_untouched():
    images = numbered_images()
    out = Augment(flip="alternate", translate=2, cutout=4)(images, training=False)
    assert np.array_equal(keras.ops.convert_to_numpy(out), images)


@pytest.mark.parametrize("flip", ["random", "alternate"])
def test_flip_mirrors_some_images_and_leaves_the_others(flip):
    images = numbered_images()
    assert 10 < mirrored(images, Augment(flip=flip, translate=0, seed=3)(images, training=True)).sum() < 54


def test_alternating_flip_shows_each_image_both_ways_in_any_two_consecutive_epochs():
    images = numbered_images()
    layer = Augment(flip="alternate", translate=0, steps_per_epoch=2)
    sides = np.array([mirrored(images, layer(images, training=True)) for _ in range(6)])  # 3 epochs of 2 steps
    assert (sides[0] == sides[1]).all() and (sides[2] == sides[3]).all()  # fixed within an epoch
    assert (sides[0] != sides[2]).all() and (sides[2] != sides[4]).all()  # and switched at the next


def test_random_flip_redraws_the_sides_at_every_step():
    images = numbered_images()
    layer = Augment(flip="random", translate=0, seed=3)
    first, second = (mirrored(images, layer(images, training=True)) for _ in range(2))
    assert (first == second).any() and (first != second).any()


def test_no_flip_leaves_every_image_unmirrored():
    images = numbered_images()
    assert not mirrored(images, Augment(flip="none", translate=0)(images, training=True)).any()


def test_an_unknown_flip_names_the_choices():
    with pytest.raises(ValueError, match="none, random, alternate"):
        Augment(flip=True)


@pytest.mark.parametrize("pad", [1, 2, 4])
def test_translation_is_a_reflect_padded_shift_of_at_most_pad_pixels(pad):
    images = numbered_images()
    out = keras.ops.convert_to_numpy(Augment(flip="none", translate=pad, seed=1)(images, training=True))
    shifts = set()
    for o, image in zip(out, images, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if np.allclose(o, reflect_shift(image, dy, dx, pad))
        ]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > (2 * pad + 1) ** 2 // 2  # the shifts vary from image to image


def test_cutout_zeroes_one_square_of_at_most_the_given_side():
    images = numbered_images(size=16)
    out = keras.ops.convert_to_numpy(Augment(flip="none", translate=0, cutout=6, seed=2)(images, training=True))
    holes = 0
    for o, image in zip(out, images, strict=True):
        zero = (o == 0).all(axis=-1)
        assert np.array_equal(o[~zero], image[~zero])
        rows, columns = np.flatnonzero(zero.any(axis=1)), np.flatnonzero(zero.any(axis=0))
        if len(rows):
            holes += 1
            assert zero[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].all()  # a filled rectangle
            assert len(rows) <= 6 and len(columns) <= 6
    assert holes == len(images)  # every square overlaps the image by at least one pixel


def test_the_same_seed_gives_the_same_augmentation():
    images = numbered_images()
    first = Augment(translate=2, cutout=4, seed=5)(images, training=True)
    second = Augment(translate=2, cutout=4, seed=5)(images, training=True)
    other = Augment(translate=2, cutout=4, seed=6)(images, training=True)
    assert np.array_equal(keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(second))
    assert not np.array_equal(keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(other))


def test_the_layer_survives_saving_and_loading_with_its_step_count(tmp_path):
    layer = Augment(flip="alternate", translate=3, cutout=2, steps_per_epoch=5, seed=9)
    layer(numbered_images(), training=True)
    keras.Sequential([keras.Input((8, 8, 3)), layer]).save(tmp_path / "augment.keras")
    loaded = keras.models.load_model(tmp_path / "augment.keras").layers[0]
    assert (loaded.flip, loaded.translate, loaded.cutout, loaded.steps_per_epoch, loaded.seed) == (
        "alternate",
        3,
        2,
        5,
        9,
    )
    assert int(keras.ops.convert_to_numpy(loaded.steps_done.value)) == 1  # a resumed run stays on its epoch's side


@pytest.mark.parametrize("mode, count", [("none", 1), ("flip", 2), ("flip_translate", 6)])
def test_test_time_views(mode, count):
    images = numbered_images(4)
    views = tta.views(images, mode)
    assert len(views) == count and all(view.shape == images.shape for view in views)
    assert np.array_equal(views[0], images)
    if count > 1:
        assert np.array_equal(views[1], images[:, :, ::-1])
    if count > 2:
        assert np.array_equal(views[2][0], reflect_shift(images[0], -1, -1, 1))
        assert np.array_equal(views[3][0], reflect_shift(images[0], 1, 1, 1))


def test_an_unknown_tta_mode_names_the_choices():
    with pytest.raises(ValueError, match="flip_translate"):
        tta.views(numbered_images(2), "rotate")


def test_tta_averages_the_probabilities_of_the_views():
    model = build_network("resnet", (8, 8, 3), dropout=0.0, widths=[4, 4, 4])
    images = numbered_images(5)
    averaged = tta.predict_probabilities(model, images, "flip")
    expected = (model.predict(images, verbose=0) + model.predict(images[:, :, ::-1], verbose=0)) / 2
    assert np.allclose(averaged, expected, atol=1e-6)
