"""fetch, local_path and is_url against a real HTTP server on 127.0.0.1."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest

from cifarcam.core.errors import PipelineError
from cifarcam.data.download import fetch, is_url, local_path

PAYLOAD = np.random.default_rng(0).integers(0, 256, 1_500_000, dtype=np.uint8).tobytes()  # over one 1 MiB chunk


def send(handler, status, body=b"", length=None):
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def server():
    """A local HTTP server: set `server.respond(handler, request_number)`; `server.requests` counts GETs."""
    state = SimpleNamespace(requests=0, respond=None, release=threading.Event())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state.requests += 1
            state.respond(self, state.requests)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-binary.tar.gz"
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def fetch_error(url, destination, **options):
    """The one-line PipelineError message of a failed fetch, which must leave the folder empty."""
    with pytest.raises(PipelineError) as caught:
        fetch(url, destination, backoff_s=0, **options)
    message = str(caught.value)
    assert "\n" not in message
    assert list(destination.parent.iterdir()) == []  # no destination, no '*.partial'
    return message


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- fetch


def test_fetch_writes_the_served_bytes(server, out):
    server.respond = lambda handler, n: send(handler, 200, PAYLOAD)
    destination = out / "archive.tar.gz"
    assert fetch(server.url, destination, retries=3, timeout_s=5, backoff_s=0) == destination
    assert destination.read_bytes() == PAYLOAD
    assert server.requests == 1
    assert sorted(p.name for p in out.iterdir()) == ["archive.tar.gz"]


def test_fetch_replaces_an_older_file(server, out):
    server.respond = lambda handler, n: send(handler, 200, PAYLOAD)
    destination = out / "archive.tar.gz"
    destination.write_bytes(b"stale")
    fetch(server.url, destination, retries=1, timeout_s=5, backoff_s=0)
    assert destination.read_bytes() == PAYLOAD


@pytest.mark.parametrize("status", [404, 403])
def test_fetch_does_not_retry_a_client_error(server, out, status):
    server.respond = lambda handler, n: send(handler, status, b"no such file")
    message = fetch_error(server.url, out / "archive.tar.gz", retries=4, timeout_s=5)
    assert server.url in message and f"HTTP {status}" in message and "download.source" in message
    assert server.requests == 1


def test_fetch_retries_a_503_until_it_succeeds(server, out):
    server.respond = lambda handler, n: send(handler, 503, b"busy") if n <= 2 else send(handler, 200, PAYLOAD)
    destination = out / "archive.tar.gz"
    fetch(server.url, destination, retries=4, timeout_s=5, backoff_s=0)
    assert destination.read_bytes() == PAYLOAD
    assert server.requests == 3


def test_fetch_gives_up_after_retries_of_503_with_a_local_copy_hint(server, out):
    server.respond = lambda handler, n: send(handler, 503, b"busy")
    message = fetch_error(server.url, out / "archive.tar.gz", retries=3, timeout_s=5)
    assert server.url in message and "HTTP 503" in message and "after 3 attempts" in message
    assert "download.source" in message and "local copy" in message
    assert server.requests == 3


def test_fetch_of_a_refused_connection_fails_cleanly(out):
    url = f"http://127.0.0.1:{free_port()}/cifar.tar.gz"
    message = fetch_error(url, out / "archive.tar.gz", retries=2, timeout_s=5)
    assert url in message and "after 2 attempts" in message and "download.source" in message


def test_fetch_retries_a_body_cut_short_then_fails_cleanly(server, out):
    def cut_short(handler, n):
        send(handler, 200, PAYLOAD[:1000], length=len(PAYLOAD))
        handler.close_connection = True

    server.respond = cut_short
    message = fetch_error(server.url, out / "archive.tar.gz", retries=2, timeout_s=5)
    assert server.url in message and "after 2 attempts" in message
    assert server.requests == 2


def test_fetch_recovers_from_a_body_cut_short_once(server, out):
    def cut_then_whole(handler, n):
        if n == 1:
            send(handler, 200, PAYLOAD[:1000], length=len(PAYLOAD))
            handler.close_connection = True
        else:
            send(handler, 200, PAYLOAD)

    server.respond = cut_then_whole
    destination = out / "archive.tar.gz"
    fetch(server.url, destination, retries=2, timeout_s=5, backoff_s=0)
    assert destination.read_bytes() == PAYLOAD
    assert server.requests == 2


def test_fetch_times_out_on_a_server_that_hangs(server, out):
    server.respond = lambda handler, n: server.release.wait(10)  # answers nothing until the test ends
    message = fetch_error(server.url, out / "archive.tar.gz", retries=2, timeout_s=1)
    assert "Timeout" in message and "after 2 attempts" in message
    assert server.requests == 2


# ---------------------------------------------------------------- local_path and is_url


def test_local_path_accepts_a_plain_path(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(b"x")
    assert local_path(str(archive)) == archive
    assert local_path(archive) == archive


def test_local_path_accepts_a_file_url_with_escapes(tmp_path):
    archive = tmp_path / "my data" / "cifar.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"x")
    assert local_path(archive.as_uri()) == archive
    assert "%20" in archive.as_uri()


def test_local_path_of_a_missing_file_points_at_download_source(tmp_path):
    missing = tmp_path / "nowhere.tar.gz"
    with pytest.raises(PipelineError) as caught:
        local_path(str(missing))
    message = str(caught.value)
    assert str(missing) in message and "does not exist" in message and "download.source" in message
    assert "\n" not in message


def test_local_path_refuses_an_unsupported_scheme():
    with pytest.raises(PipelineError, match="unsupported download.source scheme 'ftp'"):
        local_path("ftp://example.org/cifar-10-binary.tar.gz")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", True),
        ("http://127.0.0.1:8000/c.tar.gz", True),
        ("file:///data/c.tar.gz", False),
        ("../shared/data/cifar10-jpeg.tar.gz", False),
        ("ftp://example.org/c.tar.gz", False),
    ],
)
def test_is_url_is_true_only_for_http_and_https(source, expected):
    assert is_url(source) is expected
