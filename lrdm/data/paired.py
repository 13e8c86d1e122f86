"""The torch side of the data: model-space conversion, the paired dataset and batch drawing.

Images in model space are ``float32`` tensors ``(3, H, W)`` (or ``(B, 3, H, W)``) in ``[-1, 1]``:
``x = uint8 / 127.5 - 1``. Masks are ``float32`` ``(1, H, W)`` in ``{0, 1}``. Randomness (crops, flips)
comes from explicit ``torch.Generator`` objects, so a killed and resumed run sees the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lrdm.data.images import RGB_CHANNELS, UINT8_MAX, load_mask, load_rgb
from lrdm.data.index import (
    PATH_COLUMNS,
    REQUIRED_INDEX_COLUMNS,
    SHA_COLUMN,
    is_null,
    read_index,
    resolve_paths,
    verify_file,
)
from lrdm.errors import DataError, IndexSchemaError

#: uint8 -> [-1, 1] mapping is ``x / MODEL_SCALE - 1``.
MODEL_SCALE = UINT8_MAX / 2.0  # 127.5
#: Probability of a horizontal flip when ``flip=True``.
FLIP_PROBABILITY = 0.5
#: The official RDDM data pipeline pads images with black (bottom/right) to a multiple of this before resizing.
OFFICIAL_PAD_BLOCK = 8


def official_resize(img: np.ndarray, size: int, resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """The official RDDM whole-image training view (``crop_patch=False``): uint8 ``(H, W, C)`` (or
    uint8 ``(H, W)`` mask) padded with zeros at the bottom and right to at least ``size`` and to a multiple of
    :data:`OFFICIAL_PAD_BLOCK`, then resized to ``(size, size)`` (PIL bicubic for images) -> same dtype."""
    h, w = img.shape[:2]
    padded_h, padded_w = (-(-max(extent, size) // OFFICIAL_PAD_BLOCK) * OFFICIAL_PAD_BLOCK for extent in (h, w))
    padded = np.zeros((padded_h, padded_w, *img.shape[2:]), dtype=img.dtype)
    padded[:h, :w] = img
    return np.asarray(Image.fromarray(padded).resize((size, size), resample))


def to_model_space(img: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` or ``(B, H, W, C)`` in ``[0, 255]`` -> float32 ``(C, H, W)`` /
    ``(B, C, H, W)`` tensor in ``[-1, 1]`` via ``x / 127.5 - 1``."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 (H, W, C) or (B, H, W, C), got shape {arr.shape} dtype {arr.dtype}")
    t = torch.from_numpy(arr.astype(np.float32))  # astype copies: input may be read-only
    t = t.movedim(-1, -3).contiguous()  # channels first
    return t / MODEL_SCALE - 1.0


def model_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model-space image tensor -> float32 tensor in [0, 1] on the same device, channels first:
    ``(clamp(x, -1, 1) + 1) / 2``, neither rounded nor moved.

    The one check and mapping behind :func:`from_model_space` and :func:`to_unit_float`.

    Args:
        x: float tensor ``(3, H, W)`` or ``(B, 3, H, W)``, any device and float dtype.
    Raises:
        TypeError: ``x`` is not a torch.Tensor.
        ValueError: wrong layout, or NaN / inf values (a diverged sample should be loud).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4) or x.shape[-3] != RGB_CHANNELS:
        raise ValueError(f"expected shape (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("tensor contains NaN or inf values")
    return (x.clamp(-1.0, 1.0) + 1.0) / 2.0


def from_model_space(x: torch.Tensor) -> np.ndarray:
    """Model-space image tensor -> uint8 channels-last numpy image: ``round((clamp(x, -1, 1) + 1) / 2 * 255)``
    (ties to even, as ``torch.round``); the one conversion to uint8 of the package.

    Args:
        x: float tensor ``(3, H, W)`` or ``(B, 3, H, W)`` in [-1, 1] (clamped first), any device.
    Returns:
        uint8 ``(H, W, 3)`` or ``(B, H, W, 3)``.
    Raises:
        TypeError, ValueError: as :func:`model_to_unit`.
    """
    return torch.round(model_to_unit(x) * UINT8_MAX).to(torch.uint8).movedim(-3, -1).cpu().numpy()


def to_unit_float(x: torch.Tensor) -> np.ndarray:
    """Model-space image tensor -> float32 channels-last numpy image in [0, 1] (clamped, not rounded): the
    float prediction that the ``lrdm_y`` protocol scores unrounded.

    Args:
        x: float tensor ``(3, H, W)`` or ``(B, 3, H, W)``, any device.
    Returns:
        float32 ``(H, W, 3)`` or ``(B, H, W, 3)``.
    Raises:
        TypeError, ValueError: as :func:`model_to_unit`.
    """
    return model_to_unit(x).movedim(-3, -1).cpu().numpy()


def _mask_to_model_space(mask: np.ndarray) -> torch.Tensor:
    """bool ``(H, W)`` -> float32 ``(1, H, W)`` in ``{0, 1}``."""
    return torch.from_numpy(mask.astype(np.float32))[None]


# --------------------------------------------------------------------------------------
# Torch dataset
# --------------------------------------------------------------------------------------


class PairedImageDataset(torch.utils.data.Dataset):
    """Degraded/clean image pairs of one split of an index.

    Item ``i`` is a dict with ``input`` and ``target``: float32 ``(3, H, W)`` in ``[-1, 1]``;
    ``image_id``: str; and ``mask``: float32 ``(1, H, W)`` in ``{0, 1}`` when the row has
    a mask.

    Randomness (crop positions, flips) is *never* drawn from global state: use
    :meth:`get_item` / :meth:`get_batch` with an explicit ``torch.Generator`` or
    :func:`sample_batch`.  Plain ``dataset[i]`` is deterministic: a centre crop when
    ``crop`` is set, full image otherwise, no flip (evaluation view).

    Args:
        index: DataFrame from :func:`read_index` (absolute paths; relative ones are taken relative to the
            current folder: :func:`lrdm.data.index.resolve_paths` resolves them against another) or a path to
            an index file.
        split: Split to use (``train`` / ``test``).
        crop: Square crop side, or ``None`` for full images.
        resize: Side of the official whole-image view (:func:`official_resize`), instead of a crop.
        flip: Random horizontal flips (only when a generator is given).
        residual_scale: ``(low, high)``: with a generator, the input becomes ``I_0 + λ (I_in - I_0)`` with
            ``λ ~ U(low, high)`` drawn per item, the same degradation made lighter (``λ < 1``) or stronger; None: off.
        cache: Keep decoded uint8 images in memory after the first read.

    Raises:
        ValueError: Unknown split / empty selection, or invalid ``crop``.
    """

    def __init__(
        self,
        index: pd.DataFrame | str | os.PathLike[str],
        split: str,
        crop: int | None = None,
        flip: bool = False,
        cache: bool = False,
        resize: int | None = None,
        residual_scale: tuple[float, float] | None = None,
    ) -> None:
        if isinstance(index, pd.DataFrame):
            missing = [col for col in REQUIRED_INDEX_COLUMNS if col not in index.columns]
            if missing:
                raise IndexSchemaError(f"index DataFrame is missing required column(s) {missing}")
            df = resolve_paths(index, Path.cwd())
            origin = index.attrs.get("index_path", "<DataFrame>")
        else:
            df = read_index(index)
            origin = str(index)
        rows = df[df["split"] == split].reset_index(drop=True)
        if rows.empty:
            raise ValueError(f"split {split!r} has no rows in {origin}; splits present: {sorted(df['split'].unique())}")
        if crop is not None and crop < 1:
            raise ValueError(f"crop must be a positive int or None, got {crop}")
        if resize is not None and (resize < 1 or crop is not None):
            raise ValueError(f"resize must be a positive int and excludes crop, got resize={resize}, crop={crop}")
        self.resize = resize
        self.rows = rows
        self.origin = origin
        self.split = split
        self.crop = crop
        self.flip = flip
        self.residual_scale = residual_scale
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self.has_mask = "mask" in rows.columns and bool(rows["mask"].notna().all())

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_ids(self) -> list[str]:
        return [str(x) for x in self.rows["image_id"]]

    def load_pair(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Decoded ``(input, target, mask)``: uint8 ``(H, W, 3)`` x2 and bool ``(H, W)`` or None.

        Each file is checked against its sha256 in the index the first time this process reads it
        (:func:`lrdm.data.index.verify_file`).

        Raises:
            ValueError: Input, target (and mask) sizes differ (names the files and sizes),
                or a file cannot be decoded; FileNotFoundError if missing.
            ChecksumError: A file differs from its sha256 in the index (names the file and both hashes).
        """
        if i in self._cache:
            return self._cache[i]
        row = self.rows.iloc[i]
        self.verify_row(row)
        inp, tgt = load_rgb(row["input"]), load_rgb(row["target"])
        if inp.shape != tgt.shape:
            raise DataError(
                f"size mismatch in pair {row['image_id']!r}: input {row['input']} is "
                f"{inp.shape[1]}x{inp.shape[0]} but target {row['target']} is {tgt.shape[1]}x{tgt.shape[0]}"
            )
        mask = None
        if "mask" in row.index and not is_null(row["mask"]):
            mask = load_mask(row["mask"])
            if mask.shape != inp.shape[:2]:
                raise DataError(
                    f"size mismatch in pair {row['image_id']!r}: mask {row['mask']} is "
                    f"{mask.shape[1]}x{mask.shape[0]} but input {row['input']} is {inp.shape[1]}x{inp.shape[0]}"
                )
        pair = (inp, tgt, mask)
        if self.cache:
            self._cache[i] = pair
        return pair

    def verify_row(self, row: pd.Series) -> None:
        """Checks the row's files against their sha256 in the index (once per file and process)."""
        for col in PATH_COLUMNS:
            if col in row.index and not is_null(row[col]):
                if not Path(row[col]).is_file():
                    raise FileNotFoundError(f"image file not found: {row[col]} (listed in {self.origin})")
                verify_file(row[col], row.get(SHA_COLUMN[col]), self.origin)

    def preload(self) -> None:
        """Decodes every pair into the cache now (needs ``cache=True``).

        DataLoader workers forked afterwards share these arrays copy-on-write; otherwise each worker would
        fill a cache of its own and hold another copy of the dataset.
        """
        if not self.cache:
            raise ValueError("preload() needs a dataset made with cache=True")
        for i in range(len(self)):
            self.load_pair(i)

    def get_item(self, i: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Item ``i``, cropped/flipped with randomness drawn only from ``generator``.

        Draw order per item (fixed, for resumability): crop top, crop left, flip, residual scale.
        Without a generator: centre crop, no flip, the input as it is.
        """
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        inp, tgt, mask = self.load_pair(i)
        if self.resize is not None:
            inp, tgt = official_resize(inp, self.resize), official_resize(tgt, self.resize)
            if mask is not None:
                mask = official_resize(mask.astype(np.uint8), self.resize, Image.Resampling.NEAREST).astype(bool)
        h, w = inp.shape[:2]
        top, left, flip = 0, 0, False
        if self.crop is not None:
            if h < self.crop or w < self.crop:
                row = self.rows.iloc[i]
                raise DataError(f"image {row['input']} ({w}x{h}) is smaller than the crop size {self.crop}")
            if generator is None:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
            else:
                top = int(torch.randint(0, h - self.crop + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - self.crop + 1, (1,), generator=generator))
            inp = inp[top : top + self.crop, left : left + self.crop]
            tgt = tgt[top : top + self.crop, left : left + self.crop]
            if mask is not None:
                mask = mask[top : top + self.crop, left : left + self.crop]
        if self.flip and generator is not None:
            flip = bool(torch.rand((1,), generator=generator) < FLIP_PROBABILITY)
        if flip:
            inp, tgt = inp[:, ::-1], tgt[:, ::-1]
            mask = mask[:, ::-1] if mask is not None else None
        target = to_model_space(tgt)
        degraded = to_model_space(inp)
        if self.residual_scale is not None and generator is not None:
            low, high = self.residual_scale
            scale = low + (high - low) * float(torch.rand((1,), generator=generator))
            degraded = target + scale * (degraded - target)
        item: dict[str, Any] = {
            "input": degraded,
            "target": target,
            "image_id": str(self.rows.iloc[i]["image_id"]),
        }
        if mask is not None:
            item["mask"] = _mask_to_model_space(mask)
        return item

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.get_item(i, generator=None)

    def get_batch(self, indices: Sequence[int], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Stack items into a batch: ``input``/``target`` ``(B, 3, h, w)``, ``mask`` ``(B, 1, h, w)``
        (only if every item has one), ``image_id`` list of str, ``index`` int64 ``(B,)``.

        Items are processed in order, each drawing from ``generator`` as in :meth:`get_item`.

        Raises:
            ValueError: Items have different sizes (no crop and unequal images).
        """
        items = [self.get_item(int(i), generator) for i in indices]
        shapes = {tuple(it["input"].shape) for it in items}
        if len(shapes) > 1:
            sizes = ", ".join(f"{it['image_id']}: {tuple(it['input'].shape[1:])}" for it in items)
            raise DataError(f"cannot batch images of different sizes ({sizes}); set crop or use batch size 1")
        batch: dict[str, Any] = {
            "input": torch.stack([it["input"] for it in items]),
            "target": torch.stack([it["target"] for it in items]),
            "image_id": [it["image_id"] for it in items],
            "index": torch.as_tensor([int(i) for i in indices], dtype=torch.int64),
        }
        if items and all("mask" in it for it in items):
            batch["mask"] = torch.stack([it["mask"] for it in items])
        return batch


def sample_batch(dataset: PairedImageDataset, batch_size: int, generator: torch.Generator) -> dict[str, Any]:
    """Draw a random training batch using only ``generator``.

    Draw order: ``batch_size`` indices (uniform, with replacement), then per item its crop
    offsets and flip (see :meth:`PairedImageDataset.get_item`).  Seeding the generator
    per step (e.g. ``torch.Generator().manual_seed(base_seed + step)``) makes a run that
    is killed and resumed at step ``s`` see exactly the same batches.

    Returns:
        Batch dict as in :meth:`PairedImageDataset.get_batch`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    indices = torch.randint(0, len(dataset), (batch_size,), generator=generator).tolist()
    return dataset.get_batch(indices, generator)
