"""How images go through the network: the tile policy, a model of the memory one tile takes, and the plan (tile
side, overlap, batch) for each image.  ``lrdm restore`` and the ``evaluate`` rule both plan with it.  Torch-free, so
``lrdm --help`` builds its parser without importing torch.

**The tile policy** (issue 28).  Every backbone attends over all positions of its coarsest level, so on a whole
image the network's time grows with the square of the pixels, while the networks of this package train on crops
(the embedded default's on 32², whose coarsest level has 8 × 8 positions).  ``--tile auto`` therefore restores an
image in tiles of :func:`auto_tile` pixels, :data:`TILE_PER_TRAINING_SIDE` times the side the network trained on
(its ``crop``, or its ``resize``), within [:data:`MIN_AUTO_TILE`, :data:`MAX_AUTO_TILE`]; an image no larger than
that in either side is restored whole.  The measurement behind the factor is in ``docs/restoring.md`` (PSNR and
seconds per image, whole and in tiles, on Rain12: ``benchmarks/real_tiles.py``).

**The memory model.**  Attention runs through ``scaled_dot_product_attention``, whose fused kernels never hold the
score matrix, so restoring ``b`` tiles of ``h × w`` pixels (padded to the network's multiple) takes about ``b ·
pixel · h · w`` bytes above the loaded model, ``pixel = pixel_fixed + pixel_per_dim · dim``.  The constants
(:data:`MEMORY_MODELS`) were fitted to the growth of the peak resident memory (``VmHWM``) over the loaded
model's, restoring one square tile once on a CPU (``benchmarks/restore_memory.py BACKBONE TILE``; MiB, ``dim`` 16
with ``dim_mults`` (1, 2, 4) unless stated):

* conv_unet: 33 (128 px), 60 (256), 160 (512); dim 64: 59 (128);
* ddpm_unet: 89 (128), 279 (256);
* rddm_unetres: 76 (128), 259 (256), 1001 (512); dim 64 with (1, 2, 4, 8): 491 (256).

The model is within 0.9–1.3× of each and is used with the margin :data:`MEMORY_MARGIN`; the allocator's
:data:`BATCH_OVERHEAD` covers the small tiles.  The whole image's own buffers (input, blended sum, output) add
:data:`IMAGE_BYTES_PER_PIXEL` per pixel.

**The plan.**  With ``--tile auto`` (the default) an image within :func:`auto_tile` is restored whole if it fits;
otherwise it is restored in tiles of the largest side up to :func:`auto_tile` (:data:`TILE_CANDIDATES`) that fits,
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
TILE_PER_TRAINING_SIDE = 4
"""``--tile auto``'s side in multiples of the side the network trained on (``docs/restoring.md``)."""
MIN_AUTO_TILE = 64
"""Smallest side :func:`auto_tile` gives: below it the seams take a large share of every tile."""
MAX_AUTO_TILE = 512
"""Largest side :func:`auto_tile` gives (the paper's 256² networks get 512-pixel tiles)."""
AUTO = "auto"
"""The value of ``--tile`` and ``--overlap`` that lets the plan choose."""
TILE_CANDIDATES: tuple[int, ...] = (512, 448, 384, 320, 256, 192, 160, 128, 96, 64)
"""Tile sides ``--tile auto`` falls back to, largest first, where :func:`auto_tile` does not fit the memory bound."""
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
    """Bytes one restored tile takes: ``pixel_fixed + pixel_per_dim · dim`` per (padded) pixel."""

    pixel_fixed: float
    pixel_per_dim: float

    def tile_bytes(self, height: int, width: int, factor: int, dim: int) -> float:
        """Bytes for one ``height × width`` tile (padded to a multiple of ``factor``) of a network of width ``dim``."""
        padded_h, padded_w = math.ceil(height / factor) * factor, math.ceil(width / factor) * factor
        return (self.pixel_fixed + self.pixel_per_dim * dim) * padded_h * padded_w


