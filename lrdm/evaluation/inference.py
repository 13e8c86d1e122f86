"""How a trained network restores images of any size: whole, or in overlapping tiles.  The one path that
``lrdm restore``, the ``evaluate`` rule and the restoration grids share, so a test set is scored exactly as a
user's photos are restored (issue 28).

* :class:`Restorer` is a loaded run (network, process, device) and how it samples (:class:`Sampling`: steps, seed,
  ``eta`` and the sampler of :data:`lrdm.core.samplers.SAMPLERS`).
* :func:`restore` runs the sampler on a batch of images of one size, padded to the network's multiple (reflect
  padding; a side shorter than the multiple, down to one pixel, is first padded by repeating its edge) and cropped
  back.
* :func:`restore_tiled` restores one image in tiles (:func:`tile_spans`: the fewest tiles of at most ``tile``
  pixels a side, spread evenly, all of one size), ``plan.batch`` tiles at a time, cross-faded with
  :func:`blend_weights`.  Tiles keep the time per pixel constant: the network's cost per tile is fixed, while on a
  whole image its coarsest-level attention grows with the square of the pixels.
* :func:`restore_with_tiling` does either, as a :class:`lrdm.evaluation.tiling.Tiling` says.

The start noise of image ``number`` comes from :func:`lrdm.core.sampling.image_generator` when it is restored
whole, and that of its tile ``j`` from :func:`tile_generator`, so no output depends on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from lrdm.core.process import Process
from lrdm.core.samplers import DEFAULT_SAMPLER, SAMPLER_KEY, Sampler, SamplerOptions, check_sampler_name, sampler_for
from lrdm.core.sampling import Generators, image_generator
from lrdm.data.paired import to_model_space
from lrdm.errors import NonFiniteOutputError
from lrdm.evaluation.tiling import NetworkShape, Tiling
from lrdm.files import stable_key
from lrdm.training.rundir import CHANNELS_LAST_DEVICES

Entry = TypeVar("Entry")
"""Whatever :func:`same_size_batches` groups (evaluation entries, image numbers)."""
TILED = "tiled"
"""The batch key of an image restored in tiles (:func:`batches_by_tiling`)."""


@dataclass(frozen=True)
class Sampling:
    """How each image is sampled: ``steps`` sampling steps, the ``seed`` of the start noise, the DDIM ``eta``, and
    the ``sampler`` (a name of :data:`lrdm.core.samplers.SAMPLER_NAMES`; config key ``sampling.sampler``)."""

    steps: int
    seed: int = 0
    eta: float = 0.0
    sampler: str = DEFAULT_SAMPLER
    sampler_key: str = field(default=SAMPLER_KEY, compare=False)
    """Where the sampler's name came from, for errors: the config key, or ``--sampler``."""

    def __post_init__(self) -> None:
        check_sampler_name(self.sampler, self.sampler_key)

    @property
    def options(self) -> SamplerOptions:
        """The sampler's per-call options."""
        return SamplerOptions(eta=self.eta)

    def sampler_for(self, process: Process) -> Sampler:
        """The table entry this sampling uses for ``process`` (its ``name``): :func:`lrdm.core.samplers.sampler_for`
        (a sampler of another process raises :class:`lrdm.errors.ConfigError` naming :attr:`sampler_key`)."""
        return sampler_for(self.sampler, process.name, self.sampler_key)


@dataclass(frozen=True)
class Restorer:
    """A loaded run ready to restore: its ``network`` and ``process`` (:func:`lrdm.training.rundir.load_model`),
    the ``device`` they are on, how each image is sampled (``sampling``) and the ``model`` file they came from
    (named when a restored image is not finite).  A sampler the table does not hold for the run's process is refused
    here, before any image is restored (:func:`lrdm.core.samplers.sampler_for`)."""

    network: Any
    process: Process
    device: torch.device
    sampling: Sampling
    model: str | Path = "the network"

    def __post_init__(self) -> None:
        self.sampler  # noqa: B018 (resolved here, once: a wrong sampler is refused before any image)

    @cached_property
    def sampler(self) -> Sampler:
        """The table entry that restores every image and tile (:meth:`Sampling.sampler_for`)."""
        return self.sampling.sampler_for(self.process)


