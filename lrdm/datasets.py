"""Registry of the real benchmarks of the LRDM paper and their preparation into an index.

Every dataset of the paper (Raindrop, Rain1400, GoPro, RealBlur-J/R, ISTD, CelebA-HQ) is a
:class:`DatasetEntry`: where its files come from (:class:`lrdm.download.Source`), under which
terms, how its pairs are matched (a *layout parser*), how it is evaluated (``protocol``) and
the RDDM noise budget it is trained with (``beta2_sum``).  :func:`prepare` turns an entry into
the same ``index.parquet`` that :func:`lrdm.data.make_synthetic_dataset` writes, so every
rule downstream of the data is dataset-agnostic.

On-disk layout (``resources`` is the workflow's resource folder)::

    resources/downloads/<archive>                 # fetched (or placed by hand) and verified
    resources/raw/<raw_dir>/<archive stem>/...    # each archive extracted into its own folder
    resources/data/<name>/index.parquet           # lrdm.data index, paths relative to its folder
    resources/data/<name>/manifest.json           # counts, warnings, archive checksums

``raw_dir`` is the dataset name except for RealBlur-J and RealBlur-R, which share one archive
and therefore one extracted tree (``raw/realblur``).

Layout parsers take the extracted root and return one row per pair with columns
``image_id, split, input, target, mask`` (absolute paths, ``mask`` None where the dataset
has none) and optionally ``source`` (the group a pair belongs to: a GoPro sequence, a
RealBlur scene, a Rain1400 clean image).  Parsers look for their folders anywhere below the
root, so an archive that wraps the tree in an extra top-level folder still parses; macOS
metadata (``__MACOSX``, ``._*``) and hidden files are ignored.  ``image_id`` is prefixed
with the split so ids are unique across splits (Raindrop and ISTD reuse file names).

Nothing in the registry could be checked against the real downloads when this module was
written (no internet): every entry has ``verified=False`` and its ``notes`` say what is
assumed.  Checksums are unknown (``sha256=None``); :func:`prepare` records the sha256 of
every archive it used in ``manifest.json`` so they can be pinned later.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, UnidentifiedImageError

from lrdm.data import (
    INDEX_COLUMNS,
    INDEX_FILENAME,
    MANIFEST_FILENAME,
    DataError,
    ImageReadError,
    _stable_key,  # private in lrdm.data; reused so seeds match the synthetic data's hashing
    _write_bytes_atomic,  # private in lrdm.data; the atomic writer behind its index/manifest
    _write_parquet_atomic,  # private in lrdm.data; the atomic Parquet writer of the index
    save_png_atomic,
    sha256_file,
)
from lrdm.download import EXTRACTED_MARKER, ManualDownloadRequired, Source, extract, fetch

__all__ = [
    "CELEBAHQ_FILL",
    "CELEBAHQ_SIZE",
    "PARSER_COLUMNS",
    "PROTOCOLS",
    "REGISTRY",
    "TASKS",
    "DatasetEntry",
    "DatasetWarning",
    "build_index",
    "get_entry",
    "inpainting_mask",
    "parse_celebahq",
    "parse_gopro",
    "parse_istd",
    "parse_rain1400",
    "parse_raindrop",
    "parse_realblur",
    "prepare",
    "registry_json",
]

TASKS: tuple[str, ...] = ("rain", "blur", "shadow", "inpainting")
PROTOCOLS: tuple[str, ...] = ("derain_y", "rgb", "istd", "realblur")
#: Columns every layout parser returns (``source`` is optional).
PARSER_COLUMNS: tuple[str, ...] = ("image_id", "split", "input", "target", "mask")

#: File extensions taken as images (compared lower-case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
#: Archive types handed to :func:`lrdm.download.extract`; other files are linked into raw/.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
#: Folder names never searched (archive junk).
JUNK_DIRS = frozenset({"__MACOSX"})
#: At most this many offending files are named in one error message.
MAX_LISTED = 20

# CelebA-HQ inpainting.
CELEBAHQ_SIZE = 256  # images are resized (Lanczos) to this square side; RDDM resizes to 256
CELEBAHQ_FILL = 128  # uint8 grey written into masked pixels (~0 in [-1, 1] model space)
CELEBAHQ_HOLDOUT_MOD = 20  # no test shard: ids with stable hash % 20 == 0 (5 %) become "test"
MASK_SEED = 20240613  # mixed into every per-image mask seed
MASK_KINDS: tuple[str, ...] = ("center", "irregular", "mixed")
CENTER_MASK_FRACTION = 0.5  # side of the centre square / short image side
STROKES_RANGE = (2, 6)  # brush strokes per irregular mask (upper bound exclusive)
STROKE_VERTICES_RANGE = (3, 9)  # segments per stroke (upper bound exclusive)
STROKE_WIDTH_FRACTION = (1 / 32, 1 / 10)  # brush width / short side
STROKE_SEGMENT_FRACTION = (0.08, 0.25)  # segment length / short side
STROKE_MAX_TURN = math.pi / 3  # largest direction change between segments [rad]


class DatasetWarning(UserWarning):
    """Something about a prepared dataset differs from what the registry expects."""


# --------------------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetEntry:
    """One real benchmark: sources, terms, layout parser and evaluation protocol.

    Attributes:
        name: Registry key (also the wildcard value in the workflow).
        task: ``rain`` | ``blur`` | ``shadow`` | ``inpainting``.
        sources: Files :func:`prepare` fetches (all of them); archives are extracted.
        licence: Licence / terms of use, as far as known (see ``verified``).
        protocol: Evaluation protocol (``derain_y`` | ``rgb`` | ``istd`` | ``realblur``).
        beta2_sum: RDDM's ``sum(beta_t^2)`` for this task (RDDM Tab. 4).
        parse: Layout parser: extracted root -> rows ``image_id, split, input, target, mask``.
        eval_split: Split the paper's numbers are computed on.
        notes: What is assumed about the data and what was (not) verified.
        expected_counts: Pairs per split of the official release, where known.
        verified: Whether URLs, file names, checksums and layout were checked on the
            real files (False for every entry: written without internet access).
        mirrors: Alternative places to get the data (informational, never fetched).
        citation: Paper introducing the dataset.
        homepage: Official page.
        raw_dir: Folder under ``resources/raw`` (default: ``name``); entries sharing an
            archive share it.
    """

    name: str
    task: str
    sources: tuple[Source, ...]
    licence: str
    protocol: str
    beta2_sum: float
    parse: Callable[[Path], pd.DataFrame]
    eval_split: str = "test"
    notes: str = ""
    expected_counts: Mapping[str, int] = field(default_factory=dict)
    verified: bool = False
    mirrors: tuple[Source, ...] = ()
    citation: str = ""
    homepage: str | None = None
    raw_dir: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"dataset {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"dataset {self.name!r}: protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not self.beta2_sum > 0:
            raise ValueError(f"dataset {self.name!r}: beta2_sum must be > 0, got {self.beta2_sum}")
        names = [s.filename for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r}: source file names repeat: {names}")

    @property
    def raw_folder(self) -> str:
        return self.raw_dir or self.name


# --------------------------------------------------------------------------------------
# File-tree helpers shared by the parsers
# --------------------------------------------------------------------------------------


def _is_junk(path: Path, root: Path) -> bool:
    rel = path.relative_to(root).parts
    return any(p in JUNK_DIRS or p.startswith(".") for p in rel)


def _find_dirs(root: Path, name: str) -> list[Path]:
    """Folders called ``name`` (case-insensitive) anywhere below ``root``, sorted, junk skipped."""
    want = name.lower()
    found = [p for p in root.rglob("*") if p.is_dir() and p.name.lower() == want and not _is_junk(p, root)]
    return sorted(found)


def _child_dir(parent: Path, name: str) -> Path | None:
    """The sub-folder ``name`` of ``parent``, matched case-insensitively."""
    if not parent.is_dir():
        return None
    for child in sorted(parent.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def _images(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder``, keyed by lower-case stem (hidden / ``._`` files skipped).

    Raises:
        DataError: Two images share a stem (e.g. ``1.png`` and ``1.jpg``): ambiguous pairing.
    """
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = p.stem.lower()
        if key in out:
            raise DataError(f"ambiguous pairing: {out[key]} and {p} have the same name stem in {folder}")
        out[key] = p
    return out


