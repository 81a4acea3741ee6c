"""Fetch a CIFAR-10 source to a local file: HTTP(S) with retries and a progress bar, or a local path."""

import hashlib
import time
import urllib.parse
from pathlib import Path

import requests
from tqdm import tqdm

from cifarcam.core.errors import PipelineError

OFFLINE_HINT = (
    "set download.source in params.yaml to a local copy "
    "(e.g. ../shared/data/cifar10-jpeg.tar.gz or a downloaded cifar-10-binary.tar.gz)"
)
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def is_url(source):
    return urllib.parse.urlparse(str(source)).scheme in ("http", "https")


def local_path(source):
    """The filesystem path of a local source: a plain path or a file:// URL."""
    parsed = urllib.parse.urlparse(str(source))
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(source).expanduser()
    else:
        raise PipelineError(f"unsupported download.source scheme '{parsed.scheme}': use http(s)://, file:// or a path")
    if not path.exists():
        raise PipelineError(f"download.source {source} does not exist: {OFFLINE_HINT}")
    return path


def fetch(url, destination, retries=5, timeout_s=60, backoff_s=1.0):
    """Stream `url` into `destination`, retrying connection errors, time-outs and 5xx answers.

    A failed attempt leaves no file at `destination`.
    """
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".partial")
    last_problem = None
    for attempt in range(1, retries + 1):
        try:
            _stream(url, partial, timeout_s)
            partial.replace(destination)
            return destination
        except _Transient as problem:
            last_problem = problem
        finally:
            partial.unlink(missing_ok=True)
        if attempt < retries:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise PipelineError(f"cannot download {url} ({last_problem}) after {retries} attempts: {OFFLINE_HINT}")


class _Transient(Exception):
    pass


def _stream(url, path, timeout_s):
    try:
        with requests.get(url, stream=True, timeout=timeout_s) as response:
            if response.status_code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise PipelineError(f"cannot download {url}: HTTP {response.status_code}; {OFFLINE_HINT}")
            expected = int(response.headers.get("Content-Length", 0)) or None
            received = 0
            with (
                open(path, "wb") as file,
                tqdm(total=expected, unit="B", unit_scale=True, desc="download", mininterval=2) as progress,
            ):
                for chunk in response.iter_content(chunk_size=1 << 20):
                    file.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
            if expected is not None and received != expected:
                raise _Transient(f"body cut short at {received} of {expected} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
        raise _Transient(type(error).__name__) from None


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
