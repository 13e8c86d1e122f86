from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lrdm.config import TrainConfig
from lrdm.data.synthetic import make_synthetic_dataset


@pytest.fixture(scope="session")
def rain_index(tmp_path_factory):
    """A small synthetic rain set (64 px patches) shared by the slower tests."""
    root = tmp_path_factory.mktemp("rain")
    make_synthetic_dataset(root, "rain", size=64, patches_per_image=4, test_patches_per_image=2, seed=0)
    return root / "index.parquet"


@pytest.fixture(scope="session")
def tiny_config(rain_index):
    """A network and run small enough for a few CPU steps per second."""
    return TrainConfig(
        index=str(rain_index),
        crop=16,
        dim=8,
        dim_mults=(1, 2),
        steps=6,
        batch_size=2,
        lr=1e-3,
        checkpoint_every=2,
        log_every=1,
        ema_start=0,
        ema_update_every=1,
        ema_decay=0.9,
        T=100,
        rank_spec="poly_decrease-p3",
    )


# --------------------------------------------------------------------------------------------------
# A local HTTP server (127.0.0.1 only) with Range support and injectable failures, for download tests
# --------------------------------------------------------------------------------------------------

RANGE_RE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class ServerState:
    """Files served and failure modes of the test server; records every request."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # the first body sent stops after this many bytes, then the connection drops
    fail_first: int = 0  # the first K requests answer 503
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    requests: list[dict[str, str | None]] = field(default_factory=list)
    cut_done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class RangeHandler(BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-`` support (206 / 416) and injectable failures."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
        state = self.server.state
        with state.lock:
            state.requests.append({"path": self.path, "range": self.headers.get("Range")})
            n_request = len(state.requests)
        if n_request <= state.fail_first:
            self.send_error(503, "Service Unavailable")
            return
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not state.ignore_range:
            match = RANGE_RE.match(range_header)
            assert match, f"unexpected Range header {range_header!r}"
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        with state.lock:
            cut = state.cut_after is not None and not state.cut_done
            state.cut_done = state.cut_done or cut
        if cut:
            self.wfile.write(chunk[: state.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@dataclass
class LocalServer:
    state: ServerState
    base: str

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def no_proxy(monkeypatch):
    """urllib honours *_proxy variables; the test server must be reached directly."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), RangeHandler)
    httpd.state = ServerState()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalServer(httpd.state, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
