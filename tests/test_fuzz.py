"""Property-based: corrupted bytes fed to every reader give a clean PipelineError, never a traceback."""

import io
import tarfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_readers import binary_batch, python2_pickle, random_images

from cifarcam.core.errors import PipelineError
from cifarcam.data.download import md5_of
from cifarcam.data.prepare import load_arrays, save_arrays
from cifarcam.data.readers import read_source

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tar_bytes(files, mode="w:gz"):
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return stream.getvalue()


def png(seed):
    import cv2

    return cv2.imencode(".png", random_images(1, seed)[0])[1].tobytes()


IMAGE_FOLDER = tar_bytes({f"c/{split}/cat/{i}.png": png(i) for split in ("train", "test") for i in range(2)})
BINARY = tar_bytes(
    {f"b/data_batch_{k}.bin": binary_batch(random_images(1, k), [k]) for k in range(1, 6)}
    | {"b/test_batch.bin": binary_batch(random_images(1, 9), [3])},
    mode="w",  # uncompressed, so that corruption reaches the records rather than the gzip checksum
)
PYTHON = tar_bytes(
    {
        f"p/data_batch_{k}": python2_pickle({b"data": random_images(1, k).reshape(1, -1), b"labels": [k]})
        for k in range(1, 6)
    }
    | {"p/test_batch": python2_pickle({b"data": random_images(1, 9).reshape(1, -1), b"labels": [1]})}
    | {"p/batches.meta": python2_pickle({b"label_names": [b"a", b"b"]})},
    mode="w",
)


def corrupt(original, data):
    """`original` with a few bytes overwritten and maybe cut short, as hypothesis chooses."""
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    return bytes(blob[: data.draw(st.integers(1, len(blob)))])


def read_cleanly(path):
    """read_source succeeds or raises PipelineError with one line; anything else fails the test."""
    try:
        read_source(path, md5_of(path) if path.is_file() else None)
    except PipelineError as error:
        assert "\n" not in str(error)


@SETTINGS
@given(data=st.data(), original=st.sampled_from([IMAGE_FOLDER, BINARY, PYTHON]))
def test_corrupted_archives_fail_cleanly(tmp_path, data, original):
    path = tmp_path / "corrupted.tar"
    path.write_bytes(corrupt(original, data))
    read_cleanly(path)


@SETTINGS
@given(blob=st.binary(max_size=2048))
def test_arbitrary_bytes_fail_cleanly(tmp_path, blob):
    path = tmp_path / "anything.tar.gz"
    path.write_bytes(blob)
    read_cleanly(path)


@SETTINGS
@given(data=st.data())
def test_corrupted_images_in_a_folder_fail_cleanly(tmp_path, data):
    for split in ("train", "test"):
        (tmp_path / "set" / split / "dog").mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / split / "dog" / "1.png").write_bytes(corrupt(png(1), data))
    read_cleanly(tmp_path / "set")


@SETTINGS
@given(data=st.data())
def test_corrupted_array_files_fail_cleanly(tmp_path, data):
    save_arrays(tmp_path / "good.npz", x=np.arange(12, dtype=np.uint8).reshape(3, 4), y=np.array(["a", "b"]))
    path = tmp_path / "arrays.npz"
    path.write_bytes(corrupt((tmp_path / "good.npz").read_bytes(), data))
    try:
        load_arrays(path)
    except PipelineError as error:
        assert "\n" not in str(error)
