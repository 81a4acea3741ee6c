"""Atomic outputs: a stage that fails or is killed leaves nothing that DVC could cache as good."""

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary sibling of `path` to write (a file or a folder); move it into place on success.

    The temporary name keeps the suffix, since some writers (Keras) insist on one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    _remove(temporary)
    try:
        yield temporary
        _remove(path)
        os.replace(temporary, path)
    finally:
        _remove(temporary)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
