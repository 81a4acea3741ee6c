"""read_source on small synthetic CIFAR-10 sources built in tmp_path: no network, no shared data."""

import io
import pickle
import struct
import tarfile

import cv2
import numpy as np
import pytest

from cifarcam.core.errors import PipelineError
from cifarcam.data.download import md5_of
from cifarcam.data.readers import CLASSES, MAX_UNPACKED_BYTES, read_source

# ---------------------------------------------------------------- helpers


def read(source, expected_md5=None):
    return read_source(source, expected_md5)


def error_of(source, expected_md5=None):
    """The message of the PipelineError read_source raises for `source`, checked to be one line."""
    with pytest.raises(PipelineError) as caught:
        read(source, expected_md5)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def member(name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    """A (TarInfo, fileobj) pair for tarfile.addfile."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind != tarfile.REGTYPE:
        return info, None
    info.size = len(data)
    return info, io.BytesIO(data)


def write_tar(path, files, extra=()):
    """A tar.gz at `path` with `files` ({name: bytes}) followed by the `extra` (TarInfo, fileobj) pairs."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            archive.addfile(*member(name, data))
        for info, fileobj in extra:
            archive.addfile(info, fileobj)
    return path


def random_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


# ---------------------------------------------------------------- official binary layout


def binary_batch(images, labels):
    """CIFAR-10 binary records: one label byte, then the R, G and B planes (32x32, row-major)."""
    return b"".join(
        bytes([int(label)]) + image[:, :, 0].tobytes() + image[:, :, 1].tobytes() + image[:, :, 2].tobytes()
        for image, label in zip(images, labels, strict=True)
    )


@pytest.fixture
def binary_archive(tmp_path):
    """cifar-10-batches-bin/ with 5 train batches of 2 records, a test batch of 3, and class names."""
    train_x, test_x = random_images(10, seed=1), random_images(3, seed=2)
    train_x[0, 3, 5] = (10, 20, 30)  # row 3, column 5 of the first training image
    train_y, test_y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), np.array([9, 0, 4])
    files = {
        f"cifar-10-batches-bin/data_batch_{k}.bin": binary_batch(train_x[2 * k - 2 : 2 * k], train_y[2 * k - 2 : 2 * k])
        for k in range(1, 6)
    }
    files["cifar-10-batches-bin/test_batch.bin"] = binary_batch(test_x, test_y)
    files["cifar-10-batches-bin/batches.meta.txt"] = "".join(f"c{i}\n" for i in range(10)).encode() + b"\n"
    path = write_tar(tmp_path / "cifar-10-binary.tar.gz", files)
    return path, (train_x, train_y, test_x, test_y)


def test_binary_archive_gives_hwc_images_labels_and_class_names(binary_archive):
    path, (train_x, train_y, test_x, test_y) = binary_archive
    x_train, y_train, x_test, y_test, classes = read(path, expected_md5=md5_of(path))
    assert x_train.shape == (10, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (3, 32, 32, 3) and x_test.dtype == np.uint8
    assert tuple(x_train[0, 3, 5]) == (10, 20, 30)
    np.testing.assert_array_equal(x_train, train_x)
    np.testing.assert_array_equal(x_test, test_x)
    assert y_train.tolist() == train_y.tolist() and y_test.tolist() == test_y.tolist()
    assert classes == tuple(f"c{i}" for i in range(10))


def test_binary_archive_without_meta_uses_cifar10_class_names(tmp_path):
    files = {f"b/data_batch_{k}.bin": binary_batch(random_images(1, k), [k]) for k in range(1, 6)}
    files["b/test_batch.bin"] = binary_batch(random_images(1, 9), [7])
    path = write_tar(tmp_path / "nometa.tar.gz", files)
    *_, classes = read(path, expected_md5=md5_of(path))
    assert classes == CLASSES


def test_binary_archive_not_matching_the_published_md5_is_refused(binary_archive):
    path, _ = binary_archive
    message = error_of(path)
    assert "checksum mismatch" in message and md5_of(path) in message


def test_binary_archive_with_a_partial_record_is_refused(tmp_path):
    files = {f"b/data_batch_{k}.bin": binary_batch(random_images(1, k), [k]) for k in range(1, 6)}
    files["b/test_batch.bin"] = binary_batch(random_images(1, 9), [7])[:-1]
    path = write_tar(tmp_path / "short.tar.gz", files)
    assert "whole number" in error_of(path, expected_md5=md5_of(path))


# ---------------------------------------------------------------- official python layout


class Python2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the official cifar-10-python archive does."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_pickle(obj):
    stream = io.BytesIO()
    Python2StylePickler(stream, protocol=2).dump(obj)
    # NumPy 1, which wrote the official archive, names the module numpy.core.multiarray
    return stream.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def python_archive_files(dumps):
    """cifar-10-batches-py/ with 5 train batches of 2 images, a test batch of 3, and batches.meta."""
    train_x, test_x = random_images(10, seed=3), random_images(3, seed=4)
    train_x[0, 3, 5] = (10, 20, 30)
    train_y, test_y = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], [1, 2, 3]

    def batch(images, labels):
        return dumps({b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072), b"labels": labels})

    files = {
        f"cifar-10-batches-py/data_batch_{k}": batch(train_x[2 * k - 2 : 2 * k], train_y[2 * k - 2 : 2 * k])
        for k in range(1, 6)
    }
    files["cifar-10-batches-py/test_batch"] = batch(test_x, test_y)
    files["cifar-10-batches-py/batches.meta"] = dumps(
        {b"label_names": [name.encode() for name in CLASSES], b"num_vis": 3072}
    )
    return files, (train_x, train_y, test_x, test_y)


