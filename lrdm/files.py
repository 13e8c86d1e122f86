"""Writing files atomically, and hashing them: the one home of both mechanisms.

Every writer of the package goes through :func:`atomic_path`: the content goes to a hidden temporary file
in the destination's folder (``.<name>.<pid>.<uuid>.tmp``), is flushed to disk, and replaces the
destination with ``os.replace``. A reader therefore sees the old file or the new one, never half of one,
and a failed write leaves no temporary file behind. Torch-free: ``torch`` and ``PIL`` are imported only by
the writers that need them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import re
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lrdm.errors import DiskFullError, RunLockedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

HASH_CHUNK_BYTES = 1 << 20
"""Bytes read per chunk when hashing."""
PNG_COMPRESS_LEVEL = 6
"""zlib level of the PNGs written (lossless at any level; 6 is PIL's speed/size balance)."""
UINT8_MAX = 255
RGB_CHANNELS = 3
LOCK_FILE_MODE = 0o644
"""Permissions of a lock file."""
LOCK_PID_BYTES = 32
"""Bytes of a lock file read for the holder's PID."""


TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<uuid>[0-9a-f]{32})\.tmp$")
"""Name of a temporary file of :func:`temporary_sibling`: ``.<name>.<pid>.<uuid>.tmp``."""


def temporary_sibling(path: Path) -> Path:
    """A unique hidden temporary name next to ``path`` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def remove_temporaries(folder: Path) -> tuple[int, int]:
    """Removes the temporary files of :func:`atomic_path` left in ``folder`` (not its subfolders) by writers that
    were killed (``kill -9``, a node lost) before they could clean up: ``-> (files removed, bytes freed)``.

    Only for a folder whose writers all hold one lock that the caller holds now (a run directory): a temporary
    there is then nobody's work in progress, whatever its PID (PIDs are reused, and a requeued job runs elsewhere).
    """
    removed = freed = 0
    if not folder.is_dir():
        return removed, freed
    for entry in folder.iterdir():
        if not TEMPORARY_NAME.match(entry.name) or not entry.is_file():
            continue
        size = entry.stat().st_size
        entry.unlink(missing_ok=True)
        removed, freed = removed + 1, freed + size
    return removed, freed


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The parent folder is created. The temporary file keeps the umask's permissions. A full disk raises
    :class:`DiskFullError` naming ``path``; the destination keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left on device while writing {path}; the partial file was removed and {path} "
                "keeps its previous content (if any). Free some space and run again"
            ) from err
        raise


def write_payload(handle: BinaryIO, payload: bytes | memoryview) -> None:
    """Write ``payload`` to an open binary file (the one place bytes reach the disk; tests make it fail)."""
    handle.write(payload)


def write_bytes(path: str | os.PathLike[str], payload: bytes | memoryview) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        write_payload(handle, payload)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` (without its index) as Parquet (pyarrow) atomically."""
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False, engine="pyarrow")


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically.

    The object is serialised in memory and written by :func:`write_bytes`, so a full disk raises
    :class:`DiskFullError` (``torch.save`` to a file reports it as an unspecific ``RuntimeError``).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


def encode_png(array: np.ndarray, path: str | os.PathLike[str] = "<memory>") -> bytes:
    """PNG bytes of a uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grayscale/bool array (bool as ``{0, 255}``).

    ``path`` only names the destination in the error for an unsupported array.
    """
    import numpy as np
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * UINT8_MAX
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == RGB_CHANNELS)):
        raise ValueError(f"cannot save array of shape {arr.shape} dtype {arr.dtype} as PNG to {path}")
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """Save an image array (see :func:`encode_png`) as PNG atomically; returns the sha256 of its bytes."""
    payload = encode_png(array, path)
    write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_key(text: str) -> int:
    """Process-independent 32-bit integer for a string (Python's ``hash()`` is salted): seeds per name."""
    return zlib.crc32(text.encode("utf-8"))


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], what: str, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the file ``path`` (created; it records the holder's PID) while the block
    runs; ``what`` names the locked resource in the error.

    The lock is released when the block ends or the process dies (even by ``kill -9``). A second holder,
    in this or another process, fails at once with :class:`RunLockedError` naming ``what`` and the holder's PID;
    with ``wait`` it waits for the lock instead (e.g. two jobs extracting the same archive, one after the other).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, LOCK_PID_BYTES, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunLockedError(
                f"{what} is in use by another process (PID {holder}, lock file {path}); wait for it to end or "
                "stop it before starting another"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
