"""Tests of lrdm.data.download and lrdm.data.archives against a local, Range-capable HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import lrdm.data.download
import lrdm.errors
import lrdm.files
from lrdm.data.archives import EXTRACTED_MARKER, extract
from lrdm.data.download import PART_SUFFIX, Source, fetch, sha256_file
from lrdm.errors import ChecksumError, DownloadError, ManualDownloadRequired, UnsafeArchiveError

PAYLOAD_BYTES = 200_000
CUT_AFTER_BYTES = 50_000


def _payload(seed: int = 0, n: int = PAYLOAD_BYTES) -> bytes:
    return random.Random(seed).randbytes(n)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _direct_connections(no_proxy):
    """Every test here talks to the local server directly (see conftest's ``no_proxy``)."""


class SleepRecorder:
    """No-op replacement for time.sleep that remembers the requested delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _fetch(source: Source, folder: Path, **kwargs) -> tuple[Path, SleepRecorder]:
    sleeper = SleepRecorder()
    kwargs.setdefault("timeout", 5.0)
    path = fetch(source, folder, progress=False, sleep=sleeper, **kwargs)
    return path, sleeper


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------


def test_plain_download_is_verified_and_renamed(server, tmp_path):
    data = _payload()
    server.state.files["/a.zip"] = data
    source = Source("a.zip", url=server.url("a.zip"), sha256=_sha(data), size=len(data))
    path, sleeper = _fetch(source, tmp_path / "downloads")
    assert path == tmp_path / "downloads" / "a.zip"
    assert path.read_bytes() == data
    assert not (tmp_path / "downloads" / ("a.zip" + PART_SUFFIX)).exists()
    assert server.state.requests == [{"path": "/a.zip", "range": None}]
    assert sleeper.delays == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = _payload(1)
    server.state.files["/b.tar"] = data
    server.state.cut_after = CUT_AFTER_BYTES
    source = Source("b.tar", url=server.url("b.tar"), sha256=_sha(data))
    path, sleeper = _fetch(source, tmp_path, backoff=0.25)
    assert path.read_bytes() == data
    assert [r["range"] for r in server.state.requests] == [None, f"bytes={CUT_AFTER_BYTES}-"]
    assert sleeper.delays == [0.25]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    data = _payload(2)
    server.state.files["/c.zip"] = data
    (tmp_path / ("c.zip" + PART_SUFFIX)).write_bytes(data[:1234])
    path, _ = _fetch(Source("c.zip", url=server.url("c.zip"), sha256=_sha(data)), tmp_path)
    assert path.read_bytes() == data
    assert server.state.requests == [{"path": "/c.zip", "range": "bytes=1234-"}]


def test_retries_after_503_with_exponential_backoff(server, tmp_path):
    data = _payload(3)
    server.state.files["/d.zip"] = data
    server.state.fail_first = 3
    path, sleeper = _fetch(Source("d.zip", url=server.url("d.zip"), sha256=_sha(data)), tmp_path, backoff=0.5)
    assert path.read_bytes() == data
    assert len(server.state.requests) == 4
    assert sleeper.delays == [0.5, 1.0, 2.0]


def test_gives_up_after_the_last_retry(server, tmp_path):
    server.state.files["/e.zip"] = b"x"
    server.state.fail_first = 100
    with pytest.raises(DownloadError, match=r"after 3 attempt") as info:
        _fetch(Source("e.zip", url=server.url("e.zip")), tmp_path, retries=2)
    assert server.url("e.zip") in str(info.value)
    assert len(server.state.requests) == 3
    assert not (tmp_path / "e.zip").exists()


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="404") as info:
        _fetch(Source("missing.zip", url=server.url("missing.zip"), page="https://example.org/ds"), tmp_path)
    assert not isinstance(info.value, ChecksumError)
    assert "https://example.org/ds" in str(info.value)
    assert len(server.state.requests) == 1


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _payload(4)
    server.state.files["/f.zip"] = data
    server.state.ignore_range = True
    (tmp_path / ("f.zip" + PART_SUFFIX)).write_bytes(b"stale bytes that must not survive")
    path, _ = _fetch(Source("f.zip", url=server.url("f.zip"), sha256=_sha(data)), tmp_path)
    assert path.read_bytes() == data
    assert server.state.requests[0]["range"] is not None  # asked to resume, got a 200


def test_interrupted_download_on_a_server_ignoring_range(server, tmp_path):
    data = _payload(5)
    server.state.files["/g.zip"] = data
    server.state.cut_after = CUT_AFTER_BYTES
    server.state.ignore_range = True
    path, sleeper = _fetch(Source("g.zip", url=server.url("g.zip"), sha256=_sha(data)), tmp_path)
    assert path.read_bytes() == data
    assert [r["range"] for r in server.state.requests] == [None, f"bytes={CUT_AFTER_BYTES}-"]
    assert len(sleeper.delays) == 1


def test_complete_part_answered_416_is_used(server, tmp_path):
    data = _payload(6)
    server.state.files["/h.zip"] = data
    (tmp_path / ("h.zip" + PART_SUFFIX)).write_bytes(data)
    path, _ = _fetch(Source("h.zip", url=server.url("h.zip"), sha256=_sha(data)), tmp_path)
    assert path.read_bytes() == data
    assert server.state.requests == [{"path": "/h.zip", "range": f"bytes={len(data)}-"}]


def test_oversized_part_answered_416_restarts(server, tmp_path):
    data = _payload(7, 1000)
    server.state.files["/i.zip"] = data
    (tmp_path / ("i.zip" + PART_SUFFIX)).write_bytes(b"z" * 5000)
    path, _ = _fetch(Source("i.zip", url=server.url("i.zip"), sha256=_sha(data)), tmp_path)
    assert path.read_bytes() == data
    assert [r["range"] for r in server.state.requests] == ["bytes=5000-", None]


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    data = _payload(8)
    server.state.files["/j.zip"] = data
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        _fetch(Source("j.zip", url=server.url("j.zip"), sha256=wrong), tmp_path)
    message = str(info.value)
    assert wrong in message and _sha(data) in message
    assert "j.zip" in message
    assert not (tmp_path / "j.zip").exists()
    assert not (tmp_path / ("j.zip" + PART_SUFFIX)).exists()
    assert isinstance(info.value, lrdm.errors.DataError)


def test_size_mismatch_deletes_the_download(server, tmp_path):
    data = _payload(9, 1000)
    server.state.files["/k.zip"] = data
    with pytest.raises(ChecksumError, match="1001"):
        _fetch(Source("k.zip", url=server.url("k.zip"), size=1001), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_present_file_is_verified_without_any_request(server, tmp_path):
    data = _payload(10)
    (tmp_path / "l.zip").write_bytes(data)
    source = Source("l.zip", url=server.url("l.zip"), sha256=_sha(data), size=len(data))
    path, _ = _fetch(source, tmp_path)
    assert path == tmp_path / "l.zip"
    assert server.state.requests == []


def test_present_corrupt_file_is_deleted(server, tmp_path):
    data = _payload(11)
    (tmp_path / "m.zip").write_bytes(data[:-1] + b"!")
    with pytest.raises(ChecksumError, match=_sha(data)):
        _fetch(Source("m.zip", url=server.url("m.zip"), sha256=_sha(data)), tmp_path)
    assert not (tmp_path / "m.zip").exists()
    assert server.state.requests == []


def test_manual_source_missing_says_what_and_where(tmp_path):
    page = "https://drive.google.com/drive/folders/EXAMPLE"
    source = Source("Raindrop_train.zip", manual=True, page=page, sha256="a" * 64)
    with pytest.raises(ManualDownloadRequired) as info:
        _fetch(source, tmp_path / "downloads")
    message = str(info.value)
    assert "Raindrop_train.zip" in message
    assert page in message
    assert str((tmp_path / "downloads" / "Raindrop_train.zip").resolve()) in message
    assert "a" * 64 in message


def test_manual_source_placed_by_hand_is_verified_and_used(tmp_path):
    data = _payload(12)
    (tmp_path / "ISTD.zip").write_bytes(data)
    source = Source("ISTD.zip", manual=True, page="https://example.org/istd", sha256=_sha(data), size=len(data))
    path, _ = _fetch(source, tmp_path)
    assert path.read_bytes() == data


def test_unpinned_hash_is_logged_for_pinning(server, tmp_path, caplog):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # a whole archive: an unpinned one must read to its end (issue 11)
        zf.writestr("x.bin", _payload(13))
    data = buffer.getvalue()
    server.state.files["/n.zip"] = data
    with caplog.at_level(logging.WARNING, logger="lrdm.data.download"):
        _fetch(Source("n.zip", url=server.url("n.zip")), tmp_path)
    assert _sha(data) in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filename": "a/b.zip"},
        {"filename": ".."},
        {"filename": "x.zip", "sha256": "not-a-hash"},
        {"filename": "x.zip", "size": -1},
        {"filename": "x.zip", "url": "ftp://example.org/x.zip"},
    ],
)
def test_source_rejects_bad_fields(kwargs):
    with pytest.raises(ValueError):
        Source(**kwargs)


def test_sha256_file_has_one_home():
    assert sha256_file is lrdm.files.sha256_file is lrdm.data.download.sha256_file


def test_downloader_does_not_import_torch():
    code = (
        "import sys, lrdm.data.download, lrdm.data.archives; "
        "print(sorted(m for m in ('torch', 'lrdm.data.paired') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _make_tar(path: Path, members: list[tuple[tarfile.TarInfo, io.BytesIO | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, fileobj in members:
            tf.addfile(info, fileobj)
    return path


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_zip_extraction(tmp_path):
    members = {"train/input/1.png": b"one", "train/target/1.png": b"uno", "README": b"r"}
    archive = _make_zip(tmp_path / "ds.zip", members)
    dest = extract(archive, tmp_path / "out" / "ds")
    assert (dest / "train" / "input" / "1.png").read_bytes() == b"one"
    assert (dest / "train" / "target" / "1.png").read_bytes() == b"uno"
    assert (dest / EXTRACTED_MARKER).read_text().strip() == sha256_file(archive)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ds"]  # no temporary sibling left


def test_tar_gz_extraction_with_internal_links(tmp_path):
    archive = _make_tar(
        tmp_path / "ds.tar.gz",
        [
            _tar_member("./", kind=tarfile.DIRTYPE, mode=0o755),
            _tar_member("data/", kind=tarfile.DIRTYPE, mode=0o755),
            _tar_member("data/a.txt", b"alpha"),
            _tar_member("data/run.sh", b"#!/bin/sh\n", mode=0o4755),
            _tar_member("data/latest", kind=tarfile.SYMTYPE, linkname="a.txt"),
            _tar_member("copy.txt", kind=tarfile.LNKTYPE, linkname="data/a.txt"),
        ],
    )
    dest = extract(archive, tmp_path / "ds")
    assert (dest / "data" / "a.txt").read_bytes() == b"alpha"
    assert (dest / "data" / "latest").is_symlink() and (dest / "data" / "latest").read_bytes() == b"alpha"
    assert (dest / "copy.txt").read_bytes() == b"alpha"
    run_mode = stat.S_IMODE((dest / "data" / "run.sh").stat().st_mode)
    assert run_mode == 0o755  # setuid dropped, executable bit kept


def _unsafe_tar_cases(outside: Path) -> dict[str, list]:
    return {
        "dotdot": [_tar_member("ok.txt", b"ok"), _tar_member("../evil.txt", b"evil")],
        "nested-dotdot": [_tar_member("a/../../evil.txt", b"evil")],
        "absolute": [_tar_member(str(outside / "abs.txt"), b"evil")],
        "symlink-out": [
            _tar_member("link", kind=tarfile.SYMTYPE, linkname="../../outside"),
            _tar_member("link/evil.txt", b"evil"),
        ],
        "symlink-absolute": [_tar_member("link", kind=tarfile.SYMTYPE, linkname=str(outside))],
        "symlink-chain": [
            _tar_member("p/q/", kind=tarfile.DIRTYPE, mode=0o755),
            _tar_member("p/q/up", kind=tarfile.SYMTYPE, linkname="../.."),
            _tar_member("p/q/escape", kind=tarfile.SYMTYPE, linkname="up/../../outside"),
        ],
        "write-through-symlink": [
            _tar_member("inner", kind=tarfile.SYMTYPE, linkname="."),
            _tar_member("inner/x.txt", b"x"),
        ],
        "hardlink-out": [_tar_member("hl", kind=tarfile.LNKTYPE, linkname="../../outside/victim.txt")],
        "fifo": [_tar_member("pipe", kind=tarfile.FIFOTYPE)],
        "device": [_tar_member("dev", kind=tarfile.CHRTYPE)],
    }


@pytest.mark.parametrize(
    ("case", "member"),
    [
        ("dotdot", "../evil.txt"),
        ("nested-dotdot", "a/../../evil.txt"),
        ("absolute", "abs.txt"),
        ("symlink-out", "link"),
        ("symlink-absolute", "link"),
        ("symlink-chain", "p/q/escape"),
        ("write-through-symlink", "inner/x.txt"),
        ("hardlink-out", "hl"),
        ("fifo", "pipe"),
        ("device", "dev"),
    ],
)
def test_unsafe_tar_member_is_refused(tmp_path, case, member):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    archive = _make_tar(tmp_path / f"{case}.tar.gz", _unsafe_tar_cases(outside)[case])
    before = _snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, work / "dest")
    assert member in str(info.value)
    assert _snapshot(tmp_path) == before  # no dest, no temporary folder, nothing outside
    assert (outside / "victim.txt").read_text() == "untouched"


@pytest.mark.parametrize(
    ("name", "unix_mode"),
    [("../evil.txt", 0o100644), ("/abs/evil.txt", 0o100644), ("C:/evil.txt", 0o100644), ("lnk", 0o120777)],
)
def test_unsafe_zip_member_is_refused(tmp_path, name, unix_mode):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"fine")
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = unix_mode << 16
        zf.writestr(info, b"../../../outside" if stat.S_ISLNK(unix_mode) else b"evil")
    work = tmp_path / "w"
    work.mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info_:
        extract(archive, work / "dest")
    assert name in str(info_.value)
    assert _snapshot(tmp_path) == before


def test_second_extract_is_a_noop(tmp_path):
    archive = _make_zip(tmp_path / "ds.zip", {"x.txt": b"x"})
    dest = extract(archive, tmp_path / "ds")
    (dest / "sentinel").write_text("kept")
    marker_mtime = (dest / EXTRACTED_MARKER).stat().st_mtime_ns
    assert extract(archive, tmp_path / "ds") == dest
    assert (dest / "sentinel").read_text() == "kept"
    assert (dest / EXTRACTED_MARKER).stat().st_mtime_ns == marker_mtime


def test_interrupted_extraction_is_redone(tmp_path):
    leftover = tmp_path / ".ds.abc123.partial"
    leftover.mkdir()
    (leftover / "half.txt").write_text("half")
    archive = _make_tar(tmp_path / "ds.tar.gz", [_tar_member("x.txt", b"x")])
    dest = extract(archive, tmp_path / "ds")
    assert (dest / "x.txt").read_bytes() == b"x"
    assert not leftover.exists()


def test_extraction_from_a_different_archive_replaces_the_folder(tmp_path):
    first = _make_zip(tmp_path / "v1.zip", {"old.txt": b"1"})
    second = _make_zip(tmp_path / "v2.zip", {"new.txt": b"2"})
    dest = extract(first, tmp_path / "ds")
    extract(second, dest)
    assert sorted(p.name for p in dest.iterdir()) == [EXTRACTED_MARKER, "new.txt"]
    assert (dest / EXTRACTED_MARKER).read_text().strip() == sha256_file(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "v1.zip", "v2.zip"]


def test_foreign_destination_is_not_overwritten(tmp_path):
    archive = _make_zip(tmp_path / "ds.zip", {"x.txt": b"x"})
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="ds"):
        extract(archive, tmp_path / "ds")
    assert (tmp_path / "ds" / "mine.txt").read_text() == "user data"


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(100))
    with pytest.raises(ValueError, match="junk.bin"):
        extract(junk, tmp_path / "out")


def test_an_archive_on_the_hugging_face_hub_goes_through_its_client_and_cache(mock_hub, tmp_path):
    """GoPro and RealBlur are huggingface.co/datasets/... URLs: hf_hub_download fetches them into the Hugging Face
    cache the official weights use, and the downloads folder links to the cached file; a wrong pin removes the
    link and names both hashes; a lost link is made again from the warm cache without a request."""
    data = os.urandom(50_000)
    mock_hub.state.add("snah/GOPRO_Large", "GOPRO_Large.zip", data, repo_type="dataset")
    url = "https://huggingface.co/datasets/snah/GOPRO_Large/resolve/main/GOPRO_Large.zip"
    wrong = Source("GOPRO_Large.zip", url=url, sha256="0" * 64, size=len(data))
    with pytest.raises(ChecksumError, match=f"got sha256 {_sha(data)}"):
        fetch(wrong, tmp_path / "downloads", progress=False)
    assert not (tmp_path / "downloads" / "GOPRO_Large.zip").exists()
    source = Source("GOPRO_Large.zip", url=url, sha256=_sha(data), size=len(data))
    path = fetch(source, tmp_path / "downloads", progress=False)
    assert path == tmp_path / "downloads" / "GOPRO_Large.zip" and path.read_bytes() == data
    assert path.is_symlink() and str(path.resolve()).startswith(str(Path(mock_hub.cache).resolve()))
    gets = [r["path"] for r in mock_hub.state.downloads()]
    assert gets == ["/datasets/snah/GOPRO_Large/resolve/main/GOPRO_Large.zip"]  # once: the pinned fetch was cached
    path.unlink()  # the link is gone, the cache is warm: no new download
    assert fetch(source, tmp_path / "downloads", progress=False).read_bytes() == data
    assert len(mock_hub.state.downloads()) == 1