def assert_python_archive_read(path, expected):
    train_x, train_y, test_x, test_y = expected
    x_train, y_train, x_test, y_test, classes = read(path, expected_md5=md5_of(path))
    assert x_train.shape == (10, 32, 32, 3) and x_train.dtype == np.uint8
    assert tuple(x_train[0, 3, 5]) == (10, 20, 30)
    np.testing.assert_array_equal(x_train, train_x)
    np.testing.assert_array_equal(x_test, test_x)
    assert y_train.tolist() == train_y and y_test.tolist() == test_y
    assert classes == CLASSES


def test_python_archive_in_the_official_python2_pickle_format_is_read(tmp_path):
    files, expected = python_archive_files(python2_pickle)
    assert_python_archive_read(write_tar(tmp_path / "py.tar.gz", files), expected)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_python_archive_pickled_by_python3_is_read(tmp_path, protocol):
    files, expected = python_archive_files(lambda obj: pickle.dumps(obj, protocol=protocol))
    assert_python_archive_read(write_tar(tmp_path / "py.tar.gz", files), expected)


class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


@pytest.mark.parametrize("poisoned", ["data_batch_1", "test_batch", "batches.meta"])
def test_python_archive_with_a_code_running_pickle_is_refused_without_running_it(tmp_path, poisoned):
    marker = tmp_path / "MARKER"
    files, _ = python_archive_files(python2_pickle)
    files[f"cifar-10-batches-py/{poisoned}"] = pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)
    path = write_tar(tmp_path / "evil.tar.gz", files)
    message = error_of(path, expected_md5=md5_of(path))
    assert "system" in message and "refusing" in message
    assert not marker.exists()


def test_python_archive_is_not_unpickled_before_its_checksum_matches(tmp_path):
    marker = tmp_path / "MARKER"
    files, _ = python_archive_files(python2_pickle)
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)
    assert "checksum mismatch" in error_of(write_tar(tmp_path / "evil.tar.gz", files))
    assert not marker.exists()


def test_python_batch_that_is_not_a_pickle_is_refused(tmp_path):
    files, _ = python_archive_files(python2_pickle)
    files["cifar-10-batches-py/test_batch"] = b"\x00not a pickle at all"
    path = write_tar(tmp_path / "py.tar.gz", files)
    assert "test_batch" in error_of(path, expected_md5=md5_of(path))


# ---------------------------------------------------------------- image-folder layout


def png(rgb_or_gray, size=32):
    """A PNG of one colour: an (r, g, b) tuple, or an int for a grayscale image."""
    if isinstance(rgb_or_gray, int):
        image = np.full((size, size), rgb_or_gray, np.uint8)
    else:
        image = np.full((size, size, 3), rgb_or_gray[::-1], np.uint8)  # cv2 wants BGR
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def image_source(tmp_path, files, form):
    """`files` ({relative name: bytes}) as a plain folder, or as a tar.gz under a 'cifar10/' prefix."""
    if form == "archive":
        return write_tar(tmp_path / "images.tar.gz", {f"cifar10/{name}": data for name, data in files.items()})
    root = tmp_path / "images"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


VALID_IMAGE_FILES = {
    "train/cat/0002.png": png((200, 0, 0)),
    "train/cat/0001.png": png((0, 200, 0)),
    "train/airplane/0003.png": png((1, 2, 3)),
    "train/truck/0001.png": png((250, 128, 5)),
    "test/frog/0001.png": png(77),  # grayscale
    "test/automobile/0009.png": png((9, 99, 199)),
    "README.txt": b"not an image, ignored",
    "train/cat/.hidden.png": b"ignored",
}


@pytest.fixture(params=["archive", "directory"])
def form(request):
    return request.param


