"""Download dataset archives (resumable, retried, checksummed) and extract them safely.

Two public operations serve the real-dataset rules of the pipeline (DESIGN.md §4, §7):

* :func:`fetch` puts a verified archive at ``downloads_dir / source.filename``.  HTTP(S)
  downloads go to ``<filename>.part`` first, resume from it with a ``Range`` request after
  an interruption, are retried with exponential back-off on transient failures, and are
  renamed to the final name (``os.replace``) only after their size and sha256 match the
  :class:`Source`.  A file that fails verification is deleted, never used.  Hosts that
  need a browser (Google Drive) are *manual* sources: the user places the archive by hand
  and :func:`fetch` only verifies it, or explains exactly what to fetch and where to put it.
* :func:`extract` unpacks a zip or tar archive into a temporary sibling folder and renames
  it to ``dest`` once complete, leaving a marker (``dest/.extracted``, holding the
  archive's sha256) so a second call is a no-op and an interrupted one is redone.  Every
  member is checked first: absolute paths, ``..`` components, links resolving outside the
  folder, and device / fifo members raise :class:`UnsafeArchiveError` naming the member;
  nothing is ever written outside ``dest``.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import ssl
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from lrdm.errors import ChecksumError as _DataChecksumError
from lrdm.hashing import sha256_file

__all__ = [
    "EXTRACTED_MARKER",
    "ChecksumError",
    "DownloadError",
    "ManualDownloadRequired",
    "Source",
    "UnsafeArchiveError",
    "extract",
    "fetch",
    "sha256_file",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

#: Suffix of the file a download is written to until it is complete and verified.
PART_SUFFIX = ".part"
#: Bytes read from the network (and copied out of archives) per chunk.
DOWNLOAD_CHUNK_BYTES = 1 << 20
#: Name of the marker written inside an extracted folder; it holds the archive's sha256.
EXTRACTED_MARKER = ".extracted"
#: Suffix of the temporary sibling folder an archive is extracted into.
EXTRACT_TMP_SUFFIX = ".partial"
#: Suffix of the sibling a stale extraction is moved to before it is deleted.
EXTRACT_OLD_SUFFIX = ".stale"
#: Sent with every request; some hosts refuse urllib's default agent.
USER_AGENT = "lrdm-downloader/1.0 (python-urllib)"
#: HTTP statuses worth retrying besides 5xx (request timeout, rate limited).
RETRYABLE_4XX = frozenset({408, 429})
HTTP_OK = 200
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416
HTTP_SERVER_ERROR_MIN = 500
HTTP_SERVER_ERROR_MAX = 599
#: Default permission bits of extracted files when the archive records none.
DEFAULT_FILE_MODE = 0o644
#: Permission bits kept from an archive member (no setuid/setgid/sticky, no group/other write).
KEPT_MODE_BITS = 0o755
#: Permission bits always granted to the owner of an extracted file.
OWNER_RW = 0o600
#: ``ZipInfo.create_system`` value of archives made on Unix (external_attr holds st_mode).
ZIP_UNIX_SYSTEM = 3
ZIP_MAGIC = b"PK\x03\x04"
ZIP_EMPTY_MAGIC = b"PK\x05\x06"
ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class DownloadError(RuntimeError):
    """An archive could not be obtained (network failure, HTTP error, missing manual file)."""


class ChecksumError(DownloadError, _DataChecksumError):
    """A downloaded or hand-placed file has the wrong sha256 or size; the file was deleted.

    Also a :class:`lrdm.errors.ChecksumError` (re-exported by :mod:`lrdm.data`), so code catching checksum problems of
    prepared datasets catches bad downloads too.
    """


class ManualDownloadRequired(DownloadError):
    """A manual-only source (e.g. Google Drive) is missing: the user must place it by hand."""


class UnsafeArchiveError(ValueError):
    """An archive member would escape the extraction folder or is a device / fifo."""


class _TransientError(Exception):
    """A failure worth retrying: connection problem, timeout, 5xx, short read."""


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a dataset archive comes from and how to recognise it.

    Args:
        filename: Archive name under ``resources/downloads/`` (a plain file name).
        url: HTTP(S) address to download from; ``None`` for manual-only sources.
        sha256: Expected hex digest; ``None`` while not known yet, in which case the
            computed digest is logged so it can be pinned.
        size: Expected size in bytes, if known.
        manual: The host needs a browser (Google Drive): the user places the file by hand.
        page: Where a person fetches the file (used for manual sources and error messages).
    """

    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    manual: bool = False
    page: str | None = None

    def __post_init__(self) -> None:
        name = self.filename
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError(f"Source.filename must be a plain file name, got {name!r}")
        if self.sha256 is not None:
            digest = self.sha256.strip().lower()
            if not SHA256_HEX_RE.match(digest):
                raise ValueError(f"Source {name!r}: sha256 must be 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) != self.size or self.size < 0):
            raise ValueError(f"Source {name!r}: size must be a non-negative integer, got {self.size!r}")
        if self.url is not None and not self.url.lower().startswith(("http://", "https://")):
            raise ValueError(f"Source {name!r}: url must be http(s), got {self.url!r}")

    @property
    def is_manual(self) -> bool:
        """True when the file cannot be downloaded by this module."""
        return self.manual or self.url is None

    def describe_expected(self) -> str:
        """Human-readable expected checksum and size, for messages."""
        parts = [f"sha256 {self.sha256}" if self.sha256 else "sha256 not pinned yet"]
        if self.size is not None:
            parts.append(f"{self.size} bytes")
        return ", ".join(parts)


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def _verify(path: Path, source: Source) -> str:
    """Check ``path`` against the size and sha256 of ``source``; return its sha256.

    On a mismatch the file is deleted and :class:`ChecksumError` is raised naming the
    path and both hashes.  An unpinned hash is logged so that it can be pinned.
    """
    got_size = path.stat().st_size
    digest = sha256_file(path)
    size_bad = source.size is not None and got_size != source.size
    hash_bad = source.sha256 is not None and digest != source.sha256
    if size_bad or hash_bad:
        path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{path} failed verification and was deleted: expected sha256 "
            f"{source.sha256 or '(not pinned)'}, got sha256 {digest}; expected size "
            f"{source.size if source.size is not None else '(unknown)'} bytes, got {got_size} bytes"
            + (f" (source: {source.url or source.page})" if (source.url or source.page) else "")
        )
    if source.sha256 is None:
        logger.warning(
            "%s has no pinned sha256: computed sha256=%s size=%d bytes; pin these in the dataset registry",
            path,
            digest,
            got_size,
        )
    return digest


