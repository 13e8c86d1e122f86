"""Preparing a registry dataset: fetch its sources, extract them, pair the images, write the index.

On-disk layout (``resources`` is the workflow's resource folder)::

    resources/downloads/<archive>                 # fetched (or placed by hand) and verified
    resources/raw/<raw_dir>/<archive stem>/...    # each archive extracted into its own folder
    resources/data/<name>/index.parquet           # lrdm.data index, paths relative to its folder
    resources/data/<name>/manifest.json           # counts, warnings, archive checksums

``raw_dir`` is the dataset name except for RealBlur-J and RealBlur-R, which share one archive
and therefore one extracted tree (``raw/realblur``).

:func:`prepare` writes the same ``index.parquet`` as :func:`lrdm.data.synthetic.make_synthetic_dataset`,
so every rule downstream of the data is dataset-agnostic, and records the sha256 of every archive it
used in ``manifest.json`` so that the registry's checksums can be pinned.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError

from lrdm.data.archives import EXTRACTED_MARKER, archive_stem, extract
from lrdm.data.counts import check_pair_counts
from lrdm.data.download import fetch
from lrdm.data.folders import pair_folders
from lrdm.data.index import INDEX_COLUMNS, MANIFEST_FILENAME
from lrdm.data.layouts import MAX_LISTED
from lrdm.data.registry import DatasetEntry, get_entry
from lrdm.errors import ConfigError, DataError, ManualDownloadRequired
from lrdm.files import exclusive_lock, sha256_file, write_parquet, write_text
from lrdm.paths import INDEX_FILE

#: Archive types handed to :func:`lrdm.data.download.extract`; other files are linked into raw/.
#: Folder names never searched (archive junk).


class DatasetWarning(UserWarning):
    """Something about a prepared dataset differs from what the registry expects."""


def _place(file: Path, raw: Path) -> str:
    """Extract an archive into ``raw/<stem>/``, or hard-link (else copy) a plain file into ``raw``.

    Returns the file's sha256 (for archives read from the marker :func:`extract` leaves, so a
    large archive is not hashed once more).
    """
    stem = archive_stem(file.name)
    if stem is not None:
        dest = Path(extract(file, raw / stem))
        marker = dest / EXTRACTED_MARKER
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else sha256_file(file)
    raw.mkdir(parents=True, exist_ok=True)
    dest = raw / file.name
    if dest.exists() and os.path.samefile(dest, file):
        return sha256_file(dest)
    fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{file.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(file, tmp)
        except OSError:
            shutil.copyfile(file, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(dest)


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header only."""
    with Image.open(path) as im:
        return im.size


def _check_pairs(df: pd.DataFrame, name: str) -> list[tuple[int, int]]:
    """Existence and header sizes of every file; returns ``(height, width)`` per row.

    Raises:
        DataError: Missing / unreadable files or input/target/mask sizes that differ (all
            offending files named, up to :data:`MAX_LISTED`).
    """
    problems: list[str] = []
    sizes: list[tuple[int, int]] = []
    for row in df.itertuples(index=False):
        found: dict[str, tuple[int, int]] = {}
        for col in ("input", "target", "mask"):
            value = getattr(row, col)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            path = Path(value)
            if not path.is_file():
                problems.append(f"{row.image_id}: {col} file not found: {path}")
                continue
            try:
                found[col] = _image_size(path)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                problems.append(f"{row.image_id}: cannot read {col} {path}: {exc}")
        if "input" in found and len(set(found.values())) > 1:
            problems.append(
                f"{row.image_id}: size mismatch: "
                + ", ".join(f"{c} {getattr(row, c)} is {w}x{h}" for c, (w, h) in found.items())
            )
        w, h = found.get("input", (0, 0))
        sizes.append((h, w))
    if problems:
        shown = "; ".join(problems[:MAX_LISTED])
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise DataError(f"{name}: {len(problems)} problem(s) with the image pairs: {shown}{more}")
    return sizes