def test_image_folder_is_ordered_by_class_then_file_name_in_rgb(tmp_path, form):
    x_train, y_train, x_test, y_test, classes = read(image_source(tmp_path, VALID_IMAGE_FILES, form))
    assert classes == CLASSES
    assert x_train.shape == (4, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.tolist() == [0, 3, 3, 9]  # airplane, cat/0001, cat/0002, truck
    assert [tuple(image[16, 16]) for image in x_train] == [(1, 2, 3), (0, 200, 0), (200, 0, 0), (250, 128, 5)]
    assert (x_train[3] == (250, 128, 5)).all()
    assert y_test.tolist() == [1, 6]  # automobile, frog
    assert (x_test[0] == (9, 99, 199)).all()


def test_image_folder_grayscale_png_becomes_three_equal_channels(tmp_path, form):
    _, _, x_test, y_test, _ = read(image_source(tmp_path, VALID_IMAGE_FILES, form))
    assert x_test.shape == (2, 32, 32, 3)
    assert y_test[1] == CLASSES.index("frog") and (x_test[1] == 77).all()


def test_image_folder_archive_needs_no_checksum_but_honours_an_expected_one(tmp_path):
    path = image_source(tmp_path, VALID_IMAGE_FILES, "archive")
    assert len(read(path, expected_md5=md5_of(path))[0]) == 4
    assert "checksum mismatch" in error_of(path, expected_md5="0" * 32)


def test_image_folder_with_an_unknown_class_names_it(tmp_path, form):
    files = {**VALID_IMAGE_FILES, "train/unicorn/1.png": png((5, 5, 5))}
    message = error_of(image_source(tmp_path, files, form))
    assert "'unicorn'" in message and "unknown class" in message


def test_image_folder_with_an_unreadable_image_names_it(tmp_path, form):
    files = {**VALID_IMAGE_FILES, "train/dog/broken.png": b"\x89PNG garbage, not an image"}
    message = error_of(image_source(tmp_path, files, form))
    assert "train/dog/broken.png" in message and "not a readable image" in message


def test_image_folder_with_a_wrong_size_image_names_it(tmp_path, form):
    files = {**VALID_IMAGE_FILES, "test/ship/big.png": png((1, 1, 1), size=40)}
    message = error_of(image_source(tmp_path, files, form))
    assert "test/ship/big.png" in message and "40x40" in message


def test_image_folder_without_a_test_split_is_refused(tmp_path, form):
    files = {name: data for name, data in VALID_IMAGE_FILES.items() if not name.startswith("test/")}
    message = error_of(image_source(tmp_path, files, form))
    assert "no test/" in message


# ---------------------------------------------------------------- unsafe or broken archives


@pytest.mark.parametrize(
    "bad, words",
    [
        (member("/etc/cifar.png", b"x"), ["'/etc/cifar.png'", "outside"]),
        (member("../cifar.png", b"x"), ["'../cifar.png'", "outside"]),
        (member("cifar10/train/../../../cifar.png", b"x"), ["'cifar10/train/../../../cifar.png'", "outside"]),
        (member("cifar10/train/cat/link.png", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), ["link.png'", "link"]),
        (
            member("cifar10/train/cat/hard.png", kind=tarfile.LNKTYPE, linkname="cifar10/train/cat/0001.png"),
            ["hard.png'", "link"],
        ),
        (member("cifar10/dev", kind=tarfile.CHRTYPE), ["'cifar10/dev'", "device"]),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink", "hardlink", "device"],
)
def test_archive_with_an_unsafe_member_is_refused(tmp_path, bad, words):
    files = {f"cifar10/{name}": data for name, data in VALID_IMAGE_FILES.items()}
    message = error_of(write_tar(tmp_path / "unsafe.tar.gz", files, extra=[bad]))
    assert all(word in message for word in words), message


def test_truncated_archive_is_refused(tmp_path, binary_archive):
    path, _ = binary_archive
    whole = path.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    message = error_of(cut, expected_md5=md5_of(cut))
    assert "truncated or not a readable tar archive" in message


def test_random_bytes_are_not_an_archive(tmp_path):
    path = tmp_path / "noise.tar.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a readable tar archive" in error_of(path)


def test_empty_archive_is_refused(tmp_path):
    assert "holds no files" in error_of(write_tar(tmp_path / "empty.tar.gz", {}))


class _Zeros(io.RawIOBase):
    """A readable stream of `size` zero bytes, made on the fly."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def test_an_archive_that_unpacks_far_beyond_cifar10_is_refused(tmp_path):
    bomb = tarfile.TarInfo("cifar10/train/cat/huge.png")
    bomb.size = MAX_UNPACKED_BYTES + 1
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        archive.addfile(bomb, io.BufferedReader(_Zeros(bomb.size), 1 << 20))
    assert path.stat().st_size < 10 << 20
    assert "far more than CIFAR-10" in error_of(path)