def _manual_message(source: Source, dest: Path) -> str:
    where = source.page or source.url or "the dataset's official page (no address is recorded)"
    reason = "its host needs a browser" if source.manual else "no download URL is known"
    return (
        f"{source.filename} must be downloaded by hand ({reason}). Fetch {source.filename} from {where} "
        f"and place it at {dest.resolve()} (expected {source.describe_expected()}), then run again."
    )


# --------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------


def fetch(
    source: Source,
    downloads_dir: str | os.PathLike[str],
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Return the verified archive ``downloads_dir / source.filename``, downloading it if needed.

    Args:
        source: What to fetch and how to verify it.
        downloads_dir: Folder holding the archives (created if missing).
        retries: Retries after the first attempt on transient failures (connection errors,
            timeouts, 5xx / 408 / 429, short reads).
        backoff: Seconds before the first retry; retry ``k`` (0-based) waits ``backoff * 2**k``.
        timeout: Socket timeout in seconds for connecting and for each read.
        progress: Show a tqdm progress bar.
        sleep: Called with the back-off delay (injectable for tests).

    Raises:
        ChecksumError: The file (present or downloaded) has the wrong sha256 / size; it was deleted.
        ManualDownloadRequired: A manual source is missing; the message says what to fetch,
            from where and the full path to place it at.
        DownloadError: The download failed permanently (HTTP 4xx) or after all retries.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    downloads_dir = Path(downloads_dir)
    dest = downloads_dir / source.filename
    if dest.exists():
        _verify(dest, source)
        return dest
    if source.is_manual:
        raise ManualDownloadRequired(_manual_message(source, dest))
    assert source.url is not None  # for type checkers: is_manual covers url None
    downloads_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)

    attempt = 0
    while True:
        try:
            _download_to_part(source, part, timeout=timeout, progress=progress)
            break
        except _TransientError as exc:
            if attempt >= retries:
                raise DownloadError(
                    f"could not download {source.url} to {part} after {attempt + 1} attempt(s): {exc}. "
                    f"Bytes received so far are kept in {part} and the next run resumes from them."
                    + (
                        f" You may also fetch it from {source.page} and place it at {dest.resolve()}."
                        if source.page
                        else ""
                    )
                ) from exc
            delay = backoff * 2**attempt
            logger.warning(
                "download of %s failed (%s); retry %d/%d in %.1f s", source.url, exc, attempt + 1, retries, delay
            )
            sleep(delay)
            attempt += 1

    _verify(part, source)  # deletes the .part on mismatch
    os.replace(part, dest)
    return dest


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``Content-Range: bytes a-b/N`` -> ``(a, N)``; unknown parts are ``None``."""
    if not value:
        return None, None
    match = CONTENT_RANGE_RE.match(value)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _is_transient_http(code: int) -> bool:
    return HTTP_SERVER_ERROR_MIN <= code <= HTTP_SERVER_ERROR_MAX or code in RETRYABLE_4XX


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Send the GET (with ``Range`` when resuming); classify failures as transient or not."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked in Source
    except urllib.error.HTTPError:
        raise  # handled by the caller, which needs the status and headers
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"TLS certificate of {url} could not be verified: {exc.reason}") from exc
        raise _TransientError(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _TransientError(f"connection to {url} failed: {exc!r}") from exc


def _download_to_part(source: Source, part: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: append the missing bytes of ``source.url`` to ``part``.

    Returns when the server has sent the whole body (verification is the caller's job).
    Raises :class:`_TransientError` for failures worth retrying (``part`` keeps what was
    received) and :class:`DownloadError` for permanent ones.
    """
    url = source.url
    assert url is not None
    offset = part.stat().st_size if part.exists() else 0
    if source.size is not None:
        if offset == source.size:
            return  # already complete: verification decides whether it is valid
        if offset > source.size:
            logger.warning("%s is larger than the expected %d bytes; restarting the download", part, source.size)
            part.unlink()
            offset = 0

    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        try:
            code = exc.code
            if code == HTTP_RANGE_NOT_SATISFIABLE and offset > 0:
                _, total = _parse_content_range(exc.headers.get("Content-Range"))
                if total is None:
                    total = source.size
                if total is not None and offset == total:
                    return  # the .part already holds every byte
                logger.warning("server refused to resume %s at byte %d; restarting from zero", url, offset)
                part.unlink(missing_ok=True)
                raise _TransientError(f"HTTP 416 for a resume of {url} at byte {offset}; restarting") from exc
            if _is_transient_http(code):
                raise _TransientError(f"HTTP {code} {exc.reason} from {url}") from exc
            hint = f" If the host needs a browser, fetch it from {source.page}." if source.page else ""
            raise DownloadError(f"HTTP {code} {exc.reason} for {url} (downloading {source.filename}).{hint}") from exc
        finally:
            exc.close()

    with response:
        status = response.status
        if offset > 0 and status == HTTP_PARTIAL_CONTENT:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start is not None and start != offset:
                part.unlink(missing_ok=True)
                raise _TransientError(f"{url} resumed at byte {start} instead of {offset}; restarting from zero")
            mode = "ab"
        else:
            if offset > 0:
                logger.info("%s ignored the Range request (HTTP %d); restarting from zero", url, status)
            offset, total, mode = 0, None, "wb"
        length_header = response.headers.get("Content-Length")
        expected_body = int(length_header) if length_header and length_header.isdigit() else None
        if total is None and expected_body is not None:
            total = offset + expected_body
        if total is None:
            total = source.size

        received = 0
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=source.filename,
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(DOWNLOAD_CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise _TransientError(
                        f"connection to {url} broke after {offset + received} bytes: {exc!r}"
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if expected_body is not None and received < expected_body:
            raise _TransientError(
                f"short read from {url}: got {received} of {expected_body} bytes (now {offset + received} in {part})"
            )


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One archive member, format-independent."""

    name: str  # as written in the archive (for messages)
    kind: str  # "dir" | "file" | "symlink" | "hardlink"
    linkname: str = ""
    mode: int = 0
    mtime: float | None = None
    open: Callable[[], IO[bytes]] | None = None


def _unsafe(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: refusing member {member!r}: {why}")


def _member_parts(archive: Path, member: str, raw: str, what: str = "path") -> tuple[str, ...]:
    """Validate an archive-relative path and return its components (empty for the root)."""
    if "\0" in raw:
        raise _unsafe(archive, member, f"{what} contains a NUL byte")
    text = raw.replace("\\", "/")
    if text.startswith("/") or WINDOWS_DRIVE_RE.match(text):
        raise _unsafe(archive, member, f"absolute {what} {raw!r}")
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _unsafe(archive, member, f"{what} {raw!r} contains '..' and could escape the destination")
    return parts


def _symlink_stays_inside(parent: tuple[str, ...], target: str) -> bool:
    """Lexically resolve a relative symlink target from its folder; False if it climbs out."""
    stack = list(parent)
    for part in target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
        else:
            stack.append(part)
    return True


def _tar_entries(archive: Path, tf: tarfile.TarFile) -> Iterator[_Entry]:
    for member in tf:
        if member.isdir():
            yield _Entry(member.name, "dir", mode=member.mode)
        elif member.isreg():
            yield _Entry(
                member.name,
                "file",
                mode=member.mode,
                mtime=float(member.mtime),
                open=lambda m=member: _tar_open(tf, m),
            )
        elif member.issym():
            yield _Entry(member.name, "symlink", linkname=member.linkname)
        elif member.islnk():
            yield _Entry(member.name, "hardlink", linkname=member.linkname)
        elif member.ischr() or member.isblk():
            raise _unsafe(archive, member.name, "device file")
        elif member.isfifo():
            raise _unsafe(archive, member.name, "fifo")
        else:
            raise _unsafe(archive, member.name, f"unsupported tar member type {member.type!r}")


def _tar_open(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    handle = tf.extractfile(member)
    if handle is None:  # pragma: no cover - isreg() members always have data
        raise DownloadError(f"{tf.name}: cannot read member {member.name!r}")
    return handle


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        unix_mode = info.external_attr >> 16 if info.create_system == ZIP_UNIX_SYSTEM else 0
        try:
            mtime: float | None = time.mktime((*info.date_time, 0, 0, -1))
        except (OverflowError, ValueError):
            mtime = None
        if info.is_dir() or (unix_mode and stat.S_ISDIR(unix_mode)):
            yield _Entry(info.filename, "dir")
        elif unix_mode and stat.S_ISLNK(unix_mode):
            target = zf.read(info).decode("utf-8")
            yield _Entry(info.filename, "symlink", linkname=target)
        elif unix_mode and (stat.S_ISCHR(unix_mode) or stat.S_ISBLK(unix_mode)):
            raise _unsafe(archive, info.filename, "device file")
        elif unix_mode and (stat.S_ISFIFO(unix_mode) or stat.S_ISSOCK(unix_mode)):
            raise _unsafe(archive, info.filename, "fifo or socket")
        else:
            yield _Entry(
                info.filename, "file", mode=stat.S_IMODE(unix_mode), mtime=mtime, open=lambda i=info: zf.open(i)
            )


def _write_entries(archive: Path, entries: Iterator[_Entry], root: Path) -> None:
    """Extract ``entries`` under ``root`` with every member checked before it is written.

    Symbolic links are created last, so no file or hard link is ever written through one;
    each link is then resolved for real and must stay inside ``root``.
    """
    dirs: set[tuple[str, ...]] = set()  # explicit folders and every ancestor of a member
    files: set[tuple[str, ...]] = set()  # regular files and hard links
    symlinks: dict[tuple[str, ...], tuple[str, str]] = {}  # parts -> (member name, target)

    for entry in entries:
        parts = _member_parts(archive, entry.name, entry.name)
        if not parts:
            if entry.kind == "dir":
                continue  # "./" - the destination itself
            raise _unsafe(archive, entry.name, "a non-folder member names the destination folder itself")
        for i in range(1, len(parts)):
            if parts[:i] in symlinks:
                raise _unsafe(archive, entry.name, f"it lies under the symbolic link {'/'.join(parts[:i])!r}")
            if parts[:i] in files:
                raise _unsafe(archive, entry.name, f"it lies under the file {'/'.join(parts[:i])!r}")
        if parts in symlinks:
            raise _unsafe(archive, entry.name, "it has the same name as a symbolic link in the archive")
        target = root.joinpath(*parts)

        if entry.kind == "dir":
            if parts in files:
                raise _unsafe(archive, entry.name, "it is both a file and a folder")
            target.mkdir(parents=True, exist_ok=True)
        elif entry.kind == "symlink":
            if parts in files or parts in dirs:
                raise _unsafe(archive, entry.name, "a symbolic link with the same name as a file or folder")
            link = entry.linkname
            if not link or link.startswith("/") or "\0" in link or WINDOWS_DRIVE_RE.match(link):
                raise _unsafe(archive, entry.name, f"symbolic link to absolute or empty target {link!r}")
            if not _symlink_stays_inside(parts[:-1], link):
                raise _unsafe(archive, entry.name, f"symbolic link target {link!r} is outside the destination")
            symlinks[parts] = (entry.name, link)
        else:  # "file" or "hardlink"
            if parts in dirs:
                raise _unsafe(archive, entry.name, "it is both a file and a folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(target):
                os.unlink(target)  # a later copy of the same member (tar append); never follows links
            if entry.kind == "hardlink":
                link_parts = _member_parts(archive, entry.name, entry.linkname, "hard link target")
                if link_parts not in files:
                    raise _unsafe(
                        archive,
                        entry.name,
                        f"hard link target {entry.linkname!r} is not a regular file extracted before it",
                    )
                os.link(root.joinpath(*link_parts), target, follow_symlinks=False)
            else:
                _write_file(entry, target)
            files.add(parts)
        dirs.update(parts[:i] for i in range(1, len(parts)))
        if entry.kind == "dir":
            dirs.add(parts)

    real_root = os.path.realpath(root)
    for parts, (_name, link) in symlinks.items():
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, path)
    for parts, (name, link) in symlinks.items():  # catches chains of links that climb out together
        resolved = os.path.realpath(root.joinpath(*parts))
        if os.path.commonpath([real_root, resolved]) != real_root:
            raise _unsafe(archive, name, f"symbolic link {link!r} resolves outside the destination")


def _write_file(entry: _Entry, target: Path) -> None:
    assert entry.open is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(target, flags, OWNER_RW)
    with os.fdopen(fd, "wb") as out, entry.open() as src:
        shutil.copyfileobj(src, out, DOWNLOAD_CHUNK_BYTES)
    mode = (entry.mode & KEPT_MODE_BITS) | OWNER_RW if entry.mode else DEFAULT_FILE_MODE
    os.chmod(target, mode)
    if entry.mtime is not None:
        os.utime(target, (entry.mtime, entry.mtime))


def _archive_kind(archive: Path) -> str:
    """``"zip"`` or ``"tar"``, from the name first and the content otherwise."""
    name = archive.name.lower()
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    with open(archive, "rb") as fh:
        head = fh.read(len(ZIP_MAGIC))
    if head in (ZIP_MAGIC, ZIP_EMPTY_MAGIC):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"{archive}: not a zip or tar archive (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz)")


def _remove_tree(path: Path) -> None:
    """Delete a folder (never following links) or a stray file."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip or tar archive into ``dest`` safely and atomically; return ``dest``.

    The archive is unpacked into a temporary sibling of ``dest`` and renamed to ``dest``
    when complete, with a marker file ``dest/.extracted`` holding the archive's sha256.
    A second call with the same archive is a no-op; leftovers of an interrupted call are
    removed and the extraction is redone; a folder extracted from a different archive
    is replaced.  Concurrent extractions into the same ``dest`` are not supported.

    Raises:
        UnsafeArchiveError: A member has an absolute path or a ``..`` component, is a
            link whose target resolves outside ``dest``, or is a device / fifo.  Nothing
            is written outside the temporary folder, which is deleted.
        FileExistsError: ``dest`` exists, is not empty and was not made by :func:`extract`.
        ValueError: The file is neither a zip nor a tar archive.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive to extract not found: {archive}")
    digest = sha256_file(archive)
    marker = dest / EXTRACTED_MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest:
        return dest
    if dest.exists() and not marker.is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(
            f"{dest} exists but was not produced by extract() (no {EXTRACTED_MARKER} marker); "
            f"move or delete it to extract {archive} there"
        )

    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f".{dest.name}.*{EXTRACT_TMP_SUFFIX}"):
        logger.info("removing the leftover of an interrupted extraction: %s", leftover)
        _remove_tree(leftover)
    for leftover in parent.glob(f".{dest.name}.*{EXTRACT_OLD_SUFFIX}"):
        _remove_tree(leftover)

    kind = _archive_kind(archive)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{dest.name}.", suffix=EXTRACT_TMP_SUFFIX))
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                _write_entries(archive, _zip_entries(archive, zf), tmp)
        else:
            with tarfile.open(archive, "r:*") as tf:
                _write_entries(archive, _tar_entries(archive, tf), tmp)
        (tmp / EXTRACTED_MARKER).write_text(digest + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{dest.name}.", suffix=EXTRACT_OLD_SUFFIX))
            os.replace(dest, old / "previous")
            os.replace(tmp, dest)
            _remove_tree(old)
        else:
            os.replace(tmp, dest)
    except BaseException:
        if tmp.exists():
            _remove_tree(tmp)
        raise
    return dest
