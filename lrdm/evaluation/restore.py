"""Restore your own images (no ground truth) with a trained run: ``lrdm restore``.

One image or a folder of images, any size and aspect ratio, through the path the evaluation takes too
(:mod:`lrdm.evaluation.inference`: padded to the network's multiple and cropped back, whole or in overlapping
tiles).  How each image goes through the network follows the tile policy and fits the memory bound ``max_memory``
(:mod:`lrdm.evaluation.tiling`): whole or in tiles, and how many images of one size (or tiles of one image)
at a time.

The start noise of image ``i`` (its position in the sorted file list) comes from its own generator, so the outputs
do not depend on the batch size.  Outputs are PNGs with the inputs' stems, written atomically, in the
input's mode: a grayscale input (PIL modes ``L``, ``LA``, ``1``) comes back grayscale, the mean of the restored
channels.  An unreadable image, or one that does not fit the bound, is reported by name and skipped; the others
are still written.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from lrdm.core.device import pick_device
from lrdm.data.images import IMAGE_SUFFIXES, header_size, load_rgb
from lrdm.data.paired import from_model_space
from lrdm.errors import CheckpointError, DataError, MemoryBudgetError
from lrdm.evaluation.inference import Restorer, Sampling, batches_by_tiling, network_shape, restore_with_tiling
from lrdm.evaluation.tiling import (
    AUTO,
    DEFAULT_BATCH,
    DEFAULT_MAX_MEMORY,
    DEFAULT_OUT,
    DEFAULT_STEPS,
    TileRequest,
    Tiling,
    choose_tiling,
    format_bytes,
    parse_memory,
)
from lrdm.files import write_png
from lrdm.training.rundir import load_model

__all__ = ["AUTO", "DEFAULT_BATCH", "DEFAULT_MAX_MEMORY", "DEFAULT_OUT", "DEFAULT_STEPS"]
OUTPUT_SUFFIX = ".png"
GRAY_MODES = ("L", "LA", "1")
"""PIL modes of the inputs that are written back grayscale."""
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
"""Bytes per unit of ``ru_maxrss`` (kilobytes on Linux, bytes on macOS)."""
OUT_OF_MEMORY = "can't allocate memory"
"""What torch's CPU allocator says when an allocation fails (a ``RuntimeError``)."""


@dataclass
class RestoreSummary:
    """What :func:`restore_images` did: the PNGs written, the inputs skipped (path -> reason), how the tiled or
    batch-limited images went (path -> plan), the wall time."""

    written: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    plans: dict[Path, str] = field(default_factory=dict)
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
    """``path`` itself if it is a file, else the images directly inside the folder (sorted by name): every entry
    with an image suffix but a hidden one, so that one that is not a readable file (a dangling link, a folder) is
    named and skipped later rather than left out without a word.

    Raises ``FileNotFoundError`` for a missing path and ``DataError`` for a folder without images, or one
    where two images share a stem (their outputs would overwrite each other), naming them."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"--input {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    stems: dict[str, list[str]] = {}
    for file in files:
        stems.setdefault(file.stem, []).append(file.name)
    clashes = [names for names in stems.values() if len(names) > 1]
    if clashes:
        raise DataError(f"--input {path}: images share a stem (same output name): {clashes}")
    return files


def check_out_folder(out: Path, files: Sequence[Path]) -> None:
    """Refuses an ``--out`` that is an existing file, or a folder that is or contains one of the inputs (their
    restorations would overwrite them), naming it; raises ``FileExistsError``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: is an existing file; name a folder for the restored PNGs")
    target = out.resolve()
    inside = [file for file in files if target == file.resolve().parent or target in file.resolve().parents]
    if inside:
        raise FileExistsError(
            f"--out {out}: the folder holds the input image {inside[0]}"
            f"{f' (and {len(inside) - 1} more)' if len(inside) > 1 else ''}; restored PNGs would overwrite inputs, "
            "so name another folder"
        )


PROC_STATUS = Path("/proc/self/status")
"""Linux's per-process memory counters; its ``VmHWM`` line is the peak resident set of this program image."""


def resident_bytes() -> int:
    """Peak resident memory of this process so far, in bytes: ``VmHWM`` of :data:`PROC_STATUS` on Linux, where
    ``ru_maxrss`` would also count the peak of the process this one was started from (Linux keeps it across
    ``exec``), else ``resource.getrusage``."""
    if PROC_STATUS.is_file():
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT


def check_finite_weights(network: torch.nn.Module, model_path: Path) -> None:
    """Raises :class:`lrdm.errors.CheckpointError` naming the model file and the first non-finite tensor."""
    for name, tensor in network.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{model_path}: its weights hold NaN or inf values (first in {name!r})")


def as_input_mode(image: np.ndarray, gray: bool) -> np.ndarray:
    """A restored uint8 RGB image in its input's mode: grayscale inputs get the rounded mean of the channels."""
    if not gray:
        return image
    return np.rint(image.astype(np.float32).mean(axis=2)).astype(np.uint8)


def is_gray(path: Path) -> bool:
    """Whether the image file is grayscale (:data:`GRAY_MODES`); reads the header only."""
    with Image.open(path) as im:
        return im.mode in GRAY_MODES


