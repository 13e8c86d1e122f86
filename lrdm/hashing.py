"""File checksums (light: no torch import, so the downloader can use them)."""

from __future__ import annotations

import hashlib
import os

HASH_CHUNK_BYTES = 1 << 20
"""Bytes read per chunk when hashing."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
