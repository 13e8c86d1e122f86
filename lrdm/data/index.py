"""The Parquet image index: one row per pair, relative paths and sha256 per file.

Every dataset (synthetic, registry or your own folders) is written as ``index.parquet`` with the
columns :data:`INDEX_COLUMNS`; :func:`read_index` validates it and resolves its paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from lrdm.errors import ChecksumError, IndexSchemaError
from lrdm.files import sha256_file

#: Generation parameters and the train/test photo split, written next to the index.
MANIFEST_FILENAME = "manifest.json"
#: Columns written by :func:`make_synthetic_dataset`, in order.
INDEX_COLUMNS: tuple[str, ...] = (
    "image_id",
    "split",
    "input",
    "target",
    "mask",
    "source",
    "task",
    "height",
    "width",
    "input_sha256",
    "target_sha256",
    "mask_sha256",
)
#: Columns an index must have to be readable; the other INDEX_COLUMNS are optional and
#: filled with nulls by :func:`read_index` when absent (e.g. hand-written indexes of
#: real benchmark folders).
REQUIRED_INDEX_COLUMNS: tuple[str, ...] = ("image_id", "split", "input", "target")
#: Path columns (relative in the file, absolute after :func:`read_index`) and the
#: checksum column belonging to each.
PATH_COLUMNS: tuple[str, ...] = ("input", "target", "mask")
SHA_COLUMN = {col: f"{col}_sha256" for col in PATH_COLUMNS}



def resolve_paths(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    df = df.copy()
    for col in PATH_COLUMNS:
        if col in df.columns:
            df[col] = [None if is_null(p) else str(p if Path(p).is_absolute() else (root / p)) for p in df[col]]
    return df


def is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def read_index(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate an ``index.parquet`` (or ``.csv``) file.

    Args:
        path: Index file.  Relative paths inside it are relative to its folder.

    Returns:
        DataFrame with at least :data:`INDEX_COLUMNS` (optional ones absent from the file
        are filled with nulls) and absolute ``input`` / ``target`` / ``mask`` paths.

    Raises:
        FileNotFoundError: The index does not exist.
        IndexSchemaError: Required columns are missing, image ids repeat or a required
            path is null; the message names the index file and the offending column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file not found: {path}")
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise IndexSchemaError(f"cannot read index file {path}: {exc}") from exc
    missing = [col for col in REQUIRED_INDEX_COLUMNS if col not in df.columns]
    if missing:
        raise IndexSchemaError(f"index file {path} is missing required column(s) {missing}")
    for col in REQUIRED_INDEX_COLUMNS:
        if df[col].isna().any():
            raise IndexSchemaError(f"index file {path}: column {col!r} has null entries")
    dup = df["image_id"][df["image_id"].duplicated()].tolist()
    if dup:
        raise IndexSchemaError(f"index file {path}: duplicated image_id values {dup[:5]}")
    for col in INDEX_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = resolve_paths(df, path.parent.resolve())
    df.attrs["index_path"] = str(path.resolve())
    return df


_VERIFIED: set[tuple[str, str]] = set()
"""``(path, sha256)`` pairs this process has hashed and found equal: each file is hashed once per process."""


def sha256_mismatch(file: str | os.PathLike[str], expected: str) -> str | None:
    """None when ``file`` has sha256 ``expected``, else a description naming the file and both hashes."""
    actual = sha256_file(file)
    if actual == expected:
        return None
    return f"{file} (the index records sha256 {expected}, the file has {actual})"


def verify_file(file: str | os.PathLike[str], expected: Any, index: str = "the index") -> bool:
    """Checks ``file`` against the sha256 ``expected`` from ``index`` the first time this process reads it.

    Returns True when it was hashed now, False when ``expected`` is null or it was verified before.

    Raises:
        ChecksumError: The file differs (swapped, converted or damaged since the index was written); the
            message names the file, both hashes and the index.
    """
    if is_null(expected):
        return False
    key = (str(file), str(expected))
    if key in _VERIFIED:
        return False
    problem = sha256_mismatch(file, str(expected))
    if problem is not None:
        raise ChecksumError(
            f"image file changed since {index} was written: {problem}; restore the file or rebuild the dataset"
        )
    _VERIFIED.add(key)
    return True


def verify_index(df: pd.DataFrame, columns: Iterable[str] = PATH_COLUMNS) -> int:
    """Check every file listed in an index (as returned by :func:`read_index`).

    Files must exist; where a ``{col}_sha256`` entry is present it must match the file.

    Args:
        df: Index with absolute paths.
        columns: Path columns to check.

    Returns:
        Number of checksums verified.

    Raises:
        FileNotFoundError: A listed file is missing (names the file).
        ChecksumError: One or more files differ from their recorded sha256 (names them).
    """
    n_checked = 0
    bad: list[str] = []
    for col in columns:
        if col not in df.columns:
            continue
        sha_col = SHA_COLUMN.get(col)
        shas = df[sha_col] if sha_col in df.columns else [None] * len(df)
        for file, expected in zip(df[col], shas):
            if is_null(file):
                continue
            if not Path(file).is_file():
                raise FileNotFoundError(f"file listed in index column {col!r} not found: {file}")
            if is_null(expected):
                continue
            n_checked += 1
            if (problem := sha256_mismatch(file, expected)) is not None:
                bad.append(problem)
    if bad:
        raise ChecksumError(f"{len(bad)} file(s) fail the sha256 check: " + "; ".join(bad))
    return n_checked


# --------------------------------------------------------------------------------------
# Model-space conversion
# --------------------------------------------------------------------------------------