def _relpath(path: str, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()


def pairs_index(parsed: pd.DataFrame, name: str, task: str, index_dir: Path) -> pd.DataFrame:
    """The index frame (:data:`INDEX_COLUMNS`) of parsed pairs (``image_id, split, input, target`` and optional
    ``mask``, ``source``; absolute paths): files checked (:func:`_check_pairs`), sha256 of every file, paths
    relative to ``index_dir``, sorted by split and id.

    Raises:
        DataError: Repeated image ids, missing or unreadable files, or sizes that differ (names the files).
    """
    df = parsed.copy()
    if "mask" not in df.columns:
        df["mask"] = None
    df["mask"] = df["mask"].astype(object).where(df["mask"].notna(), None)
    dup = df["image_id"][df["image_id"].duplicated()].tolist()
    if dup:
        raise DataError(f"{name}: duplicated image ids from the layout parser: {dup[:MAX_LISTED]}")
    sizes = _check_pairs(df, name)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(str),
            "split": df["split"].astype(str),
            "input": [_relpath(p, index_dir) for p in df["input"]],
            "target": [_relpath(p, index_dir) for p in df["target"]],
            "mask": [None if m is None else _relpath(m, index_dir) for m in df["mask"]],
            "source": df["source"].fillna(name).astype(str) if "source" in df.columns else name,
            "task": task,
            "height": [h for h, _ in sizes],
            "width": [w for _, w in sizes],
            "input_sha256": [sha256_file(p) for p in df["input"]],
            "target_sha256": [sha256_file(p) for p in df["target"]],
            "mask_sha256": [None if m is None else sha256_file(m) for m in df["mask"]],
        },
        columns=list(INDEX_COLUMNS),
    )
    out = out.astype({"height": "int64", "width": "int64"})
    for col in ("mask", "mask_sha256"):
        out[col] = out[col].astype("string")
    out = out.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    return out


def build_index(entry: DatasetEntry, raw: Path, index_dir: Path) -> pd.DataFrame:
    """Parse ``raw`` with ``entry.parse``, verify the pairs and build the index frame.

    Paths in the result are relative to ``index_dir`` (where the index will be written).
    ``attrs``: ``counts`` (pairs per split), ``expected_counts``, ``warnings`` (parser
    warnings and count mismatches; each is also issued as a :class:`DatasetWarning`).

    Raises:
        DataError: The parser found no pairs / an input without target, a file is missing or
            unreadable, or sizes differ (names the files).
    """
    parsed = entry.parse(Path(raw))
    missing = [c for c in ("image_id", "split", "input", "target") if c not in parsed.columns]
    if missing:
        raise DataError(f"{entry.name}: layout parser returned no column(s) {missing}")
    warn = list(parsed.attrs.get("warnings", []))
    out = pairs_index(parsed, entry.name, entry.task, index_dir)
    counts = {str(k): int(v) for k, v in out["split"].value_counts().sort_index().items()}
    expected = dict(entry.expected_counts)
    for split in sorted(set(counts) | set(expected)):
        if split in expected and counts.get(split, 0) != expected[split]:
            warn.append(f"{entry.name}: {counts.get(split, 0)} {split} pairs, expected {expected[split]}")
    if entry.eval_split not in counts:
        warn.append(f"{entry.name}: evaluation split {entry.eval_split!r} has no pairs (splits: {sorted(counts)})")
    for message in warn:
        warnings.warn(message, DatasetWarning, stacklevel=2)
    out.attrs.update({"counts": counts, "expected_counts": expected, "warnings": warn})
    return out