def _missing_error(dataset: str, missing: list[str]) -> DataError:
    shown = "; ".join(missing[:MAX_LISTED])
    more = f" (and {len(missing) - MAX_LISTED} more)" if len(missing) > MAX_LISTED else ""
    return DataError(f"{dataset}: {len(missing)} input(s) without a target: {shown}{more}")


def _frame(rows: list[dict[str, Any]], dataset: str, warn: list[str] | None = None) -> pd.DataFrame:
    if not rows:
        raise DataError(f"{dataset}: no image pairs found")
    df = pd.DataFrame(rows)
    for col in PARSER_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    df.attrs["warnings"] = list(warn or [])
    return df


def _natural_key(text: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


# --------------------------------------------------------------------------------------
# Layout parsers
# --------------------------------------------------------------------------------------

_RAINDROP_SPLITS = {"train": "train", "test_a": "test", "test_b": "test_b"}
_RAINDROP_INPUT = re.compile(r"^(\d+)_rain$", re.IGNORECASE)


def parse_raindrop(root: Path) -> pd.DataFrame:
    """Raindrop (Qian et al. 2018): ``{train,test_a,test_b}/{data,gt}/N_rain.* <-> N_clean.*``.

    ``test_a`` becomes split ``test`` (what RDDM and LRDM report), ``test_b`` stays
    ``test_b``.  Extensions are free (test_b ships ``.jpg``); files in ``data/`` not named
    ``N_rain`` are skipped with a warning.
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    warn: list[str] = []
    for folder_name, split in _RAINDROP_SPLITS.items():
        candidates = [d for d in _find_dirs(root, folder_name) if _child_dir(d, "data") and _child_dir(d, "gt")]
        if not candidates:
            warn.append(f"raindrop: no {folder_name}/{{data,gt}} folder under {root}")
            continue
        if len(candidates) > 1:
            raise DataError(f"raindrop: several {folder_name} folders under {root}: {[str(c) for c in candidates]}")
        split_dir = candidates[0]
        data_dir, gt_dir = _child_dir(split_dir, "data"), _child_dir(split_dir, "gt")
        assert data_dir is not None and gt_dir is not None
        gts = _images(gt_dir)
        for stem, inp in _images(data_dir).items():
            m = _RAINDROP_INPUT.match(stem)
            if m is None:
                warn.append(f"raindrop: skipped {inp} (not named N_rain)")
                continue
            n = m.group(1)
            tgt = gts.get(f"{n}_clean")
            if tgt is None:
                missing.append(f"{inp} (expected {gt_dir}/{n}_clean.*)")
                continue
            rows.append({"image_id": f"{split}-{n}", "split": split, "input": str(inp), "target": str(tgt)})
    if missing:
        raise _missing_error("raindrop", missing)
    return _frame(rows, "raindrop", warn)


_RAIN1400_SPLITS = {"train": "train", "training": "train", "test": "test", "testing": "test"}
_RAIN1400_INPUT = re.compile(r"^(\d+)_(\d+)$")
RAIN1400_VERSIONS = 14  # rainy versions per clean image


def parse_rain1400(root: Path) -> pd.DataFrame:
    """Rain1400 / DDN-Data (Fu et al. 2017): ``{split}/rainy_image/{id}_{k}.* <-> {split}/ground_truth/{id}.*``.

    ``k`` runs over the 14 rain versions of clean image ``id``; split folders may be named
    ``train``/``training`` and ``test``/``testing``.  A clean image with a number of rainy
    versions other than 14 is a warning.  ``source`` is the clean image (``{split}-{id}``).
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    warn: list[str] = []
    seen_splits: set[str] = set()
    for rainy_dir in _find_dirs(root, "rainy_image"):
        split = _RAIN1400_SPLITS.get(rainy_dir.parent.name.lower())
        gt_dir = _child_dir(rainy_dir.parent, "ground_truth")
        if split is None or gt_dir is None:
            warn.append(f"rain1400: skipped {rainy_dir} (parent is not a train/test folder with ground_truth/)")
            continue
        if split in seen_splits:
            raise DataError(f"rain1400: several {split} folders under {root} (second: {rainy_dir.parent})")
        seen_splits.add(split)
        gts = _images(gt_dir)
        versions: dict[str, int] = {}
        for stem, inp in _images(rainy_dir).items():
            m = _RAIN1400_INPUT.match(stem)
            if m is None:
                warn.append(f"rain1400: skipped {inp} (not named ID_K)")
                continue
            clean_id, k = m.group(1), int(m.group(2))
            tgt = gts.get(clean_id.lower())
            if tgt is None:
                missing.append(f"{inp} (expected {gt_dir}/{clean_id}.*)")
                continue
            versions[clean_id] = versions.get(clean_id, 0) + 1
            rows.append(
                {
                    "image_id": f"{split}-{clean_id}_{k}",
                    "split": split,
                    "input": str(inp),
                    "target": str(tgt),
                    "source": f"{split}-{clean_id}",
                }
            )
        odd = sorted((cid for cid, n in versions.items() if n != RAIN1400_VERSIONS), key=_natural_key)
        if odd:
            warn.append(
                f"rain1400: {len(odd)} {split} clean image(s) without exactly {RAIN1400_VERSIONS} rainy versions: "
                + ", ".join(f"{cid} ({versions[cid]})" for cid in odd[:MAX_LISTED])
            )
    if missing:
        raise _missing_error("rain1400", missing)
    return _frame(rows, "rain1400", warn)


#: GoPro input folder: ``blur`` (frames averaged as stored) rather than ``blur_gamma``.
GOPRO_INPUT_DIR = "blur"
GOPRO_TARGET_DIR = "sharp"


def parse_gopro(root: Path) -> pd.DataFrame:
    """GoPro (Nah et al. 2017): ``{train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/NNNNNN.png``.

    The input is ``blur/`` (the variant the deblurring literature reports on); ``blur_gamma/``
    is ignored.  ``source`` is the sequence folder.
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for split in ("train", "test"):
        for split_dir in _find_dirs(root, split):
            for seq in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                blur_dir, sharp_dir = _child_dir(seq, GOPRO_INPUT_DIR), _child_dir(seq, GOPRO_TARGET_DIR)
                if blur_dir is None or sharp_dir is None:
                    continue
                sharps = _images(sharp_dir)
                for stem, inp in _images(blur_dir).items():
                    tgt = sharps.get(stem)
                    if tgt is None:
                        missing.append(f"{inp} (expected {sharp_dir}/{inp.name})")
                        continue
                    rows.append(
                        {
                            "image_id": f"{split}-{seq.name}-{inp.stem}",
                            "split": split,
                            "input": str(inp),
                            "target": str(tgt),
                            "source": seq.name,
                        }
                    )
    if missing:
        raise _missing_error("gopro", missing)
    df = _frame(rows, "gopro")
    dup = df["image_id"][df["image_id"].duplicated()].tolist()
    if dup:
        raise DataError(f"gopro: the same sequence appears in several folders: {dup[:MAX_LISTED]}")
    return df


#: Aligned scene folders of RealBlur (the "itensity" spelling is the dataset's own).
REALBLUR_DIRS = {
    "J": "RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
    "R": "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref",
}
REALBLUR_LISTS = {"train": "RealBlur_{v}_train_list.txt", "test": "RealBlur_{v}_test_list.txt"}


def parse_realblur(root: Path, variant: str) -> pd.DataFrame:
    """RealBlur-J / -R (Rim et al. 2020): pairs and splits from ``RealBlur_{J,R}_{train,test}_list.txt``.

    Each non-empty line holds two paths relative to the list's folder (``gt blur``; the one
    inside a ``gt`` folder is taken as the target whatever the order).  ``source`` is the
    scene folder.  Files named by a list but absent are reported by :func:`prepare`.
    """
    variant = variant.upper()
    if variant not in ("J", "R"):
        raise ValueError(f"RealBlur variant must be 'J' or 'R', got {variant!r}")
    name = f"realblur_{variant.lower()}"
    rows: list[dict[str, Any]] = []
    for split, pattern in REALBLUR_LISTS.items():
        list_name = pattern.format(v=variant)
        found = sorted(p for p in root.rglob(list_name) if p.is_file() and not _is_junk(p, root))
        if not found:
            raise DataError(f"{name}: list file {list_name} not found under {root}")
        if len(found) > 1:
            raise DataError(f"{name}: several {list_name} under {root}: {[str(p) for p in found]}")
        list_file = found[0]
        for lineno, line in enumerate(list_file.read_text().splitlines(), start=1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            if len(tokens) < 2:
                raise DataError(f"{list_file}:{lineno}: expected 'gt_path blur_path', got {line!r}")
            gt_rel, blur_rel = tokens[0], tokens[1]
            if "gt" not in Path(gt_rel).parts[:-1] and "gt" in Path(blur_rel).parts[:-1]:
                gt_rel, blur_rel = blur_rel, gt_rel
            blur, gt = (
                _resolve_listed(blur_rel, list_file.parent, root),
                _resolve_listed(gt_rel, list_file.parent, root),
            )
            scene = blur.parent.parent.name
            rows.append(
                {
                    "image_id": f"{split}-{scene}-{blur.stem}",
                    "split": split,
                    "input": str(blur),
                    "target": str(gt),
                    "source": scene,
                }
            )
    df = _frame(rows, name)
    dup = df["image_id"][df["image_id"].duplicated()].tolist()
    if dup:
        raise DataError(f"{name}: pairs listed more than once: {dup[:MAX_LISTED]}")
    return df


def _resolve_listed(rel: str, list_dir: Path, root: Path) -> Path:
    """A list entry, relative to the list's folder, else to the extracted root."""
    first = list_dir / rel
    if first.exists():
        return first
    second = root / rel
    return second if second.exists() else first


