"""Downloads from the Hugging Face Hub (lrdm.hub) against a local stand-in for the Hub (tests/conftest.py):
the cache, a cut download resumed, offline mode, a wrong sha256 refused, a missing file listing the candidates."""

import hashlib
import os
import subprocess
import sys

import pytest

from lrdm.errors import ChecksumError, DownloadError
from lrdm.hub import HubFile, cached_file, hub_download, hub_file_from_url

REPO = "jun0519/lrdm"
BODY = bytes(range(256)) * 400  # 100 KiB


def test_download_goes_to_the_cache_with_its_sha256_and_commit(mock_hub, tmp_path):
    mock_hub.state.add(REPO, "model-120.pt", BODY)
    file = HubFile(REPO, "model-120.pt")
    assert cached_file(file, mock_hub.cache) is None
    got = hub_download(file, mock_hub.cache)
    assert got.path.read_bytes() == BODY and got.size == len(BODY)
    assert got.sha256 == hashlib.sha256(BODY).hexdigest() and got.commit == mock_hub.state.commit
    assert str(got.path).startswith(mock_hub.cache) and cached_file(file, mock_hub.cache) == got.path
    assert len(mock_hub.state.downloads()) == 1
    assert hub_download(file, mock_hub.cache).path == got.path  # from the cache: no second download
    assert len(mock_hub.state.downloads()) == 1


def test_a_cut_download_resumes_from_the_bytes_received(mock_hub):
    """huggingface_hub writes what it received in chunks of DOWNLOAD_CHUNK_SIZE and resumes after the last one."""
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    body = os.urandom(DOWNLOAD_CHUNK_SIZE + 65_536)
    mock_hub.state.add(REPO, "model-120.pt", body)
    mock_hub.state.cut_after = DOWNLOAD_CHUNK_SIZE + 1_000
    got = hub_download(HubFile(REPO, "model-120.pt"), mock_hub.cache)
    assert got.path.read_bytes() == body and got.sha256 == hashlib.sha256(body).hexdigest()
    ranges = [r["range"] for r in mock_hub.state.downloads()]
    assert ranges == [None, f"bytes={DOWNLOAD_CHUNK_SIZE}-"], ranges


def test_a_configured_sha256_that_differs_is_refused_naming_both(mock_hub):
    mock_hub.state.add(REPO, "model-120.pt", BODY)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        hub_download(HubFile(REPO, "model-120.pt", sha256=wrong), mock_hub.cache)
    message = str(err.value)
    assert wrong in message and hashlib.sha256(BODY).hexdigest() in message and "\n" not in message
    pinned = HubFile(REPO, "model-120.pt", sha256=hashlib.sha256(BODY).hexdigest())
    assert hub_download(pinned, mock_hub.cache).size == len(BODY)


def test_a_missing_file_lists_the_repositorys_checkpoint_files(mock_hub):
    for name in ("model-120.pt", "model-60.pt", "README.md", "sub/extra.safetensors"):
        mock_hub.state.add(REPO, name, b"x")
    with pytest.raises(DownloadError) as err:
        hub_download(HubFile(REPO, "model-100.pt"), mock_hub.cache)
    message = str(err.value)
    assert "no file 'model-100.pt'" in message and "\n" not in message
    assert message.endswith("its checkpoint files: model-120.pt, model-60.pt, sub/extra.safetensors"), message
    with pytest.raises(DownloadError, match="no repository 'jun0519/other'"):
        hub_download(HubFile("jun0519/other", "model-120.pt"), mock_hub.cache)


OFFLINE = """
import sys
from lrdm.hub import HubFile, hub_download
try:
    print(hub_download(HubFile(sys.argv[1], sys.argv[2])).path)
except Exception as err:
    print(f"{type(err).__name__}: {err}")
"""


def test_offline_mode_serves_the_warm_cache_and_names_the_switch_when_cold(mock_hub):
    mock_hub.state.add(REPO, "model-120.pt", BODY)
    warm = hub_download(HubFile(REPO, "model-120.pt"), mock_hub.cache).path
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    before = len(mock_hub.state.requests)
    run = subprocess.run([sys.executable, "-c", OFFLINE, REPO, "model-120.pt"], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.stdout.strip() == str(warm), run.stdout + run.stderr
    mock_hub.state.add(REPO, "model-60.pt", BODY)
    run = subprocess.run([sys.executable, "-c", OFFLINE, REPO, "model-60.pt"], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.stdout.startswith("DownloadError: hf://jun0519/lrdm/model-60.pt@main: not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in run.stdout
    assert len(mock_hub.state.requests) == before  # offline: the Hub was never asked


def test_hub_urls_become_hub_files_and_other_hosts_do_not():
    file = hub_file_from_url("https://huggingface.co/datasets/snah/GOPRO_Large/resolve/main/GOPRO_Large.zip")
    assert file == HubFile("snah/GOPRO_Large", "GOPRO_Large.zip", "main", "dataset")
    assert file.page == "https://huggingface.co/datasets/snah/GOPRO_Large"
    assert hub_file_from_url("https://huggingface.co/jun0519/lrdm/resolve/v1/a/b.pt") == HubFile(
        "jun0519/lrdm", "a/b.pt", "v1", "model"
    )
    assert hub_file_from_url("https://example.org/jun0519/lrdm/resolve/main/x.pt") is None
    assert hub_file_from_url("https://huggingface.co/datasets/x/y") is None