def prepare(
    name: str,
    resources: str | os.PathLike[str],
    progress: bool = True,
    registry: Mapping[str, DatasetEntry] | None = None,
    fetch_sources: bool = True,
    expected_pairs: int | str | None = None,
    downloads: str | os.PathLike[str] | None = None,
) -> Path:
    """Download, extract, parse and index a registry dataset.

    Steps: :func:`lrdm.data.download.fetch` every source into ``resources/downloads`` (manual
    sources must have been placed there), extract archives into
    ``resources/raw/<raw_dir>/<archive stem>/`` (plain files are hard-linked into
    ``resources/raw/<raw_dir>/``), run the layout parser, verify the pairs (:func:`build_index`)
    and write ``resources/data/<name>/manifest.json`` then ``index.parquet`` atomically.

    Args:
        name: Registry key.
        resources: Resource folder of the workflow.
        progress: Show download progress.
        registry: Registry to look ``name`` up in (default :data:`REGISTRY`; tests inject one).
        fetch_sources: False skips fetching/extracting and parses whatever tree is already in
            ``resources/raw/<raw_dir>/`` (for data unpacked by hand).
        expected_pairs: What the config accepts instead of the registry's counts (config key
            ``datasets.<name>.expected_pairs``: ``"any"`` or the total number of pairs); see
            :func:`lrdm.data.counts.check_pair_counts`.
        downloads: Folder of the archives (default ``resources/downloads``; the workflow shares one between
            its configs, lrdm.paths).

    Returns:
        Path of the written ``index.parquet``.

    Raises:
        ValueError: Unknown ``name`` (lists the registry).
        lrdm.data.download.DownloadError: A download failed or a checksum differs; its subclass
            ManualDownloadRequired for a manual archive not yet placed.
        DataError: Parsing or pair verification failed (names the files), or the pairs found are off from the
            registry's counts by more than :data:`lrdm.data.counts.PAIR_COUNT_TOLERANCE` (names the config key
            that accepts them).
    """
    entry = get_entry(name, registry)
    resources = Path(resources)
    downloads = resources / "downloads" if downloads is None else Path(downloads)
    raw = resources / "raw" / entry.raw_folder
    index_dir = resources / "data" / entry.name
    archives: list[dict[str, Any]] = []
    if fetch_sources:
        # datasets sharing a raw folder (RealBlur-J/-R) may be prepared by parallel jobs: one at a time
        raw_lock = resources / "raw" / f".{entry.raw_folder}.lock"
        with exclusive_lock(raw_lock, f"raw folder {entry.raw_folder}", wait=True):
            for source in entry.sources:
                try:
                    path = Path(fetch(source, downloads, progress=progress))
                except ManualDownloadRequired as err:
                    raise ManualDownloadRequired(f"{entry.name}: {err}") from err
                digest = _place(path, raw)
                archives.append({"filename": source.filename, "sha256": digest, "size": path.stat().st_size})
    if not raw.is_dir() or not any(raw.iterdir()):
        pages = ", ".join(s.page for s in (*entry.sources, *entry.mirrors) if s.page) or entry.homepage or "?"
        raise ManualDownloadRequired(
            f"{entry.name}: nothing to parse in {raw}; {entry.notes.split(' NOT VERIFIED')[0]} (see {pages})"
        )
    frame = build_index(entry, raw, index_dir)
    check_pair_counts(entry.name, frame.attrs["counts"], frame.attrs["expected_counts"], expected_pairs)
    manifest = {
        "name": entry.name,
        "task": entry.task,
        "protocol": entry.protocol,
        "beta2_sum": entry.beta2_sum,
        "eval_split": entry.eval_split,
        "raw": _relpath(str(raw), index_dir),
        "archives": archives,
        "counts": frame.attrs["counts"],
        "expected_counts": frame.attrs["expected_counts"],
        "warnings": frame.attrs["warnings"],
        "verified": entry.verified,
    }
    return write_index(frame, index_dir, manifest)


def write_index(frame: pd.DataFrame, index_dir: Path, manifest: dict[str, Any]) -> Path:
    """Writes ``manifest.json`` then ``index.parquet`` into ``index_dir`` atomically; returns the index path."""
    index_dir.mkdir(parents=True, exist_ok=True)
    write_text(index_dir / MANIFEST_FILENAME, json.dumps(manifest, indent=2) + "\n")
    path = index_dir / INDEX_FILE
    table = frame.copy()
    table.attrs = {}  # counts and warnings live in the manifest, not in the Parquet metadata
    write_parquet(table, path)
    return path


def prepare_folders(name: str, spec: Mapping[str, Any], index_dir: str | os.PathLike[str]) -> Path:
    """Indexes a ``source: folders`` dataset (``datasets.<name>`` of the workflow config) into
    ``index_dir/index.parquet``: pairs by :func:`lrdm.data.folders.pair_folders`, sha256 of every file.

    Raises:
        ConfigError: ``folders`` is missing or names a missing folder (names the key).
        DataError: Unmatched files, ambiguous ids or size mismatches (all listed).
    """
    if "folders" not in spec:
        key = f"datasets.{name}.folders"
        raise ConfigError(f"config key {key} is missing (source 'folders')", key)
    index_dir = Path(index_dir)
    pairs = pair_folders(spec["folders"], name)
    frame = pairs_index(pairs.drop(columns=["height", "width"]), name, spec["task"], index_dir)
    counts = {str(k): int(v) for k, v in frame["split"].value_counts().sort_index().items()}
    manifest = {
        "name": name,
        "source": "folders",
        "task": spec["task"],
        "folders": {key: value for key, value in spec["folders"].items()},
        "counts": counts,
    }
    return write_index(frame, index_dir, manifest)
