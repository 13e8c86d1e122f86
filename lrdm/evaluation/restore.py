"""Restore your own images (no ground truth) with a trained run: ``lrdm restore``.

One image or a folder of images, any size and aspect ratio: each image is padded to the network's multiple and
cropped back (:func:`lrdm.evaluation.evaluate.restore`).  Images larger than a tile in either side are restored
in overlapping tiles of :data:`DEFAULT_TILE` pixels, blended with weights that ramp down linearly over the
:data:`DEFAULT_OVERLAP` pixels at each tile edge (``tile=None`` turns tiling off).  Images of the same size are
restored ``batch`` at a time (tiles of one image too).

The start noise of image ``i`` (its position in the sorted file list) comes from its own generator
(:func:`lrdm.evaluation.evaluate.image_generator`; tile ``j`` of a tiled image from :func:`tile_generator`), so
the outputs do not depend on the batch size.  Outputs are PNGs with the inputs' stems, written atomically.
An unreadable image is reported by name and skipped; the others are still written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lrdm.data.images import IMAGE_SUFFIXES, header_size, load_rgb
from lrdm.data.paired import to_model_space
from lrdm.errors import DataError
from lrdm.evaluation.evaluate import image_generator, pick_device, restore
from lrdm.evaluation.metrics import to_uint8
from lrdm.files import stable_key, write_png
from lrdm.training.trainer import load_model

DEFAULT_STEPS = 5
DEFAULT_BATCH = 4
"""Images (or tiles) restored together."""
DEFAULT_TILE = 512
"""Side in pixels of the tiles that an image larger than this (in either side) is restored in."""
DEFAULT_OVERLAP = 64
"""Pixels shared by neighbouring tiles; the blending weights ramp down linearly across them."""
DEFAULT_OUT = "restored"
OUTPUT_SUFFIX = ".png"


@dataclass
class RestoreSummary:
    """What :func:`restore_images` did: the PNGs written, the inputs skipped (path -> reason), the wall time."""

    written: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else float("nan")

    def line(self, out: Path) -> str:
        """The one-line summary the command prints."""
        rate = f"{self.images_per_s:.2f} images/s"
        text = f"restored {len(self.written)} images to {out} in {self.seconds:.1f} s ({rate})"
        if self.failed:
            text += f"; {len(self.failed)} skipped: {', '.join(sorted(p.name for p in self.failed))}"
        return text


def list_images(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` itself if it is a file, else the images directly inside the folder (sorted by name).

    Raises ``FileNotFoundError`` for a missing path and ``DataError`` for a folder without images, or one
    where two images share a stem (their outputs would overwrite each other), naming them."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"--input {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    stems: dict[str, list[str]] = {}
    for file in files:
        stems.setdefault(file.stem, []).append(file.name)
    clashes = [names for names in stems.values() if len(names) > 1]
    if clashes:
        raise DataError(f"--input {path}: images share a stem (same output name): {clashes}")
    return files


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels; the
    last tile ends at ``length``.  ``length <= tile`` gives one tile at 0."""
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def blend_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """``(height, width)`` weights of one tile: 1 inside, ramping down linearly to ``1 / (overlap + 1)`` over
    the ``overlap`` pixels at each edge, so that overlapping tiles cross-fade."""

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)).clamp(max=1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


def needs_tiles(size: Sequence[int], tile: int | None) -> bool:
    """Whether an image of ``(height, width)`` is restored in tiles: a side over ``tile`` (``None``: never)."""
    return tile is not None and max(size) > tile


def tile_generator(seed: int, image_number: int, tile_number: int, device: torch.device) -> torch.Generator:
    """Generator of the start noise of tile ``tile_number`` of image ``image_number`` (independent of the batch)."""
    return torch.Generator(device=device).manual_seed(stable_key(f"{seed}/{image_number}/{tile_number}"))


def restore_batch(
    network,
    process,
    images: Sequence[np.ndarray],
    numbers: Sequence[int],
    steps: int,
    seed: int,
    device: torch.device,
    eta: float = 0.0,
) -> list[np.ndarray]:
    """Restores uint8 ``(H, W, 3)`` images of one size together; image ``numbers[b]`` draws its noise from
    :func:`image_generator` -> uint8 images."""
    x_in = to_model_space(np.stack(images)).to(device)
    generators = [image_generator(seed, number, device) for number in numbers]
    out = restore(network, process, x_in, steps, eta=eta, generator=generators)
    return list(to_uint8(out.cpu()))


def restore_tiled(
    network,
    process,
    image: np.ndarray,
    number: int,
    steps: int,
    seed: int,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = DEFAULT_BATCH,
    eta: float = 0.0,
) -> np.ndarray:
    """Restores one uint8 image in overlapping ``tile × tile`` tiles (``batch`` at a time), blended with
    :func:`blend_weights` -> uint8 image of the same size."""
    height, width = image.shape[:2]
    tile_h, tile_w = min(tile, height), min(tile, width)
    corners = [(top, left) for top in tile_starts(height, tile, overlap) for left in tile_starts(width, tile, overlap)]
    x_in = to_model_space(image)[None].to(device)
    total = torch.zeros(1, x_in.shape[1], height, width, device=device)
    weight_sum = torch.zeros(height, width, device=device)
    weights = blend_weights(tile_h, tile_w, overlap).to(device)
    for first in range(0, len(corners), batch):
        chunk = list(enumerate(corners))[first : first + batch]
        crops = torch.cat([x_in[..., t : t + tile_h, c : c + tile_w] for _, (t, c) in chunk])
        generators = [tile_generator(seed, number, j, device) for j, _ in chunk]
        out = restore(network, process, crops, steps, eta=eta, generator=generators)
        for k, (_, (t, c)) in enumerate(chunk):
            total[..., t : t + tile_h, c : c + tile_w] += out[k] * weights
            weight_sum[t : t + tile_h, c : c + tile_w] += weights
    return to_uint8((total / weight_sum).cpu())[0]


def restore_images(
    model_path: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out: str | os.PathLike[str] = DEFAULT_OUT,
    steps: int = DEFAULT_STEPS,
    batch: int = DEFAULT_BATCH,
    device: str = "auto",
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    seed: int = 0,
    eta: float = 0.0,
    progress: bool = True,
) -> RestoreSummary:
    """Restores the image or folder ``inputs`` with the run ``model_path`` into ``out/<stem>.png``.

    Same-size images go ``batch`` at a time; an image with a side over ``tile`` is restored in tiles
    (``tile=None``: whole).  Unreadable images are skipped and listed in the summary's ``failed``."""
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    if tile is not None and not 0 <= overlap < tile:
        raise ValueError(f"--overlap must be in [0, tile={tile}), got {overlap}")
    files = list_images(inputs)
    out = Path(out)
    dev = pick_device(device)
    _, network, process = load_model(model_path, dev)
    summary = RestoreSummary()
    began = time.perf_counter()
    groups: dict[tuple[int, int] | None, list[int]] = {}
    for number, file in enumerate(files):
        try:
            size = header_size(file)
        except DataError:
            size = None  # read once more below, where the failure is recorded
        alone = size is None or needs_tiles(size, tile)  # tiled, or unreadable header: one at a time
        groups.setdefault(None if alone else size, []).append(number)
    bar = tqdm(total=len(files), desc="restore", unit="img", disable=not progress)
    for size, numbers in groups.items():
        chunk_size = 1 if size is None else batch
        for first in range(0, len(numbers), chunk_size):
            images, ok = [], []
            for number in numbers[first : first + chunk_size]:
                try:
                    images.append(load_rgb(files[number]))
                    ok.append(number)
                except DataError as err:
                    summary.failed[files[number]] = str(err)
                    bar.update(1)
            if not ok:
                continue
            if needs_tiles(images[0].shape[:2], tile):
                restored = [
                    restore_tiled(network, process, images[0], ok[0], steps, seed, dev, tile, overlap, batch, eta)
                ]
            else:
                restored = restore_batch(network, process, images, ok, steps, seed, dev, eta)
            for number, image in zip(ok, restored):
                path = out / (files[number].stem + OUTPUT_SUFFIX)
                write_png(path, image)
                summary.written.append(path)
            bar.update(len(ok))
    bar.close()
    summary.seconds = time.perf_counter() - began
    return summary