ISTD_SUFFIXES = {"shadow": "_A", "mask": "_B", "free": "_C"}


def parse_istd(root: Path) -> pd.DataFrame:
    """ISTD (Wang et al. 2018): ``{split}/{split}_A`` shadow, ``_B`` mask, ``_C`` shadow-free.

    The three folders share file names; the mask (``_B``) goes to the ``mask`` column.
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for split in ("train", "test"):
        a_dirs = _find_dirs(root, f"{split}_A")
        if len(a_dirs) > 1:
            raise DataError(f"istd: several {split}_A folders under {root}: {[str(d) for d in a_dirs]}")
        for a_dir in a_dirs:
            b_dir, c_dir = _child_dir(a_dir.parent, f"{split}_B"), _child_dir(a_dir.parent, f"{split}_C")
            if b_dir is None or c_dir is None:
                raise DataError(f"istd: {a_dir} has no sibling {split}_B and {split}_C folders")
            masks, frees = _images(b_dir), _images(c_dir)
            for stem, inp in _images(a_dir).items():
                mask, tgt = masks.get(stem), frees.get(stem)
                if tgt is None or mask is None:
                    lacking = [str(d / inp.name) for d, f in ((c_dir, tgt), (b_dir, mask)) if f is None]
                    missing.append(f"{inp} (expected {' and '.join(lacking)})")
                    continue
                rows.append(
                    {
                        "image_id": f"{split}-{inp.stem}",
                        "split": split,
                        "input": str(inp),
                        "target": str(tgt),
                        "mask": str(mask),
                    }
                )
    if missing:
        raise _missing_error("istd", missing)
    return _frame(rows, "istd")


# ----- CelebA-HQ inpainting -------------------------------------------------------------


def inpainting_mask(image_id: str, height: int, width: int, kind: str = "mixed") -> tuple[np.ndarray, str]:
    """Deterministic inpainting hole for ``image_id``: bool ``(height, width)``, True = missing.

    The generator is seeded by ``(MASK_SEED, crc32(image_id))`` only, so a mask depends on the
    image id, the size and ``kind``, never on order or process.

    Args:
        image_id: Key the mask is seeded with.
        height, width: Mask size.
        kind: ``center`` (a centred square of half the short side), ``irregular``
            (2-5 meandering brush strokes drawn with round joints) or ``mixed`` (one of the
            two, chosen with probability 1/2 from the same seed).

    Returns:
        ``(mask, kind_used)``.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
    if height < 1 or width < 1:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    rng = np.random.default_rng([MASK_SEED, _stable_key(image_id)])
    if kind == "mixed":
        kind = "center" if rng.random() < 0.5 else "irregular"
    short = min(height, width)
    if kind == "center":
        side = max(1, round(short * CENTER_MASK_FRACTION))
        top, left = (height - side) // 2, (width - side) // 2
        mask = np.zeros((height, width), dtype=bool)
        mask[top : top + side, left : left + side] = True
        return mask, kind
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(*STROKES_RANGE))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        brush = max(1, round(short * rng.uniform(*STROKE_WIDTH_FRACTION)))
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(int(rng.integers(*STROKE_VERTICES_RANGE))):
            angle += rng.uniform(-STROKE_MAX_TURN, STROKE_MAX_TURN)
            length = short * rng.uniform(*STROKE_SEGMENT_FRACTION)
            nx = float(np.clip(x + length * math.cos(angle), 0, width - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, height - 1))
            draw.line([(x, y), (nx, ny)], fill=255, width=brush)
            r = brush / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=255)
            x, y = nx, ny
    mask = np.asarray(canvas) > 127
    if not mask.any():  # cannot happen with brush >= 1, kept as a guarantee
        mask[height // 2, width // 2] = True
    return mask, kind


def _parquet_image_column(schema: Any) -> str:
    import pyarrow as pa

    for f in schema:
        t = f.type
        if pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields)):
            return f.name
    for f in schema:
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            return f.name
    raise DataError(f"no image column (struct with 'bytes' or binary) in parquet schema: {schema}")


