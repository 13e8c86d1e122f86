from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from lrdm.config import TrainConfig
from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset


@pytest.fixture(scope="session")
def rain_index(tmp_path_factory):
    """A small synthetic rain set (64 px patches) shared by the slower tests."""
    root = tmp_path_factory.mktemp("rain")
    make_synthetic_dataset(root, "rain", SynthesisOptions(size=64, patches_per_image=4, test_patches_per_image=2))
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


@pytest.fixture
def scaled_loss(monkeypatch):
    """``scaled_loss(factor, call, once=False)``: from the ``call``-th call of :meth:`RDDMProcess.loss` on (1-based;
    ``once``: that call only), the loss returned is ``factor`` times its value (a run that diverges)."""

    from lrdm.core.process import RDDMProcess  # torch: only where needed

    def scale(factor: float, call: int, once: bool = False) -> None:
        original = RDDMProcess.loss
        calls = {"n": 0}

        def scaled(self, *args):
            calls["n"] += 1
            value = original(self, *args)
            hit = calls["n"] == call if once else calls["n"] >= call
            return value * factor if hit else value

        monkeypatch.setattr(RDDMProcess, "loss", scaled)

    return scale


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workflow(tmp_path):
    """Runs this checkout's Snakefile in ``tmp_path``: ``workflow(config, *args)`` writes ``config`` to
    ``tmp_path/cfg.yaml`` (keys in their order; its outputs go to results/cfg/, lrdm/paths.py), runs Snakemake on
    one core with ``args`` (targets, ``-n``, ...) and returns the finished process, its output captured."""

    def run(config: dict, *args: str) -> subprocess.CompletedProcess:
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
        command += ["--configfile", str(path), "--cores", "1", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    return run


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


def send_file(handler: BaseHTTPRequestHandler, state: ServerState | HubState, chunk: bytes, head: bool = False) -> None:
    """Ends the headers of a file response with its type and length, then (unless ``head``) sends ``chunk``; while
    ``state.cut_after`` is set, the first body sent stops after that many bytes and the connection drops."""
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(chunk)))
    handler.end_headers()
    if head:
        return
    with state.lock:
        cut = state.cut_after is not None and not state.cut_done
        state.cut_done = state.cut_done or cut
    if cut:
        handler.wfile.write(chunk[: state.cut_after])
        handler.wfile.flush()
        handler.close_connection = True
        return
    handler.wfile.write(chunk)


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
        send_file(self, state, body[start:])


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


# --------------------------------------------------------------------------------------------------
# A local stand-in for the Hugging Face Hub (127.0.0.1 only): the endpoints huggingface_hub's hf_hub_download
# and list_repo_files call (HEAD/GET .../resolve/<revision>/<file> with Range, GET /api/<type>s/<repo>/tree/<rev>)
# --------------------------------------------------------------------------------------------------

HUB_RESOLVE_RE = re.compile(r"^/(?:(datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
HUB_TREE_RE = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/?]+)")


@dataclass
class HubState:
    """Repositories served (``(repo_type, repo_id) -> {filename: bytes}``, all at one commit), failure modes,
    and every request received."""

    repos: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    cut_after: int | None = None  # the first file body sent stops after this many bytes, then the connection drops
    requests: list[dict[str, str | None]] = field(default_factory=list)
    cut_done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo_id: str, filename: str, body: bytes, repo_type: str = "model") -> None:
        self.repos.setdefault((repo_type, repo_id), {})[filename] = body

    def downloads(self) -> list[dict[str, str | None]]:
        """The GET requests for file bodies."""
        return [r for r in self.requests if r["method"] == "GET" and "/resolve/" in str(r["path"])]


