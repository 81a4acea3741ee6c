"""Read CIFAR-10 from the official binary or python archives, or from an image-folder layout.

Archives are read in memory and never extracted, and an archive whose members could escape a
folder (absolute paths, '..', links, devices) is refused outright. The python version is
unpickled only after its checksum is verified, and then with an unpickler that builds nothing
but NumPy arrays.
"""

import codecs
import io
import pickle
import re
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cifarcam.core.errors import PipelineError
from cifarcam.core.names import CLASSES
from cifarcam.data.download import md5_of

IMAGE_SHAPE = (32, 32, 3)
OFFICIAL_MD5 = {
    "binary": "c32a1d4ab5d03f1284b67883e8d87530",  # cifar-10-binary.tar.gz
    "python": "c58f30108f718f92721af3b95e74349a",  # cifar-10-python.tar.gz
}
MAX_UNPACKED_BYTES = 1 << 30  # the official archives unpack to under 200 MB
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_BINARY_RECORD = 1 + 32 * 32 * 3


def read_source(path, expected_md5=None):
    """Return (x_train, y_train, x_test, y_test, classes) from an archive or a folder at `path`.

    The official archives must match their published MD5, or `expected_md5` when it is given;
    any other archive is checked only against `expected_md5`.
    """
    path = Path(path)
    if path.is_dir():
        return _from_image_folder(_folder_files(path), str(path))
    members = _read_tar(path)
    kind = _official_kind(members)
    if kind or expected_md5:
        expected = expected_md5 or OFFICIAL_MD5[kind]
        actual = md5_of(path)
        if actual != expected:
            raise PipelineError(
                f"checksum mismatch for {path}: MD5 {actual}, expected {expected}; "
                "the file is corrupt or not the official archive: download it again"
            )
    if kind == "binary":
        return _from_binary(members)
    if kind == "python":
        return _from_python(members)
    return _from_image_folder(members, str(path))


def _read_tar(path):
    """Every regular file of a tar archive as {name: bytes}, after the safety checks."""
    members = {}
    unpacked = 0
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                _check_member(member, path)
                if not member.isfile():
                    continue
                unpacked += member.size
                if unpacked > MAX_UNPACKED_BYTES:
                    raise PipelineError(
                        f"{path} unpacks to over {MAX_UNPACKED_BYTES >> 20} MB, far more than CIFAR-10: refusing it"
                    )
                members[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise PipelineError(
            f"{path} is truncated or not a readable tar archive ({_describe(error)}): download it again"
        ) from None
    if not members:
        raise PipelineError(f"{path} holds no files: point download.source at a CIFAR-10 archive")
    return members


def _check_member(member, archive_path):
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise PipelineError(
            f"{archive_path}: member '{name}' would land outside the target folder: refusing the archive"
        )
    if not (member.isfile() or member.isdir()):
        raise PipelineError(f"{archive_path}: member '{name}' is a link or a device file: refusing the archive")


def _describe(error):
    return " ".join(str(error).split()) or type(error).__name__


def _official_kind(members):
    names = {Path(name).name for name in members}
    if {"data_batch_1.bin", "test_batch.bin"} <= names:
        return "binary"
    if {"data_batch_1", "test_batch", "batches.meta"} <= names:
        return "python"
    return None


def _batches(members, pattern):
    found = sorted((name for name in members if re.fullmatch(pattern, Path(name).name)), key=lambda n: Path(n).name)
    if not found:
        raise PipelineError(f"the archive has no member matching {pattern}: it is incomplete, download it again")
    return found


def _from_binary(members):
    def read(names):
        blob = b"".join(members[name] for name in names)
        if len(blob) % _BINARY_RECORD:
            raise PipelineError(f"{names[0]}: size is not a whole number of {_BINARY_RECORD}-byte records")
        records = np.frombuffer(blob, np.uint8).reshape(-1, _BINARY_RECORD)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), records[:, 0].astype(np.int64)

    x_train, y_train = read(_batches(members, r"data_batch_[1-5]\.bin"))
    x_test, y_test = read(_batches(members, r"test_batch\.bin"))
    meta = [name for name in members if Path(name).name == "batches.meta.txt"]
    classes = tuple(members[meta[0]].decode().split()) if meta else CLASSES
    return x_train, y_train, x_test, y_test, classes


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only NumPy arrays and plain containers: anything else in the pickle is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles (protocols 0-2 and 5) store bytes and arrays through these two:
        ("_codecs", "encode"): codecs.encode,
        ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise PipelineError(f"the pickle asks for {module}.{name}, which a CIFAR-10 batch never does: refusing it")
        return self._ALLOWED[(module, name)]


def _unpickle(blob, name):
    try:
        return _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except PipelineError:
        raise
    except Exception as error:
        raise PipelineError(f"{name} is not a readable CIFAR-10 batch ({_describe(error)})") from None


def _from_python(members):
    def read(names):
        batches = [_unpickle(members[name], name) for name in names]
        try:
            images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.concatenate([np.asarray(b[b"labels"]) for b in batches]).astype(np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise PipelineError(f"{names[0]} lacks CIFAR-10's data or labels ({_describe(error)})") from None
        return np.ascontiguousarray(images, dtype=np.uint8), labels

    x_train, y_train = read(_batches(members, r"data_batch_[1-5]"))
    x_test, y_test = read(_batches(members, r"test_batch"))
    meta = _unpickle(members[_batches(members, r"batches\.meta")[0]], "batches.meta")
    classes = tuple(name.decode() for name in meta.get(b"label_names", [])) or CLASSES
    return x_train, y_train, x_test, y_test, classes


def _folder_files(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _from_image_folder(files, where):
    """Images laid out <prefix>/{train,test}/<class>/<file>, classes named as CIFAR-10's.

    Within a class the files are taken in name order. Grayscale or RGBA images are converted to
    RGB; any other size than 32x32 is an error.
    """
    splits = {"train": [], "test": []}
    for name, blob in files.items():
        parts = Path(name).parts
        if Path(name).name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        split_at = [i for i, part in enumerate(parts[:-2]) if part in splits]
        if not split_at or split_at[-1] != len(parts) - 3:
            continue
        split, label = parts[-3], parts[-2]
        if label not in CLASSES:
            raise PipelineError(
                f"{where}: unknown class folder '{label}' ({name}); CIFAR-10's classes are {', '.join(CLASSES)}"
            )
        splits[split].append((CLASSES.index(label), name, blob))
    for split, items in splits.items():
        if not items:
            raise PipelineError(
                f"{where} has no {split}/<class>/<image> files: lay it out as train/<class>/* and test/<class>/*"
            )
    arrays = []
    for split in ("train", "test"):
        items = sorted(splits[split], key=lambda item: (item[0], item[1]))
        decoding = tqdm(items, desc=f"decode {split}", unit="img", mininterval=2)
        arrays.append(np.stack([_decode(blob, name, where) for _, name, blob in decoding]))
        arrays.append(np.array([label for label, _, _ in items], np.int64))
    return (*arrays, CLASSES)


def _decode(blob, name, where):
    image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"{where}: {name} is not a readable image")
    if image.shape != IMAGE_SHAPE:
        raise PipelineError(f"{where}: {name} is {image.shape[1]}x{image.shape[0]}, CIFAR-10 images are 32x32")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