def _celebahq_split(shard: Path, root: Path) -> str:
    text = "/".join(shard.relative_to(root).parts).lower()
    return "test" if re.search(r"(^|[^a-z])(test|val|valid|validation)([^a-z]|$)", text) else "train"


def _iter_parquet_images(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """``(split, key, encoded image bytes)`` for every row of every ``*.parquet`` under ``root``."""
    import pyarrow.parquet as pq

    shards = sorted(p for p in root.rglob("*.parquet") if p.is_file() and not _is_junk(p, root))
    if not shards:
        raise DataError(f"celebahq: no *.parquet shards under {root}")
    for shard in shards:
        split = _celebahq_split(shard, root)
        pf = pq.ParquetFile(shard)
        col = _parquet_image_column(pf.schema_arrow)
        row = 0
        for batch in pf.iter_batches(batch_size=64, columns=[col]):
            for value in batch.column(0).to_pylist():
                if isinstance(value, dict):
                    payload, path = value.get("bytes"), value.get("path")
                else:
                    payload, path = value, None
                if not payload:
                    raise DataError(f"celebahq: row {row} of {shard} has no image bytes")
                key = Path(path).stem if path else f"{shard.stem}-{row:06d}"
                yield split, key, payload
                row += 1


def parse_celebahq(
    root: Path,
    size: int | None = CELEBAHQ_SIZE,
    mask_kind: str = "mixed",
    fill: int = CELEBAHQ_FILL,
) -> pd.DataFrame:
    """CelebA-HQ inpainting pairs from Hugging Face Parquet shards (``*.parquet`` under ``root``).

    Each row's image (HF ``Image`` struct with ``bytes``/``path``, or a binary column) is
    decoded to RGB, resized to ``size x size`` (Lanczos; None keeps it) and written as the
    target; :func:`inpainting_mask` (seeded by the image id) gives the hole, written as the
    mask (255 = missing); the input is the target with the hole filled with grey ``fill``.
    Files go to ``root/prepared/{split}/{input,target,mask}/{image_id}.png``.

    Splits come from the shard path (``test``/``val``/``validation`` -> ``test``, else
    ``train``); with no test shard, ids whose stable hash is 0 mod 20 (5 %) become ``test``
    (a warning says so).  Image ids are the HF ``path`` stem, else ``shard-row``.
    """
    if not 0 <= fill <= 255:
        raise ValueError(f"fill must be a uint8 value, got {fill}")
    items = list(_iter_parquet_images(root))
    warn: list[str] = []
    has_test = any(split == "test" for split, _, _ in items)
    if not has_test:
        warn.append(
            f"celebahq: no test/validation shard; held out ids with crc32 % {CELEBAHQ_HOLDOUT_MOD} == 0 as 'test'"
        )
    out = root / "prepared"
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, (split, key, payload) in enumerate(items):
        if not has_test and _stable_key(key) % CELEBAHQ_HOLDOUT_MOD == 0:
            split = "test"
        image_id = f"{split}-{key}"
        if image_id in seen:  # paths repeat across shards: fall back to the position
            image_id = f"{split}-{key}-{n:06d}"
        seen.add(image_id)
        try:
            with Image.open(io.BytesIO(payload)) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.LANCZOS)
                target = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageReadError(f"celebahq: cannot decode image {key!r}: {exc}") from exc
        mask, _ = inpainting_mask(image_id, target.shape[0], target.shape[1], mask_kind)
        degraded = target.copy()
        degraded[mask] = fill
        paths = {c: out / split / c / f"{image_id}.png" for c in ("input", "target", "mask")}
        save_png_atomic(paths["target"], target)
        save_png_atomic(paths["input"], degraded)
        save_png_atomic(paths["mask"], mask)
        rows.append({"image_id": image_id, "split": split, **{c: str(p) for c, p in paths.items()}})
    return _frame(rows, "celebahq", warn)


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

