"""Downloading dataset archives: resumable, retried, verified against the registry's size and sha256.

:func:`fetch` puts a verified archive at ``downloads_dir / source.filename``.  An archive hosted on the
Hugging Face Hub (``https://huggingface.co/datasets/<owner>/<name>/resolve/<revision>/<file>``) is fetched by
:func:`lrdm.hub.hub_download` into the Hugging Face cache, the one the authors' weights use (its resume, its
``HF_HUB_OFFLINE``, its token), and ``downloads_dir / source.filename`` becomes a link to it.  Other HTTP(S)
downloads go to ``<filename>.part`` first, resume from it with a ``Range`` request after
an interruption, are retried with exponential back-off on transient failures, and are
renamed to the final name (``os.replace``) only after their size and sha256 match the
:class:`Source`.  A file that fails verification is deleted, never used.  Hosts that
need a browser (Google Drive) are *manual* sources: the user places the archive by hand
and :func:`fetch` only verifies it, or explains exactly what to fetch and where to put it.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lrdm.data.archives import archive_stem, check_archive
from lrdm.errors import ChecksumError, CorruptArchiveError, DownloadError, ManualDownloadRequired
from lrdm.files import sha256_file
from lrdm.hub import HubFile, hub_download, hub_file_from_url

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

#: Suffix of the file a download is written to until it is complete and verified.
PART_SUFFIX = ".part"
#: Bytes read from the network per chunk.
DOWNLOAD_CHUNK_BYTES = 1 << 20
#: Sent with every request; some hosts refuse urllib's default agent.
USER_AGENT = "lrdm-downloader/1.0 (python-urllib)"
#: HTTP statuses worth retrying besides 5xx (request timeout, rate limited).
RETRYABLE_4XX = frozenset({408, 429})
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416
HTTP_SERVER_ERROR_MIN = 500
HTTP_SERVER_ERROR_MAX = 599
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


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
    return manual_file_message(source.filename, reason, where, dest, source.describe_expected())


def manual_file_message(filename: str, reason: str, where: str, dest: Path, expected: str) -> str:
    """What a missing file placed by hand raises with (:class:`ManualDownloadRequired`): what to fetch, why by
    hand, from where, the full path to place it at and what is expected of it."""
    return (
        f"{filename} must be downloaded by hand ({reason}). Fetch {filename} from {where} "
        f"and place it at {Path(dest).resolve()} (expected {expected}), then run again."
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
        _check_unpinned_archive(dest, source)
        return dest
    if source.is_manual:
        raise ManualDownloadRequired(_manual_message(source, dest))
    assert source.url is not None  # for type checkers: is_manual covers url None
    downloads_dir.mkdir(parents=True, exist_ok=True)
    hub_file = hub_file_from_url(source.url)
    if hub_file is not None:
        return _fetch_from_hub(source, hub_file, dest)
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
    _check_unpinned_archive(dest, source)
    return dest


def _fetch_from_hub(source: Source, file: HubFile, dest: Path) -> Path:
    """``dest`` as a link to ``file`` in the Hugging Face cache (downloaded there first if needed), verified
    against ``source``'s size and sha256 (a mismatch removes the link, not the cached file)."""
    cached = hub_download(file).path
    if dest.is_symlink():  # a link whose cached file is gone
        dest.unlink()
    link = dest.with_name(dest.name + PART_SUFFIX)
    link.unlink(missing_ok=True)
    link.symlink_to(cached)
    _verify(link, source)
    os.replace(link, dest)
    _check_unpinned_archive(dest, source)
    return dest


def _check_unpinned_archive(path: Path, source: Source) -> None:
    """Without a pinned sha256, an archive must at least read to its end (:func:`check_archive`): a truncated
    or damaged one is deleted and :class:`DownloadError` says whether to download again or fetch it by hand."""
    if source.sha256 is not None or archive_stem(source.filename) is None:
        return
    try:
        check_archive(path)
    except CorruptArchiveError as err:
        path.unlink(missing_ok=True)
        remedy = (
            _manual_message(source, path)
            if source.is_manual
            else f"run again to download it anew from {source.url}"
            + (f", or fetch it by hand from {source.page} and place it at {path.resolve()}" if source.page else "")
        )
        raise DownloadError(f"{err}; it has no pinned sha256 and was deleted: {remedy}") from None


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