@dataclass(frozen=True)
class RestoreOptions:
    """How ``lrdm restore`` restores: ``sampling`` (steps, seed of the per-image noise, ``eta``, sampler;
    :class:`lrdm.evaluation.inference.Sampling`), ``batch`` (the most images of one size, or tiles, restored
    together), ``device``, ``tile`` (:data:`AUTO`, chosen to fit ``max_memory``; a side in pixels; or None, whole),
    ``overlap`` (:data:`AUTO` or pixels), ``max_memory`` (bytes, or text such as ``"4G"``, for the whole process:
    :mod:`lrdm.evaluation.tiling`) and ``progress`` (a bar over the images)."""

    sampling: Sampling = Sampling(DEFAULT_STEPS)
    batch: int = DEFAULT_BATCH
    device: str = "auto"
    tile: int | str | None = AUTO
    overlap: int | str = AUTO
    max_memory: int | str = DEFAULT_MAX_MEMORY
    progress: bool = True


def restore_images(
    model_path: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out: str | os.PathLike[str] = DEFAULT_OUT,
    options: RestoreOptions = RestoreOptions(),
    on_plan: Callable[[Path, str], None] | None = None,
) -> RestoreSummary:
    """Restores the image or folder ``inputs`` with the run ``model_path`` into ``out/<stem>.png`` as ``options``
    say (:class:`RestoreOptions`).

    Unreadable images, and images that do not fit ``options.max_memory``, are skipped and listed in the summary's
    ``failed``; ``on_plan(path, text)`` hears how each tiled or batch-limited image goes.  The output folder is
    checked (:func:`check_out_folder`) before the model is loaded."""
    batch, tile, overlap, max_memory = options.batch, options.tile, options.overlap, options.max_memory
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    if tile not in (None, AUTO) and int(tile) < 1:
        raise ValueError(f"--tile must be a positive number of pixels or {AUTO!r}, got {tile}")
    if overlap != AUTO and int(overlap) < 0:
        raise ValueError(f"--overlap must be at least 0, got {overlap}")
    bound = parse_memory(max_memory) if isinstance(max_memory, str) else int(max_memory)
    files = list_images(inputs)
    out, model_path = Path(out), Path(model_path)
    check_out_folder(out, files)
    dev = pick_device(options.device)
    config, network, process = load_model(model_path, dev)
    restorer = Restorer(network, process, dev, options.sampling, model_path)
    check_finite_weights(network, model_path)
    budget = bound - resident_bytes()
    if budget <= 0:
        raise MemoryBudgetError(
            f"--max-memory {format_bytes(bound)}: the process holds {format_bytes(resident_bytes())} once "
            f"{model_path} is loaded; raise --max-memory"
        )
    shape = network_shape(config, network)
    request = TileRequest(tile, overlap, batch)
    summary = RestoreSummary()
    began = time.perf_counter()
    plans: dict[Path, Tiling] = {}
    groups: dict[tuple[int, int] | None, list[int]] = {}
    shapes: dict[int, tuple[int, int]] = {}
    for number, file in enumerate(files):
        try:
            height, width = header_size(file)
            plan = choose_tiling(height, width, shape, budget, request, name=str(file))
        except (DataError, MemoryBudgetError) as err:
            summary.failed[file] = str(err)
            continue
        plans[file] = plan
        if plan.tile is not None or plan.batch < batch:
            summary.plans[file] = plan.describe(height, width)
            if on_plan is not None:
                on_plan(file, summary.plans[file])
        shapes[number] = (height, width)
        groups.setdefault(None if plan.tile is not None else (height, width), []).append(number)
    bar = tqdm(total=len(files), desc="restore", unit="img", disable=not options.progress)
    bar.update(len(summary.failed))
    ordered = [number for numbers in groups.values() for number in numbers]  # images of one size side by side
    for chunk in batches_by_tiling(ordered, lambda number: plans[files[number]], shapes.__getitem__):
        images, ok, gray = [], [], []
        for number in chunk:
            try:
                images.append(load_rgb(files[number]))
                gray.append(is_gray(files[number]))
                ok.append(number)
            except DataError as err:
                summary.failed[files[number]] = str(err)
                bar.update(1)
        if not ok:
            continue
        plan = plans[files[ok[0]]]
        try:
            restored = restore_with_tiling(restorer, images, ok, plan, [files[number].name for number in ok])
        except RuntimeError as err:  # torch's allocator: the memory model was short for this image
            if OUT_OF_MEMORY not in str(err):
                raise
            how = plan.describe(*images[0].shape[:2])
            for number in ok:
                summary.failed[files[number]] = f"{files[number]}: out of memory ({how}); lower --max-memory"
            bar.update(len(ok))
            continue
        for number, image, is_grayscale in zip(ok, from_model_space(restored.cpu()), gray):
            path = out / (files[number].stem + OUTPUT_SUFFIX)
            write_png(path, as_input_mode(image, is_grayscale))
            summary.written.append(path)
        bar.update(len(ok))
    bar.close()
    summary.seconds = time.perf_counter() - began
    return summary