_HF = "https://huggingface.co/datasets"
_UNVERIFIED = (
    "NOT VERIFIED: written without internet access; URLs, archive names, checksums, licence "
    "and layout follow the project issue and the dataset papers and must be checked on first download."
)

REGISTRY: dict[str, DatasetEntry] = {
    e.name: e
    for e in (
        DatasetEntry(
            name="raindrop",
            task="rain",
            sources=tuple(
                Source(filename=f, manual=True, page="https://github.com/rui1996/DeRaindrop")
                for f in ("train.zip", "test_a.zip", "test_b.zip")
            ),
            licence="No licence stated as far as known; research use, cite Qian et al. 2018.",
            protocol="derain_y",
            beta2_sum=1.0,
            parse=parse_raindrop,
            eval_split="test",
            expected_counts={"train": 861, "test": 58, "test_b": 249},
            mirrors=(Source(filename="unknown", manual=True, page=f"{_HF}/dronefreak/RainDrop"),),
            citation="Qian et al., Attentive Generative Adversarial Network for Raindrop Removal from "
            "a Single Image, CVPR 2018",
            homepage="https://github.com/rui1996/DeRaindrop",
            notes=(
                "Official data: the Google Drive folder linked from the DeRaindrop README (manual "
                "download; the three archive names train.zip/test_a.zip/test_b.zip are assumed). "
                "Layout {train,test_a,test_b}/{data,gt}/N_rain.* <-> N_clean.* (test_b in .jpg). "
                "test_a -> split 'test' (RDDM/LRDM report test_a), test_b -> split 'test_b'. "
                "Unofficial HF mirror dronefreak/RainDrop: file names inside unknown. " + _UNVERIFIED
            ),
        ),
        DatasetEntry(
            name="rain1400",
            task="rain",
            sources=(
                Source(filename="Rain1400.zip", manual=True, page="https://xueyangfu.github.io/projects/cvpr2017.html"),
            ),
            licence="No licence stated as far as known; research use, cite Fu et al. 2017.",
            protocol="derain_y",
            beta2_sum=1.0,
            parse=parse_rain1400,
            eval_split="test",
            expected_counts={"train": 12600, "test": 1400},
            mirrors=(Source(filename="unknown", manual=True, page=f"{_HF}/dronefreak/DDN-Data"),),
            citation="Fu et al., Removing Rain from Single Images via a Deep Detail Network, CVPR 2017",
            homepage="https://xueyangfu.github.io/projects/cvpr2017.html",
            notes=(
                "DDN-Data: {train,test}/rainy_image/{id}_{1..14}.* <-> {train,test}/ground_truth/{id}.* "
                "(also accepts training/testing folder names); 14 rainy versions per clean image, "
                "900/100 clean images. Place any archive of that tree as downloads/Rain1400.zip "
                "(name chosen here), e.g. from the unofficial HF mirror dronefreak/DDN-Data (file name "
                "unknown). " + _UNVERIFIED
            ),
        ),
        DatasetEntry(
            name="gopro",
            task="blur",
            sources=(
                Source(
                    filename="GOPRO_Large.zip",
                    url=f"{_HF}/snah/GOPRO_Large/resolve/main/GOPRO_Large.zip",
                    page="https://seungjunnah.github.io/Datasets/gopro",
                ),
            ),
            licence="CC BY 4.0 (as far as known).",
            protocol="rgb",
            beta2_sum=0.01,
            parse=parse_gopro,
            eval_split="test",
            expected_counts={"train": 2103, "test": 1111},
            citation="Nah et al., Deep Multi-scale Convolutional Neural Network for Dynamic Scene "
            "Deblurring, CVPR 2017",
            homepage="https://seungjunnah.github.io/Datasets/gopro",
            notes=(
                "GOPRO_Large: {train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/NNNNNN.png. Input = "
                "blur/ (not blur_gamma/), the variant the deblurring literature evaluates on. sha256 "
                "and size of the archive unknown. " + _UNVERIFIED
            ),
        ),
        *(
            DatasetEntry(
                name=f"realblur_{v.lower()}",
                task="blur",
                sources=(
                    Source(
                        filename="RealBlur.tar.gz",
                        url=f"{_HF}/chitradrishti/real-blur/resolve/main/RealBlur.tar.gz",
                        page="http://cg.postech.ac.kr/research/realblur/",
                    ),
                ),
                licence="CC BY 4.0.",
                protocol="realblur",
                beta2_sum=0.01,
                parse=functools.partial(parse_realblur, variant=v),
                eval_split="test",
                expected_counts={"train": 3758, "test": 980},
                citation="Rim et al., Real-World Blur Dataset for Learning and Benchmarking Deblurring "
                "Algorithms, ECCV 2020",
                homepage="http://cg.postech.ac.kr/research/realblur/",
                raw_dir="realblur",
                notes=(
                    f"RealBlur.tar.gz (URL: unofficial HF mirror chitradrishti/real-blur) holds "
                    f"{REALBLUR_DIRS[v]}/sceneNNN/{{blur,gt}}/blur_K.png <-> gt_K.png; splits and pairs are read from "
                    f"RealBlur_{v}_train_list.txt / RealBlur_{v}_test_list.txt ('gt_path blur_path' "
                    f"per line, relative). realblur_j and realblur_r share the archive and raw/realblur. "
                    f"Expected counts (3758/980) from the RealBlur paper, per variant. " + _UNVERIFIED
                ),
            )
            for v in ("J", "R")
        ),
        DatasetEntry(
            name="istd",
            task="shadow",
            sources=(
                Source(filename="ISTD_Dataset.zip", manual=True, page="https://github.com/DeepInsight-PCALab/ST-CGAN"),
            ),
            licence="Research / non-commercial use only.",
            protocol="istd",
            beta2_sum=0.01,
            parse=parse_istd,
            eval_split="test",
            expected_counts={"train": 1330, "test": 540},
            citation="Wang et al., Stacked Conditional Generative Adversarial Networks for Jointly "
            "Learning Shadow Detection and Shadow Removal, CVPR 2018",
            homepage="https://github.com/DeepInsight-PCALab/ST-CGAN",
            notes=(
                "Google Drive only (manual). {train,test}/{split}_A (shadow), _B (mask -> mask column), "
                "_C (shadow-free) with the same file names. The Drive file may be a .rar: repack it as "
                "downloads/ISTD_Dataset.zip (name chosen here) or unpack it into raw/istd and call "
                "prepare(..., fetch_sources=False). Original ISTD, not the colour-adjusted ISTD+. " + _UNVERIFIED
            ),
        ),
        DatasetEntry(
            name="celebahq",
            task="inpainting",
            sources=(),
            licence="CelebA terms: non-commercial research only (CelebA-HQ is derived from CelebA).",
            protocol="rgb",
            beta2_sum=1.0,
            parse=parse_celebahq,
            eval_split="test",
            mirrors=(Source(filename="*.parquet", manual=True, page=f"{_HF}/mattymchen/celeba-hq"),),
            citation="Karras et al., Progressive Growing of GANs for Improved Quality, Stability, and "
            "Variation, ICLR 2018",
            homepage=f"{_HF}/mattymchen/celeba-hq",
            notes=(
                "Hugging Face Parquet shards (e.g. mattymchen/celeba-hq); shard names unknown, so no "
                "source is fetched: put the shards anywhere under resources/raw/celebahq/ (e.g. "
                "`huggingface-cli download mattymchen/celeba-hq --repo-type dataset --local-dir "
                f"resources/raw/celebahq/hf`). Images resized to {CELEBAHQ_SIZE}x{CELEBAHQ_SIZE} "
                "(Lanczos); target = image, input = image with a deterministic hole (per image id: "
                "centre square of half the side or irregular brush strokes, 1/2 each) filled with "
                f"grey {CELEBAHQ_FILL}; mask PNG 255 = hole. Split from shard names (test/val -> "
                "test), else a 5 % hash hold-out. beta2_sum 1 as RDDM Tab. 4 (inpainting). " + _UNVERIFIED
            ),
        ),
    )
}


