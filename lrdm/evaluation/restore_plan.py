"""How ``lrdm restore`` fits in memory: its defaults, a model of the memory one tile takes, and the plan (tile side,
overlap, batch) for each image.  Torch-free, so ``lrdm --help`` builds its parser without importing torch.

**The memory model.**  Restoring ``b`` tiles of ``h × w`` pixels (padded to the network's multiple ``f``) takes
about ``b · (attention · N² + pixel · h · w)`` bytes above the loaded model, where ``N = (h/f)·(w/f)`` is the
number of positions at the network's coarsest level: every backbone attends over all of them there, so the score
matrix grows with the square of the tile's area.  ``pixel`` grows with the width ``dim``.  The constants
(:data:`MEMORY_MODELS`) were fitted to the growth of the peak resident memory (``ru_maxrss``) over the loaded
model's, restoring one square tile once on a CPU (``benchmarks/restore_memory.py BACKBONE TILE``; MiB, ``dim`` 16
with ``dim_mults`` (1, 2, 4), or 64 with (1, 2, 4, 8)):

* conv_unet, dim 16: 22 (64 px), 40 (128), 110 (192), 296 (256), 552 (256, batch 2), 677 (320), 1362 (384);
  dim 64: 81 (128);
* ddpm_unet, dim 16: 89 (128), 559 (256); dim 64: 109 (128);
* rddm_unetres, dim 16: 79 (128), 558 (256); dim 64: 100 (128).

The model is within 0.96–1.32× of each (the 64-pixel tile aside, whose 22 MiB are the allocator's
:data:`BATCH_OVERHEAD`) and is used with the margin :data:`MEMORY_MARGIN`.  The whole image's own buffers (input,
blended sum, output) add :data:`IMAGE_BYTES_PER_PIXEL` per pixel.

**The plan.**  With ``--tile auto`` (the default) an image no larger than :data:`DEFAULT_TILE` in either side is
restored whole if it fits; otherwise it is restored in the largest tile of :data:`TILE_CANDIDATES` that fits,
with an overlap of ``tile // OVERLAP_FRACTION`` unless ``--overlap`` is given.  The batch is the largest one up to
``--batch`` that fits.  An image that cannot fit even in the smallest tile, one at a time, is refused with
:class:`lrdm.errors.MemoryBudgetError` naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lrdm.errors import ConfigError, MemoryBudgetError
from lrdm.vocab import BACKBONES

DEFAULT_STEPS = 5
DEFAULT_BATCH = 4
"""Most images (or tiles) restored together; fewer where the memory bound asks for it."""
DEFAULT_TILE = 512
"""Largest tile side in pixels, and the largest side of an image restored whole under ``--tile auto``."""
AUTO = "auto"
"""The value of ``--tile`` and ``--overlap`` that lets the plan choose."""
TILE_CANDIDATES: tuple[int, ...] = (512, 448, 384, 320, 256, 192, 160, 128, 96, 64)
"""Tile sides ``--tile auto`` tries, largest first."""
OVERLAP_FRACTION = 8
"""``--overlap auto`` is the tile side divided by this (64 pixels for a 512-pixel tile)."""
DEFAULT_OUT = "restored"
DEFAULT_MAX_MEMORY = "4G"
"""Host memory the whole ``lrdm restore`` process may use (resident set size), model included."""

MEMORY_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
"""Suffixes of ``--max-memory`` (binary: ``4G`` is 4 GiB)."""
_MEMORY_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MemoryModel:
    """Bytes one restored tile takes: ``attention`` per squared coarsest-level position, ``pixel_fixed +
    pixel_per_dim · dim`` per pixel."""

    attention: float
    pixel_fixed: float
    pixel_per_dim: float

    def tile_bytes(self, height: int, width: int, factor: int, dim: int) -> float:
        """Bytes for one ``height × width`` tile (padded to a multiple of ``factor``) of a network of width ``dim``."""
        padded_h, padded_w = math.ceil(height / factor) * factor, math.ceil(width / factor) * factor
        positions = (padded_h // factor) * (padded_w // factor)
        return self.attention * positions**2 + (self.pixel_fixed + self.pixel_per_dim * dim) * padded_h * padded_w


MEMORY_MODELS: dict[str, MemoryModel] = {
    "conv_unet": MemoryModel(attention=16.0, pixel_fixed=600.0, pixel_per_dim=72.0),
    "ddpm_unet": MemoryModel(attention=20.0, pixel_fixed=3400.0, pixel_per_dim=80.0),
    "rddm_unetres": MemoryModel(attention=20.0, pixel_fixed=2600.0, pixel_per_dim=60.0),
}
"""Fitted per backbone (see the module docstring); one entry per name in :data:`lrdm.vocab.BACKBONES`."""
MEMORY_MARGIN = 1.25
"""Factor on the modelled bytes of the tiles (allocator slack, the sampler's few image-sized tensors)."""
BATCH_OVERHEAD = 32 * MEMORY_UNITS["M"]
"""Bytes a restore takes above the loaded model however small its tiles (the allocator's and the sampler's)."""
IMAGE_BYTES_PER_PIXEL = 64
"""Bytes per pixel of an image's own buffers while it is restored (uint8 input and output, the float32 blended
sum and weights, the float32 copies made converting them)."""


def parse_memory(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"``, ``"2GB"`` or a number of bytes -> bytes; bad text raises
    :class:`lrdm.errors.ConfigError` naming ``--max-memory``."""
    match = _MEMORY_RE.match(str(text))
    if not match:
        raise ConfigError(f"--max-memory {text!r}: expected a size such as 4G, 512M or 1.5G", key="max_memory")
    value = float(match["number"]) * MEMORY_UNITS[match["unit"].upper()]
    if value <= 0:
        raise ConfigError(f"--max-memory {text!r}: must be positive", key="max_memory")
    return int(value)


def format_bytes(value: float) -> str:
    """Bytes -> ``"3.2 GB"`` / ``"640 MB"`` (binary units, as ``--max-memory`` reads them)."""
    if value >= MEMORY_UNITS["G"]:
        return f"{value / MEMORY_UNITS['G']:.1f} GB"
    return f"{value / MEMORY_UNITS['M']:.0f} MB"


def memory_model(backbone: str) -> MemoryModel:
    """The fitted model of ``backbone``; an unknown name raises ``ValueError`` naming the valid ones."""
    if backbone not in MEMORY_MODELS:
        raise ValueError(f"no memory model for backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    return MEMORY_MODELS[backbone]


@dataclass(frozen=True)
class RestorePlan:
    """How one image is restored: whole (``tile`` None) or in ``tile``-pixel tiles sharing ``overlap`` pixels,
    ``batch`` images (or tiles) at a time, with the bytes that are expected above the loaded model."""

    tile: int | None
    overlap: int
    batch: int
    expected_bytes: float

    def describe(self, height: int, width: int) -> str:
        where = "whole" if self.tile is None else f"in {self.tile}-pixel tiles (overlap {self.overlap})"
        return f"{width}×{height} restored {where}, {self.batch} at a time, ~{format_bytes(self.expected_bytes)}"


@dataclass(frozen=True)
class NetworkShape:
    """What the memory of a restore depends on: the backbone, its width ``dim`` and its multiple ``factor``."""

    backbone: str
    dim: int
    factor: int


def _fits(model: MemoryModel, shape: NetworkShape, height: int, width: int, budget: float, batch: int) -> int:
    """The largest batch up to ``batch`` whose tiles of ``height × width`` fit in ``budget`` bytes (0: none)."""
    one = MEMORY_MARGIN * model.tile_bytes(height, width, shape.factor, shape.dim)
    return min(batch, int(budget // one)) if one > 0 else batch


def plan_restore(
    height: int,
    width: int,
    shape: NetworkShape,
    budget: float,
    batch: int = DEFAULT_BATCH,
    tile: int | str | None = AUTO,
    overlap: int | str = AUTO,
    name: str = "image",
) -> RestorePlan:
    """The plan for an image of ``height × width`` within ``budget`` bytes above the loaded model.

    ``tile``: :data:`AUTO`, a side in pixels, or None (whole).  ``overlap``: :data:`AUTO` or pixels.  Raises
    :class:`lrdm.errors.MemoryBudgetError` naming ``name`` when nothing fits, ``ValueError`` for an overlap not
    smaller than the tile."""
    model = memory_model(shape.backbone)
    room = budget - BATCH_OVERHEAD - IMAGE_BYTES_PER_PIXEL * height * width

    def planned(side: int | None) -> RestorePlan | None:
        h, w = (height, width) if side is None else (min(side, height), min(side, width))
        fitting = _fits(model, shape, h, w, room, batch)
        if fitting < 1:
            return None
        lap = 0 if side is None else (side // OVERLAP_FRACTION if overlap == AUTO else int(overlap))
        if side is not None and not 0 <= lap < side:
            raise ValueError(f"--overlap must be in [0, tile={side}), got {lap}")
        used = (
            BATCH_OVERHEAD
            + IMAGE_BYTES_PER_PIXEL * height * width
            + fitting * MEMORY_MARGIN * model.tile_bytes(h, w, shape.factor, shape.dim)
        )
        return RestorePlan(side, lap, fitting, used)

    def need(side: int | None) -> float:
        h, w = (height, width) if side is None else (min(side, height), min(side, width))
        image = BATCH_OVERHEAD + IMAGE_BYTES_PER_PIXEL * height * width
        return image + MEMORY_MARGIN * model.tile_bytes(h, w, shape.factor, shape.dim)

    if tile is None or (tile != AUTO and max(height, width) <= int(tile)):
        plan = planned(None)
        if plan is None:
            how = "whole (--no-tiles)" if tile is None else f"whole (it is within --tile {tile})"
            raise MemoryBudgetError(_over(name, height, width, how, need(None), budget))
        return plan
    if tile != AUTO:
        plan = planned(int(tile))
        if plan is None:
            raise MemoryBudgetError(_over(name, height, width, f"in {tile}-pixel tiles", need(int(tile)), budget))
        return plan
    if max(height, width) <= DEFAULT_TILE and (plan := planned(None)) is not None:
        return plan
    for side in TILE_CANDIDATES:
        if (plan := planned(side)) is not None:
            return plan
    smallest = TILE_CANDIDATES[-1]
    raise MemoryBudgetError(
        _over(name, height, width, f"even in {smallest}-pixel tiles", need(smallest), budget, False)
    )


def _over(name: str, height: int, width: int, how: str, need: float, budget: float, smaller_tile: bool = True) -> str:
    advice = "raise --max-memory" + (" or choose a smaller --tile" if smaller_tile else "")
    return (
        f"{name}: {width}×{height} cannot be restored {how} within --max-memory: it needs ~{format_bytes(need)}, "
        f"~{format_bytes(budget)} is left beside the model; {advice}"
    )
