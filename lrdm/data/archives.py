"""Extracting dataset archives safely and atomically.

:func:`extract` unpacks a zip or tar archive into a temporary sibling folder and renames it to ``dest`` once
complete, leaving a marker (``dest/.extracted``, holding the archive's sha256) so a second call is a no-op
and an interrupted one is redone. Every member is checked first: absolute paths, ``..`` components, links
resolving outside the folder, and device / fifo members raise :class:`UnsafeArchiveError` naming the
member; nothing is ever written outside ``dest``.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lrdm.errors import CorruptArchiveError, UnsafeArchiveError
from lrdm.files import sha256_file

logger = logging.getLogger(__name__)

#: Bytes copied out of an archive per chunk.
COPY_CHUNK_BYTES = 1 << 20
#: Name of the marker written inside an extracted folder; it holds the archive's sha256.
EXTRACTED_MARKER = ".extracted"
#: Suffix of the temporary sibling folder an archive is extracted into.
EXTRACT_TMP_SUFFIX = ".partial"
#: Suffix of the sibling a stale extraction is moved to before it is deleted.
EXTRACT_OLD_SUFFIX = ".stale"
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
ARCHIVE_SUFFIXES = TAR_SUFFIXES + ZIP_SUFFIXES
"""File names that :func:`extract` unpacks; any other file is used as it is."""
WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")
ARCHIVE_READ_ERRORS = (EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
"""What reading a truncated or damaged archive raises (a bare ``EOFError`` or ``BadZipFile`` names no file)."""


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
        raise UnsafeArchiveError(f"{tf.name}: cannot read member {member.name!r}")
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
        shutil.copyfileobj(src, out, COPY_CHUNK_BYTES)
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


def _corrupt(archive: Path, err: BaseException) -> CorruptArchiveError:
    return CorruptArchiveError(f"{archive} is truncated or corrupt ({type(err).__name__}: {err})")


def check_archive(archive: str | os.PathLike[str]) -> None:
    """Reads a zip or tar archive to its end (every member's data; a zip's CRCs) without writing anything.

    Raises:
        CorruptArchiveError: The archive is truncated or damaged (names it).
        ValueError: The file is neither a zip nor a tar archive.
    """
    archive = Path(archive)
    try:
        if _archive_kind(archive) == "zip":
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
            return
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                handle = tf.extractfile(member) if member.isfile() else None
                while handle is not None and handle.read(COPY_CHUNK_BYTES):
                    pass
    except ARCHIVE_READ_ERRORS as err:
        raise _corrupt(archive, err) from None


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
        CorruptArchiveError: The archive is truncated or damaged (names it); nothing is kept.
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
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    _write_entries(archive, _zip_entries(archive, zf), tmp)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    _write_entries(archive, _tar_entries(archive, tf), tmp)
        except ARCHIVE_READ_ERRORS as err:
            raise _corrupt(archive, err) from None
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


def archive_stem(filename: str) -> str | None:
    """Name without its archive suffix, or None when ``filename`` is not an archive."""
    low = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None