def get_entry(name: str, registry: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry:
    """Registry entry ``name``; ValueError listing the known names otherwise."""
    registry = REGISTRY if registry is None else registry
    if name not in registry:
        raise ValueError(f"unknown dataset {name!r}; registry: {sorted(registry)}")
    return registry[name]


def _source_json(s: Source) -> dict[str, Any]:
    return {
        "filename": s.filename,
        "url": s.url,
        "sha256": s.sha256,
        "size": s.size,
        "manual": s.manual,
        "page": s.page,
    }


def registry_json(registry: Mapping[str, DatasetEntry] | None = None) -> list[dict[str, Any]]:
    """JSON-serialisable description of every entry (for ``lrdm datasets --json``)."""
    registry = REGISTRY if registry is None else registry
    return [
        {
            "name": e.name,
            "task": e.task,
            "protocol": e.protocol,
            "beta2_sum": e.beta2_sum,
            "eval_split": e.eval_split,
            "licence": e.licence,
            "sources": [_source_json(s) for s in e.sources],
            "mirrors": [_source_json(s) for s in e.mirrors],
            "expected_counts": dict(e.expected_counts),
            "verified": e.verified,
            "citation": e.citation,
            "homepage": e.homepage,
            "raw_dir": e.raw_folder,
            "notes": e.notes,
        }
        for e in registry.values()
    ]


# --------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------


def _archive_stem(filename: str) -> str | None:
    """Name without its archive suffix, or None when ``filename`` is not an archive."""
    low = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def _place(file: Path, raw: Path) -> str:
    """Extract an archive into ``raw/<stem>/``, or hard-link (else copy) a plain file into ``raw``.

    Returns the file's sha256 (for archives read from the marker :func:`extract` leaves, so a
    large archive is not hashed once more).
    """
    stem = _archive_stem(file.name)
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
    df = parsed.copy()
    if "mask" not in df.columns:
        df["mask"] = None
    df["mask"] = df["mask"].astype(object).where(df["mask"].notna(), None)
    dup = df["image_id"][df["image_id"].duplicated()].tolist()
    if dup:
        raise DataError(f"{entry.name}: duplicated image ids from the layout parser: {dup[:MAX_LISTED]}")
    sizes = _check_pairs(df, entry.name)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(str),
            "split": df["split"].astype(str),
            "input": [_relpath(p, index_dir) for p in df["input"]],
            "target": [_relpath(p, index_dir) for p in df["target"]],
            "mask": [None if m is None else _relpath(m, index_dir) for m in df["mask"]],
            "source": df["source"].fillna(entry.name).astype(str) if "source" in df.columns else entry.name,
            "task": entry.task,
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


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``lock_path`` (created if missing) for the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(
    name: str,
    resources: str | os.PathLike[str],
    progress: bool = True,
    registry: Mapping[str, DatasetEntry] | None = None,
    fetch_sources: bool = True,
) -> Path:
    """Download, extract, parse and index a registry dataset.

    Steps: :func:`lrdm.download.fetch` every source into ``resources/downloads`` (manual
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

    Returns:
        Path of the written ``index.parquet``.

    Raises:
        ValueError: Unknown ``name`` (lists the registry).
        lrdm.download.DownloadError: A download failed or a checksum differs; its subclass
            ManualDownloadRequired for a manual archive not yet placed.
        DataError: Parsing or pair verification failed (names the files).
    """
    entry = get_entry(name, registry)
    resources = Path(resources)
    downloads = resources / "downloads"
    raw = resources / "raw" / entry.raw_folder
    index_dir = resources / "data" / entry.name
    archives: list[dict[str, Any]] = []
    if fetch_sources:
        # datasets sharing a raw folder (RealBlur-J/-R) may be prepared by parallel jobs: one at a time
        with _exclusive(resources / "raw" / f".{entry.raw_folder}.lock"):
            for source in entry.sources:
                path = Path(fetch(source, downloads, progress=progress))
                digest = _place(path, raw)
                archives.append({"filename": source.filename, "sha256": digest, "size": path.stat().st_size})
    if not raw.is_dir() or not any(raw.iterdir()):
        pages = ", ".join(s.page for s in (*entry.sources, *entry.mirrors) if s.page) or entry.homepage or "?"
        raise ManualDownloadRequired(
            f"{entry.name}: nothing to parse in {raw}; {entry.notes.split(' NOT VERIFIED')[0]} (see {pages})"
        )
    frame = build_index(entry, raw, index_dir)
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
    index_dir.mkdir(parents=True, exist_ok=True)
    _write_bytes_atomic(index_dir / MANIFEST_FILENAME, (json.dumps(manifest, indent=2) + "\n").encode())
    path = index_dir / INDEX_FILENAME
    table = frame.copy()
    table.attrs = {}  # counts and warnings live in the manifest, not in the Parquet metadata
    _write_parquet_atomic(table, path)
    return path