class HubHandler(BaseHTTPRequestHandler):
    """The subset of the Hub's HTTP API that downloads and file listings use."""

    server: _HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass

    def _error(self, code: int, error_code: str | None = None) -> None:
        self.send_response(code)
        if error_code:
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", error_code)
        self.send_header("X-Repo-Commit", self.server.state.commit)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _repo(self, repo_type: str, repo_id: str, revision: str) -> dict[str, bytes] | None:
        state = self.server.state
        files = state.repos.get((repo_type, repo_id))
        if files is None:
            self._error(404, "RepoNotFound")
            return None
        if revision not in ("main", state.commit):
            self._error(404, "RevisionNotFound")
            return None
        return files

    def _resolve(self, head: bool) -> None:
        import hashlib

        state = self.server.state
        with state.lock:
            state.requests.append(
                {"method": "HEAD" if head else "GET", "path": self.path, "range": self.headers.get("Range")}
            )
        path = self.path.split("?")[0]
        tree = HUB_TREE_RE.match(path)
        if tree and not head:
            repo_type = "dataset" if tree.group(1) == "datasets" else "model"
            files = self._repo(repo_type, tree.group(2), tree.group(3))
            if files is None:
                return
            listing = [
                {"type": "file", "path": name, "size": len(body), "oid": hashlib.sha1(body).hexdigest()}
                for name, body in sorted(files.items())
            ]
            payload = json.dumps(listing).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        match = HUB_RESOLVE_RE.match(path)
        if match is None:
            self._error(404)
            return
        repo_type = "dataset" if match.group(1) else "model"
        files = self._repo(repo_type, match.group(2), match.group(3))
        if files is None:
            return
        body = files.get(match.group(4))
        if body is None:
            self._error(404, "EntryNotFound")
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not head:
            found = RANGE_RE.match(range_header)
            assert found, f"unexpected Range header {range_header!r}"
            start = int(found.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("X-Repo-Commit", state.commit)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Accept-Ranges", "bytes")
        send_file(self, state, body[start:], head)

    def do_HEAD(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
        self._resolve(head=True)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
        self._resolve(head=False)


class _HubServer(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


@dataclass
class MockHub:
    state: HubState
    endpoint: str
    cache: str  # HF_HUB_CACHE of the subprocesses; in-process calls pass it (huggingface_hub read it at import)


@pytest.fixture
def mock_hub(monkeypatch, tmp_path, no_proxy):
    """A local Hub at ``HF_ENDPOINT``, with an empty Hugging Face cache of its own (``HF_HUB_CACHE``)."""
    httpd = _HubServer(("127.0.0.1", 0), HubHandler)
    httpd.state = HubState()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    cache = str(tmp_path / "hf-cache")
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        yield MockHub(httpd.state, endpoint, cache)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def lrdm_trainer_checkpoint(path, dim: int = 8, dim_mults=(1, 2), T: int = 100, beta2_sum: float = 1.0, seed: int = 0):
    """Writes a checkpoint laid out as the official LRDM (and RDDM) ``Trainer.save`` writes it: ``step, model,
    opt, ema, scaler``, the EMA copy of ``ResidualDiffusion`` under ``ema['ema_model.*']`` (12 float32 schedule
    buffers, then the two-network ``UnetRes`` under ``model.unet0`` / ``model.unet1``), a tiny network.  Returns
    the EMA network's state_dict."""
    import torch

    from lrdm.core.schedules import residual_schedule
    from lrdm.core.unetres import UnetRes

    torch.manual_seed(seed)
    net = UnetRes(dim=dim, dim_mults=tuple(dim_mults), share_encoder=0)
    for tensor in net.state_dict().values():  # away from the initialisation, so a wrong load shows
        tensor.add_(0.01 * torch.randn_like(tensor))
    s = residual_schedule(T=T, beta2_sum=beta2_sum)
    beta2_prev = torch.cat([torch.ones(1, dtype=torch.float64), s.beta2_bar[:-1]])
    alpha_prev = torch.cat([torch.ones(1, dtype=torch.float64), s.alpha_bar[:-1]])
    posterior = s.beta2 * beta2_prev / s.beta2_bar
    posterior[0] = 0
    buffers = {
        "alphas": s.alpha,
        "alphas_cumsum": s.alpha_bar,
        "one_minus_alphas_cumsum": 1 - s.alpha_bar,
        "betas2": s.beta2,
        "betas": s.beta2.sqrt(),
        "betas2_cumsum": s.beta2_bar,
        "betas_cumsum": s.beta_bar,
        "posterior_mean_coef1": beta2_prev / s.beta2_bar,
        "posterior_mean_coef2": (s.beta2 * alpha_prev - beta2_prev * s.alpha) / s.beta2_bar,
        "posterior_mean_coef3": s.beta2 / s.beta2_bar,
        "posterior_variance": posterior,
        "posterior_log_variance_clipped": posterior.clamp(min=1e-20).log(),
    }
    diffusion = {name: value.float() for name, value in buffers.items()}
    diffusion.update({f"model.{name}": value.clone() for name, value in net.state_dict().items()})
    raw = {name: value + 0.5 if value.is_floating_point() else value for name, value in diffusion.items()}
    ema = {"initted": torch.tensor(True), "step": torch.tensor(120)}
    ema.update({f"online_model.{name}": value for name, value in raw.items()})
    ema.update({f"ema_model.{name}": value for name, value in diffusion.items()})
    torch.save({"step": 120, "model": raw, "opt": {"state": {}, "param_groups": []}, "ema": ema, "scaler": None}, path)
    return net.state_dict()


@pytest.fixture
def trainer_checkpoint():
    """:func:`lrdm_trainer_checkpoint`, for tests that write a tiny official-layout checkpoint."""
    return lrdm_trainer_checkpoint