MEMORY_MODELS: dict[str, MemoryModel] = {
    "conv_unet": MemoryModel(pixel_fixed=100.0, pixel_per_dim=35.0),
    "ddpm_unet": MemoryModel(pixel_fixed=3400.0, pixel_per_dim=80.0),
    "rddm_unetres": MemoryModel(pixel_fixed=3000.0, pixel_per_dim=75.0),
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
class Tiling:
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
    """What a restore's plan depends on: the backbone, its width ``dim``, its multiple ``factor`` and the side of
    the images it trained on (``training_side``: its config's ``resize``, else its ``crop``)."""

    backbone: str
    dim: int
    factor: int
    training_side: int

    @property
    def auto_tile(self) -> int:
        return auto_tile(self.training_side, self.factor)


def auto_tile(training_side: int, factor: int) -> int:
    """``--tile auto``'s side for a network trained on ``training_side``-pixel images whose sides must divide by
    ``factor``: :data:`TILE_PER_TRAINING_SIDE` times ``training_side``, within [:data:`MIN_AUTO_TILE`,
    :data:`MAX_AUTO_TILE`], rounded down to a multiple of ``factor``."""
    side = min(MAX_AUTO_TILE, max(MIN_AUTO_TILE, TILE_PER_TRAINING_SIDE * training_side))
    return max(factor, side // factor * factor)


def _fits(model: MemoryModel, shape: NetworkShape, height: int, width: int, budget: float, batch: int) -> int:
    """The largest batch up to ``batch`` whose tiles of ``height × width`` fit in ``budget`` bytes (0: none)."""
    one = MEMORY_MARGIN * model.tile_bytes(height, width, shape.factor, shape.dim)
    return batch if one <= 0 or math.isinf(budget) else min(batch, int(budget // one))


@dataclass(frozen=True)
class TileRequest:
    """What the user asked for: ``tile`` (:data:`AUTO`, a side in pixels, or None for whole images), ``overlap``
    (:data:`AUTO` or pixels) and the most images (or tiles) per forward pass, ``batch``."""

    tile: int | str | None = AUTO
    overlap: int | str = AUTO
    batch: int = DEFAULT_BATCH


def choose_tiling(
    height: int, width: int, shape: NetworkShape, budget: float, request: TileRequest, name: str = "image"
) -> Tiling:
    """The plan for an image of ``height × width`` within ``budget`` bytes above the loaded model (``math.inf``:
    the tile policy alone, as the evaluation plans on a GPU).

    Raises :class:`lrdm.errors.MemoryBudgetError` naming ``name`` when nothing fits, ``ValueError`` for an overlap
    not smaller than the tile."""
    model = memory_model(shape.backbone)
    tile, overlap, batch = request.tile, request.overlap, request.batch
    room = budget - BATCH_OVERHEAD - IMAGE_BYTES_PER_PIXEL * height * width

    def planned(side: int | None) -> Tiling | None:
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
        return Tiling(side, lap, fitting, used)

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
    largest = shape.auto_tile
    if max(height, width) <= largest and (plan := planned(None)) is not None:
        return plan
    sides = (largest, *(side for side in TILE_CANDIDATES if side < largest))
    for side in sides:
        if (plan := planned(side)) is not None:
            return plan
    raise MemoryBudgetError(
        _over(name, height, width, f"even in {sides[-1]}-pixel tiles", need(sides[-1]), budget, smaller_tile=False)
    )


def _over(name: str, height: int, width: int, how: str, need: float, budget: float, smaller_tile: bool = True) -> str:
    advice = "raise --max-memory" + (" or choose a smaller --tile" if smaller_tile else "")
    return (
        f"{name}: {width}×{height} cannot be restored {how} within --max-memory: it needs ~{format_bytes(need)}, "
        f"~{format_bytes(budget)} is left beside the model; {advice}"
    )