def check_finite(restored: torch.Tensor, model_path: str | Path, image: str) -> torch.Tensor:
    """``restored`` unchanged, or :class:`NonFiniteOutputError` naming the model and the image(s): the one check,
    in :func:`restore_with_tiling`, of what the network gave back to ``evaluate`` and ``lrdm restore``."""
    if not bool(torch.isfinite(restored).all()):
        raise NonFiniteOutputError(
            f"model {model_path} restored {image} to NaN or inf values: its weights are probably diverged; retrain "
            "the run"
        )
    return restored


def pad_to_multiple(x: torch.Tensor, factor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pads ``(B, C, H, W)`` on the bottom/right so H and W divide by ``factor`` -> the padded tensor and the
    original ``(H, W)``.  Sides shorter than ``factor`` are first extended by repeating their last row/column
    (reflect padding needs a side longer than its padding); the rest is reflect padding."""
    height, width = x.shape[-2:]
    short_h, short_w = max(0, factor - height), max(0, factor - width)
    if short_h or short_w:
        x = F.pad(x, (0, short_w, 0, short_h), mode="replicate")
    pad_h, pad_w = -x.shape[-2] % factor, -x.shape[-1] % factor
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x, (height, width)


@torch.inference_mode()
def restore(restorer: Restorer, x_in: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """Restores ``x_in`` ``(B, 3, H, W)`` in [-1, 1] of any size with ``restorer``'s sampler -> ``(B, 3, H, W)`` in
    [-1, 1], the whole batch at once under ``torch.inference_mode``; on CUDA the input goes in channels_last, the
    layout of the network :func:`lrdm.training.rundir.load_model` returns there (its convolutions run fastest so)."""
    network, sampling = restorer.network, restorer.sampling
    padded, (height, width) = pad_to_multiple(x_in, network.downsample_factor)
    if padded.device.type in CHANNELS_LAST_DEVICES:
        padded = padded.contiguous(memory_format=torch.channels_last)
    schedule = restorer.process.schedule
    sampler = restorer.sampler.function
    out = sampler(network, padded, schedule, sampling.steps, generator=generator, options=sampling.options)
    return out[..., :height, :width]


def tile_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """``(start, size)`` of the tiles covering ``[0, length)``: the fewest of at most ``tile`` pixels whose
    neighbours share at least ``overlap`` pixels, all of one size (rounded up to ``multiple``, the network's, where
    that stays within ``tile``), spread evenly from 0 to ``length``.  ``length <= tile`` gives ``(0, length)``.

    Spreading them evenly, rather than stepping by ``tile - overlap`` and adding a last tile flush with the end,
    keeps the pixels restored twice near ``overlap`` per seam, so the time per pixel hardly depends on how the
    image's sides divide by the tile."""
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be in [0, tile={tile})")
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    # count·size >= length + (count - 1)·overlap, so consecutive starts, rounded, differ by at most size - overlap
    size = math.ceil((length + (count - 1) * overlap) / count)
    size = min(tile, math.ceil(size / multiple) * multiple)
    return [(round(i * (length - size) / (count - 1)), size) for i in range(count)]


def blend_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """``(height, width)`` weights of one tile: 1 inside, ramping down linearly to ``1 / (overlap + 1)`` over
    the ``overlap`` pixels at each edge, so that overlapping tiles cross-fade."""

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)).clamp(max=1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


def tile_generator(seed: int, image_number: int, tile_number: int, device: torch.device) -> torch.Generator:
    """Generator of the start noise of tile ``tile_number`` of image ``image_number`` (independent of the batch)."""
    return torch.Generator(device=device).manual_seed(stable_key(f"{seed}/{image_number}/{tile_number}"))


def restore_tiled(restorer: Restorer, image: np.ndarray, number: int, plan: Tiling) -> torch.Tensor:
    """Restores one uint8 ``(H, W, 3)`` image, number ``number``, in the tiles of ``plan`` (``plan.tile`` pixels at
    most a side, ``plan.overlap`` shared, ``plan.batch`` at a time), blended with :func:`blend_weights` ->
    ``(1, 3, H, W)`` in [-1, 1].  Tiles are converted from the uint8 image one batch at a time, so the float32
    copies of the whole image are only the blended sum and its weights."""
    if plan.tile is None:
        raise ValueError("restore_tiled needs a plan with a tile side; restore whole images with restore_with_tiling")
    device, seed = restorer.device, restorer.sampling.seed
    height, width = image.shape[:2]
    multiple = restorer.network.downsample_factor
    rows = tile_spans(height, plan.tile, plan.overlap, multiple)
    columns = tile_spans(width, plan.tile, plan.overlap, multiple)
    tile_h, tile_w = rows[0][1], columns[0][1]
    corners = [(top, left) for top, _ in rows for left, _ in columns]
    total = torch.zeros(1, image.shape[2], height, width, device=device)
    weight_sum = torch.zeros(height, width, device=device)
    weights = blend_weights(tile_h, tile_w, plan.overlap).to(device)
    for first in range(0, len(corners), plan.batch):
        chunk = list(enumerate(corners))[first : first + plan.batch]
        crops = to_model_space(np.stack([image[t : t + tile_h, c : c + tile_w] for _, (t, c) in chunk])).to(device)
        out = restore(restorer, crops, [tile_generator(seed, number, j, device) for j, _ in chunk])
        for k, (_, (t, c)) in enumerate(chunk):
            total[..., t : t + tile_h, c : c + tile_w] += out[k] * weights
            weight_sum[t : t + tile_h, c : c + tile_w] += weights
    return total.div_(weight_sum)


def restore_with_tiling(
    restorer: Restorer,
    images: Sequence[np.ndarray],
    numbers: Sequence[int],
    plan: Tiling,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Restores uint8 ``(H, W, 3)`` images as ``plan`` says -> ``(B, 3, H, W)`` in [-1, 1]: whole, all together
    (images of one size; image ``numbers[b]`` draws its noise from :func:`image_generator`), or one image in
    tiles (:func:`restore_tiled`).  NaN or inf in the result raises :class:`NonFiniteOutputError` naming
    ``restorer.model`` and the images (``names``, else their numbers)."""
    if plan.tile is not None:
        if len(images) != 1:
            raise ValueError(f"a tiled plan restores one image at a time, got {len(images)}")
        restored = restore_tiled(restorer, images[0], numbers[0], plan)
    else:
        device = restorer.device
        x_in = to_model_space(np.stack(images)).to(device)
        generators = [image_generator(restorer.sampling.seed, number, device) for number in numbers]
        restored = restore(restorer, x_in, generators)
    described = ", ".join(names) if names is not None else "images " + ", ".join(map(str, numbers))
    return check_finite(restored, restorer.model, described)


def network_shape(config: Any, network: Any) -> NetworkShape:
    """What the plan of a restore needs of a loaded run: its backbone, width, multiple and training side (the
    config's ``resize`` where set, else its ``crop``)."""
    return NetworkShape(config.backbone, config.dim, network.downsample_factor, config.resize or config.crop)


def same_size_batches(
    entries: Iterable[Entry], batch: int | Callable[[Hashable], int], size: Callable[[Entry], Hashable]
) -> Iterator[list[Entry]]:
    """Consecutive entries of one ``size``, ``batch`` at most at a time (a number, or a function of the size), in
    order (only one batch is held in memory)."""
    group: list[Entry] = []
    key: Hashable = None
    limit = 0
    for entry in entries:
        if group and (len(group) == limit or size(entry) != key):
            yield group
            group = []
        if not group:
            key = size(entry)
            limit = batch(key) if callable(batch) else batch
        group.append(entry)
    if group:
        yield group


def batches_by_tiling(
    entries: Iterable[Entry], plan_of: Callable[[Entry], Tiling], shape_of: Callable[[Entry], Hashable]
) -> Iterator[list[Entry]]:
    """Consecutive entries that :func:`restore_with_tiling` restores together, in order: whole images of one shape
    (and so one plan), ``plan.batch`` at a time; an image in tiles alone (its tiles are batched inside)."""

    def key(entry: Entry) -> tuple[Hashable, Tiling]:
        plan = plan_of(entry)
        return (TILED if plan.tile is not None else shape_of(entry), plan)

    return same_size_batches(entries, lambda key: 1 if key[0] == TILED else key[1].batch, key)
