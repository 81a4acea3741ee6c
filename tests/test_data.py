import struct

import cv2
import numpy as np
import pytest

from cifarcam.core.errors import PipelineError
from cifarcam.data import prepare as data


def fake_raw(per_class_train=20, per_class_test=5, seed=0):
    rng = np.random.default_rng(seed)
    y_train = np.repeat(np.arange(10), per_class_train)
    y_test = np.repeat(np.arange(10), per_class_test)
    return {
        "x_train": rng.integers(0, 256, (len(y_train), 32, 32, 3), dtype=np.uint8),
        "y_train": y_train,
        "x_test": rng.integers(0, 256, (len(y_test), 32, 32, 3), dtype=np.uint8),
        "y_test": y_test,
        "classes": np.array([f"class{i}" for i in range(10)]),
    }


def test_stratified_split_keeps_every_class_share_and_is_seeded():
    labels = np.repeat(np.arange(10), 50)
    train, val = data.stratified_split(labels, 0.2, seed=1)
    assert len(val) == 100 and len(train) == 400
    assert set(train).isdisjoint(val) and len(set(train) | set(val)) == 500
    assert np.all(np.bincount(labels[val]) == 10)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    again, _ = data.stratified_split(labels, 0.2, seed=1)
    other, _ = data.stratified_split(labels, 0.2, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_first_per_class_keeps_the_first_n_of_each_class_in_order():
    labels = np.array([0, 1, 0, 0, 1, 2, 1, 0])
    assert data.first_per_class(labels, 2).tolist() == [0, 1, 2, 4, 5]
    assert data.first_per_class(labels, None).tolist() == list(range(8))


def test_grayscale_matches_opencv_image_by_image():
    images = fake_raw()["x_train"][:7]
    gray = data.to_grayscale(images)
    assert gray.shape == (7, 32, 32, 1) and gray.dtype == np.uint8
    for image, converted in zip(images, gray, strict=True):
        assert np.array_equal(converted[..., 0], cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def test_prepare_splits_train_into_train_and_val_and_leaves_test_alone():
    raw = fake_raw()
    prepared = data.prepare(raw, val_fraction=0.25, seed=0)
    rgb, gray = prepared["rgb"], prepared["gray"]
    assert len(rgb["y_train"]) == 150 and len(rgb["y_val"]) == 50
    assert np.array_equal(rgb["x_test"], raw["x_test"]) and np.array_equal(rgb["y_test"], raw["y_test"])
    assert gray["x_train"].shape == (150, 32, 32, 1)
    assert np.array_equal(gray["y_val"], rgb["y_val"])
    assert rgb["x_train"].dtype == np.uint8


def test_max_per_class_caps_each_split():
    prepared = data.prepare(fake_raw(), val_fraction=0.5, seed=0, max_per_class=3)["rgb"]
    for split in data.SPLITS:
        assert np.all(np.bincount(prepared[f"y_{split}"], minlength=10) == 3)


def test_load_prepared_scales_to_unit_range(tmp_path):
    prepared = data.prepare(fake_raw(), val_fraction=0.2, seed=0)["rgb"]
    data.save_arrays(tmp_path / "rgb.npz", **prepared)
    loaded = data.load_prepared(tmp_path / "rgb.npz")
    assert loaded["x_train"].dtype == np.float32
    assert 0.0 <= loaded["x_train"].min() and loaded["x_train"].max() <= 1.0
    assert np.allclose(loaded["x_val"] * 255, prepared["x_val"])
    assert loaded["classes"] == [f"class{i}" for i in range(10)]


def test_a_missing_input_names_the_stage_to_run(tmp_path):
    with pytest.raises(PipelineError, match="dvc repro"):
        data.load_arrays(tmp_path / "absent.npz")


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04" + b"\0" * 40])
def test_an_unreadable_array_file_is_one_line(tmp_path, content):
    (tmp_path / "rgb.npz").write_bytes(content)
    with pytest.raises(PipelineError, match="rgb.npz is not a readable array file") as error:
        data.load_arrays(tmp_path / "rgb.npz")
    assert "\n" not in str(error.value)


def damaged_header(field, value):
    """An array file whose first central-directory entry has `field` (its offset in the entry) set to `value`."""

    def damage(good):
        blob = bytearray(good)
        struct.pack_into("<H", blob, good.find(b"PK\x01\x02") + field, value)
        return bytes(blob)

    return damage


def deflate_with_a_reserved_block_type(good):
    """The first entry marked deflated, its data starting with a block of the reserved type 3."""
    blob = bytearray(damaged_header(10, 8)(good))
    name_length, extra_length = struct.unpack_from("<HH", good, 26)
    blob[30 + name_length + extra_length] = 0b111
    return bytes(blob)


@pytest.mark.parametrize(
    "damage",
    [
        damaged_header(8, 1),
        damaged_header(10, 99),
        deflate_with_a_reserved_block_type,
        damaged_header(10, 12),
        damaged_header(10, 14),
    ],
    ids=["encrypted flag", "unknown compression", "deflate", "bzip2", "lzma"],
)
def test_an_array_file_with_a_damaged_zip_header_is_one_line(tmp_path, damage):
    path = tmp_path / "rgb.npz"
    data.save_arrays(path, x_train=np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(PipelineError, match="rgb.npz is not a readable array file") as error:
        data.load_arrays(path)
    assert "\n" not in str(error.value)
