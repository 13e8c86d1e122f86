"""Layout parsers of the real benchmarks: how each archive's files pair up.

A parser takes the extracted root and returns one row per pair with columns
``image_id, split, input, target, mask`` (absolute paths, ``mask`` None where the dataset has none) and
optionally ``source`` (the group a pair belongs to). Parsers look for their folders anywhere below the
root, so an archive that wraps the tree in an extra top-level folder still parses; macOS metadata
(``__MACOSX``, ``._*``) and hidden files are ignored. ``image_id`` is prefixed with the split so ids are
unique across splits (Raindrop and ISTD reuse file names). :data:`PARSERS` names them for the registry.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, UnidentifiedImageError

from lrdm.data.images import IMAGE_SUFFIXES
from lrdm.errors import DataError, ImageReadError
from lrdm.files import stable_key, write_png

PARSER_COLUMNS: tuple[str, ...] = ("image_id", "split", "input", "target", "mask")

#: Archive types handed to :func:`lrdm.data.download.extract`; other files are linked into raw/.
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


def _target_of(inp: Path, targets: dict[str, Path], key: str, expected: str, missing: list[str]) -> Path | None:
    """The target of ``inp``: ``targets[key]``, or ``None`` with ``inp`` recorded in ``missing`` as lacking the file
    ``expected`` (a path, for the error :func:`_missing_error` makes)."""
    target = targets.get(key)
    if target is None:
        missing.append(f"{inp} (expected {expected})")
    return target


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
            tgt = _target_of(inp, gts, f"{n}_clean", f"{gt_dir}/{n}_clean.*", missing)
            if tgt is None:
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
            tgt = _target_of(inp, gts, clean_id.lower(), f"{gt_dir}/{clean_id}.*", missing)
            if tgt is None:
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
                    tgt = _target_of(inp, sharps, stem, f"{sharp_dir}/{inp.name}", missing)
                    if tgt is None:
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
    rng = np.random.default_rng([MASK_SEED, stable_key(image_id)])
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


CELEBAHQ_IMAGE_DIR = "CelebA-HQ-img"
"""The folder of CelebAMask-HQ.zip that holds the 30,000 CelebA-HQ images (``0.jpg`` ... ``29999.jpg``)."""


def _iter_celebahq_images(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """``(split, key, encoded image bytes)`` of CelebA-HQ: the rows of ``*.parquet`` shards under ``root`` if there
    are any, else the images of every :data:`CELEBAHQ_IMAGE_DIR` folder (CelebAMask-HQ.zip; split ``train``, the
    hold-out then picks the test images)."""
    shards = sorted(p for p in root.rglob("*.parquet") if p.is_file() and not _is_junk(p, root))
    if shards:
        yield from _iter_parquet_images(shards, root)
        return
    folders = _find_dirs(root, CELEBAHQ_IMAGE_DIR)
    if not folders:
        raise DataError(f"celebahq: neither *.parquet shards nor a {CELEBAHQ_IMAGE_DIR}/ folder under {root}")
    for folder in folders:
        for key, path in sorted(_images(folder).items(), key=lambda item: _natural_key(item[0])):
            yield "train", key, path.read_bytes()


def _iter_parquet_images(shards: list[Path], root: Path) -> Iterator[tuple[str, str, bytes]]:
    """``(split, key, encoded image bytes)`` for every row of the ``*.parquet`` ``shards`` under ``root``."""
    import pyarrow.parquet as pq

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
    """CelebA-HQ inpainting pairs from Hugging Face Parquet shards (``*.parquet`` under ``root``), or else from the
    ``CelebA-HQ-img`` folder of the extracted CelebAMask-HQ.zip.

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
    items = list(_iter_celebahq_images(root))
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
        if not has_test and stable_key(key) % CELEBAHQ_HOLDOUT_MOD == 0:
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
        write_png(paths["target"], target)
        write_png(paths["input"], degraded)
        write_png(paths["mask"], mask)
        rows.append({"image_id": image_id, "split": split, **{c: str(p) for c, p in paths.items()}})
    return _frame(rows, "celebahq", warn)


PARSERS: dict[str, Callable[..., pd.DataFrame]] = {
    "raindrop": parse_raindrop,
    "rain1400": parse_rain1400,
    "gopro": parse_gopro,
    "realblur": parse_realblur,
    "istd": parse_istd,
    "celebahq": parse_celebahq,
}
"""Layout parsers by the name the registry gives them (``parser:``); ``parser_args`` go to the call."""
