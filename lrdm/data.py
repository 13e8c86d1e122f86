"""Paired image-restoration data: synthetic degradations, on-disk datasets, loaders.

The real benchmarks of the LRDM / RDDM papers (Rain100L/H, GoPro, ISTD, ...) cannot be
downloaded here, so the default data is *synthesised*: natural photographs bundled with
scikit-image are cut into square patches and degraded with rain streaks, linear motion
blur or cast shadows.  The degradations are "near-domain": the degraded input stays
close to the clean target and the residual ``input - target`` is sparse / structured,
which is the regime residual diffusion models are designed for.

Conventions used throughout this module

* Images on disk and in numpy are ``uint8`` RGB arrays of shape ``(H, W, 3)``, values
  in ``[0, 255]``.  Masks are ``uint8`` arrays of shape ``(H, W)`` with values
  ``{0, 255}`` on disk and ``bool`` in numpy.
* Images in model space are ``float32`` torch tensors of shape ``(3, H, W)`` (or
  ``(B, 3, H, W)``) with values in ``[-1, 1]``: ``x = uint8 / 127.5 - 1``.  Masks in
  model space are ``float32`` tensors ``(1, H, W)`` with values in ``{0, 1}``.
* All randomness is drawn from *explicit* generators (``numpy.random.Generator`` for
  synthesis, ``torch.Generator`` for batch sampling) so that results are reproducible
  and a training run can be killed and resumed exactly.

On-disk layout written by :func:`make_synthetic_dataset`::

    out_dir/
        index.parquet                       # one row per pair, see INDEX_COLUMNS
        manifest.json                       # generation parameters, train/test photos
        {split}/input/{image_id}.png
        {split}/target/{image_id}.png
        {split}/mask/{image_id}.png         # only for tasks that produce a mask

Paths in ``index.parquet`` are relative to the folder holding the index; :func:`read_index`
turns them into absolute paths.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage
from skimage import draw

from .errors import ChecksumError, DataError, ImageReadError, IndexSchemaError
from .hashing import sha256_file

__all__ = [
    "DEFAULT_TEST_SOURCES",
    "DEGRADATIONS",
    "INDEX_COLUMNS",
    "INDEX_FILENAME",
    "MANIFEST_FILENAME",
    "PHOTO_SOURCES",
    "REQUIRED_INDEX_COLUMNS",
    "ChecksumError",
    "DataError",
    "ImageReadError",
    "IndexSchemaError",
    "PairedImageDataset",
    "PhotoSource",
    "add_motion_blur",
    "add_rain",
    "add_shadow",
    "apply_degradation",
    "from_model_space",
    "get_degradation",
    "line_kernel",
    "load_mask",
    "load_rgb",
    "load_source_photo",
    "make_synthetic_dataset",
    "read_index",
    "sample_batch",
    "save_png_atomic",
    "sha256_file",
    "to_model_space",
    "verify_index",
]

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

UINT8_MAX = 255
#: uint8 -> [-1, 1] mapping is ``x / MODEL_SCALE - 1``.
MODEL_SCALE = UINT8_MAX / 2.0  # 127.5
RGB_CHANNELS = 3

INDEX_FILENAME = "index.parquet"
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

#: zlib level for PNGs; fixed so that outputs are byte-identical between runs.
PNG_COMPRESS_LEVEL = 6
#: Probability of a horizontal flip when ``flip=True``.
FLIP_PROBABILITY = 0.5

# Line kernel: samples per pixel of streak length (anti-aliased bilinear splatting).
LINE_KERNEL_SAMPLES_PER_PIXEL = 4

# Rain streak defaults (pixel units refer to the patch being degraded).
RAIN_DENSITY_RANGE = (0.0015, 0.004)  # fraction of pixels that seed a streak
RAIN_LENGTH_RANGE = (8.0, 20.0)  # streak length [px]
RAIN_MAX_TILT_DEG = 25.0  # streak deviation from vertical [deg], same for the image
RAIN_WIDTH_SIGMA = 0.5  # Gaussian widening across the streak [px]
RAIN_BRIGHTNESS_RANGE = (0.5, 1.0)  # per-streak peak brightness in [0, 1]
RAIN_OPACITY_RANGE = (
    0.5,
    0.8,
)  # blend weight of a full-brightness streak towards white

# Motion blur defaults.
BLUR_LENGTH_RANGE = (5.0, 13.0)  # blur trajectory length [px]
BLUR_ANGLE_RANGE_DEG = (0.0, 180.0)  # a line kernel is symmetric, 180 deg covers all

# Shadow defaults.
SHADOW_VERTEX_RANGE = (5, 9)  # number of polygon vertices (inclusive)
SHADOW_RADIUS_RANGE = (0.2, 0.45)  # polygon radius as a fraction of the short side
SHADOW_CENTER_MARGIN = 0.2  # centre kept this fraction of the side away from borders
SHADOW_FACTOR_RANGE = (0.35, 0.65)  # remaining brightness inside the shadow
SHADOW_COLOR_JITTER = 0.08  # relative per-channel spread of the darkening factor
SHADOW_EDGE_SIGMA_FRACTION = 0.02  # soft-edge Gaussian sigma, fraction of short side
SHADOW_MASK_THRESHOLD = 0.5  # soft alpha above which a pixel counts as shadow

# Synthetic dataset defaults.
DEFAULT_PATCH_SIZE = 128
DEFAULT_PATCHES_PER_IMAGE = 16  # train patches per source photograph
DEFAULT_TEST_PATCHES_PER_IMAGE = 10  # test patches per source photograph
DEFAULT_MAX_PHOTO_SIDE = 512  # photos are downscaled so their long side is at most this


# --------------------------------------------------------------------------------------
# Source photographs (bundled in the scikit-image wheel, no download needed)
# --------------------------------------------------------------------------------------


class PhotoSource:
    """A named RGB photograph shipped inside scikit-image (``skimage.data``).

    Args:
        name: Stable short name used in image ids and the ``source`` index column.
        loader: Name of the ``skimage.data`` function returning the photo.
        item: If the loader returns a tuple (``stereo_motorcycle``), the element to use.
    """

    def __init__(self, name: str, loader: str, item: int | None = None) -> None:
        self.name = name
        self.loader = loader
        self.item = item

    def load(self) -> np.ndarray:
        """Return the photograph as uint8 ``(H, W, 3)`` in ``[0, 255]``."""
        from skimage import data as skdata

        out = getattr(skdata, self.loader)()
        if self.item is not None:
            out = out[self.item]
        return _as_rgb_uint8(np.asarray(out), what=f"skimage.data.{self.loader}")

    def __repr__(self) -> str:
        return f"PhotoSource({self.name!r}, {self.loader!r})"


#: Natural RGB photographs that load offline from the scikit-image wheel.  ``cat`` is an
#: alias of ``chelsea`` and ``colorwheel`` is synthetic, so both are left out; the right
#: view of the motorcycle stereo pair is left out because it shows the same scene.
PHOTO_SOURCES: dict[str, PhotoSource] = {
    src.name: src
    for src in (
        PhotoSource("astronaut", "astronaut"),
        PhotoSource("chelsea", "chelsea"),
        PhotoSource("coffee", "coffee"),
        PhotoSource("hubble", "hubble_deep_field"),
        PhotoSource("ihc", "immunohistochemistry"),
        PhotoSource("motorcycle", "stereo_motorcycle", item=0),
        PhotoSource("retina", "retina"),
        PhotoSource("rocket", "rocket"),
    )
}
#: Photographs held out for testing by default (never used for training patches).
DEFAULT_TEST_SOURCES: tuple[str, ...] = ("coffee", "rocket")


@functools.cache
def _load_source_photo_cached(name: str, max_side: int | None, min_side: int) -> np.ndarray:
    photo = PHOTO_SOURCES[name].load()
    h, w = photo.shape[:2]
    scale = 1.0
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
    if min(h, w) * scale < min_side:  # too small for one patch: upscale
        scale = min_side / min(h, w)
    if scale != 1.0:
        new_w, new_h = max(min_side, round(w * scale)), max(min_side, round(h * scale))
        photo = np.asarray(Image.fromarray(photo).resize((new_w, new_h), Image.Resampling.LANCZOS))
    photo = np.ascontiguousarray(photo)
    photo.setflags(write=False)  # shared by the cache: keep it immutable
    return photo


def load_source_photo(name: str, max_side: int | None = DEFAULT_MAX_PHOTO_SIDE, min_side: int = 1) -> np.ndarray:
    """Load a bundled photograph, rescaled to ``min_side <= short side``, ``long side <= max_side``.

    Args:
        name: Key of :data:`PHOTO_SOURCES`.
        max_side: Downscale (Lanczos) so the long side is at most this; ``None`` keeps it.
        min_side: Upscale so the short side is at least this (takes priority).

    Returns:
        Read-only uint8 array ``(H, W, 3)`` in ``[0, 255]`` (cached; copy before editing).
    """
    if name not in PHOTO_SOURCES:
        raise ValueError(f"unknown photo source {name!r}; valid: {sorted(PHOTO_SOURCES)}")
    return _load_source_photo_cached(name, max_side, min_side)


# --------------------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------------------


def _check_rgb_uint8(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != RGB_CHANNELS:
        shape = getattr(img, "shape", None)
        dtype = getattr(img, "dtype", type(img).__name__)
        raise ValueError(f"expected a uint8 (H, W, 3) image, got shape {shape} dtype {dtype}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round and clip a float array in ``[0, 255]`` units to uint8."""
    return np.clip(np.rint(x), 0, UINT8_MAX).astype(np.uint8)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased straight-line kernel (linear motion / streak PSF).

    Args:
        length: Line length in pixels (``>= 1``).
        angle_deg: Direction, counter-clockwise from the +x (right) axis, in degrees.
            0 is horizontal, 90 vertical.

    Returns:
        float64 ``(K, K)`` kernel, ``K`` odd, non-negative, summing to 1, centred.
    """
    if length < 1:
        raise ValueError(f"line length must be >= 1 pixel, got {length}")
    half = math.ceil(length / 2)
    size = 2 * half + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    n_samples = max(2, math.ceil(length * LINE_KERNEL_SAMPLES_PER_PIXEL))
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, n_samples)
    theta = math.radians(angle_deg)
    xs = half + t * math.cos(theta)
    ys = half - t * math.sin(theta)  # image rows grow downwards
    # Bilinear splatting of each sample onto its four neighbouring pixels.
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
        np.add.at(kernel, (yi, xi), wgt)
    return kernel / kernel.sum()


def add_rain(
    img: np.ndarray,
    rng: np.random.Generator,
    density: tuple[float, float] = RAIN_DENSITY_RANGE,
    length: tuple[float, float] = RAIN_LENGTH_RANGE,
    max_tilt_deg: float = RAIN_MAX_TILT_DEG,
    width_sigma: float = RAIN_WIDTH_SIGMA,
    brightness: tuple[float, float] = RAIN_BRIGHTNESS_RANGE,
    opacity: tuple[float, float] = RAIN_OPACITY_RANGE,
) -> np.ndarray:
    """Overlay thin slanted rain streaks (Rain100L-like).

    Sparse random seed points with random brightness are smeared along one common
    direction with a :func:`line_kernel` and alpha-blended towards white, so the
    residual ``rainy - clean`` is non-negative and concentrated on the streaks.

    Args:
        img: Clean uint8 ``(H, W, 3)`` image in ``[0, 255]``.
        rng: Source of all randomness (the result is a function of ``img`` and its state).
        density: Range of the fraction of pixels seeding a streak.
        length: Range of the streak length in pixels.
        max_tilt_deg: Streaks deviate from vertical by ``U(-max_tilt, max_tilt)`` degrees.
        width_sigma: Gaussian sigma (pixels) widening streaks; 0 gives 1-pixel lines.
        brightness: Range of the per-streak peak brightness in ``[0, 1]``.
        opacity: Range of the global blend weight towards white of a full streak.

    Returns:
        Rainy uint8 ``(H, W, 3)`` image in ``[0, 255]``, ``>= img`` up to rounding.
    """
    _check_rgb_uint8(img)
    h, w = img.shape[:2]
    dens = _uniform(rng, density)
    streak_len = _uniform(rng, length)
    angle = 90.0 + _uniform(rng, (-max_tilt_deg, max_tilt_deg))
    alpha_max = _uniform(rng, opacity)
    seeds = (rng.random((h, w)) < dens) * rng.uniform(*brightness, size=(h, w))
    if width_sigma > 0:
        # Widen, then renormalise so a streak keeps its peak brightness.
        seeds = ndimage.gaussian_filter(seeds, width_sigma, mode="wrap")
        seeds *= 2 * math.pi * width_sigma**2
    # Kernel sums to 1; scale by its length so a streak's centre keeps the seed value.
    kernel = line_kernel(streak_len, angle) * streak_len
    streaks = np.clip(ndimage.convolve(seeds, kernel, mode="wrap"), 0.0, 1.0)
    alpha = (alpha_max * streaks)[..., None]
    clean = img.astype(np.float64)
    return _to_uint8(clean + alpha * (UINT8_MAX - clean))


def add_motion_blur(
    img: np.ndarray,
    rng: np.random.Generator,
    length: tuple[float, float] = BLUR_LENGTH_RANGE,
    angle_deg: tuple[float, float] = BLUR_ANGLE_RANGE_DEG,
) -> np.ndarray:
    """Blur with a random linear motion kernel (uniform camera shake along a line).

    Args:
        img: Sharp uint8 ``(H, W, 3)`` image in ``[0, 255]``.
        rng: Source of the kernel length and angle.
        length: Range of the blur length in pixels.
        angle_deg: Range of the blur direction in degrees (see :func:`line_kernel`).

    Returns:
        Blurred uint8 ``(H, W, 3)`` image in ``[0, 255]``; the kernel sums to one and the
        boundary is reflected, so the mean intensity is preserved approximately.
    """
    _check_rgb_uint8(img)
    kernel = line_kernel(_uniform(rng, length), _uniform(rng, angle_deg))
    src = img.astype(np.float64)
    out = np.empty_like(src)
    for c in range(RGB_CHANNELS):
        out[..., c] = ndimage.convolve(src[..., c], kernel, mode="reflect")
    return _to_uint8(out)


def add_shadow(
    img: np.ndarray,
    rng: np.random.Generator,
    vertices: tuple[int, int] = SHADOW_VERTEX_RANGE,
    radius: tuple[float, float] = SHADOW_RADIUS_RANGE,
    factor: tuple[float, float] = SHADOW_FACTOR_RANGE,
    color_jitter: float = SHADOW_COLOR_JITTER,
    edge_sigma_fraction: float = SHADOW_EDGE_SIGMA_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Cast a random soft-edged polygonal shadow (ISTD-like).

    A star-shaped random polygon is rasterised, blurred into a soft alpha
    ``a in [0, 1]`` and the image is darkened multiplicatively:
    ``out_c = img_c * (1 - (1 - f_c) * a)`` where ``f_c`` is the remaining brightness
    (slightly different per channel, as ambient light in shadows is coloured).

    Args:
        img: Shadow-free uint8 ``(H, W, 3)`` image in ``[0, 255]``.
        rng: Source of all randomness.
        vertices: Inclusive range of the number of polygon vertices.
        radius: Range of vertex distance to the centre, as a fraction of the short side.
        factor: Range of the remaining brightness ``f`` inside the shadow, in ``(0, 1)``.
        color_jitter: Relative per-channel spread of ``f``.
        edge_sigma_fraction: Soft-edge Gaussian sigma as a fraction of the short side.

    Returns:
        ``(shadowed, mask)``: uint8 ``(H, W, 3)`` image in ``[0, 255]`` and bool ``(H, W)``
        mask that is True where the soft alpha exceeds ``SHADOW_MASK_THRESHOLD``.
    """
    _check_rgb_uint8(img)
    h, w = img.shape[:2]
    short = min(h, w)
    n_vert = int(rng.integers(vertices[0], vertices[1] + 1))
    cy = _uniform(rng, (SHADOW_CENTER_MARGIN * h, (1 - SHADOW_CENTER_MARGIN) * h))
    cx = _uniform(rng, (SHADOW_CENTER_MARGIN * w, (1 - SHADOW_CENTER_MARGIN) * w))
    # Star-shaped polygon: sorted random angles, random radii -> never self-intersecting.
    angles = np.sort(rng.uniform(0.0, 2 * math.pi, n_vert))
    radii = rng.uniform(radius[0] * short, radius[1] * short, n_vert)
    rows = cy + radii * np.sin(angles)
    cols = cx + radii * np.cos(angles)
    hard = np.zeros((h, w), dtype=np.float64)
    rr, cc = draw.polygon(rows, cols, shape=(h, w))
    hard[rr, cc] = 1.0
    alpha = np.clip(
        ndimage.gaussian_filter(hard, edge_sigma_fraction * short, mode="nearest"),
        0.0,
        1.0,
    )
    base = _uniform(rng, factor)
    f = np.clip(base * (1 + rng.uniform(-color_jitter, color_jitter, RGB_CHANNELS)), 0.0, 1.0)
    gain = 1.0 - (1.0 - f)[None, None, :] * alpha[..., None]
    shadowed = _to_uint8(img.astype(np.float64) * gain)
    return shadowed, alpha > SHADOW_MASK_THRESHOLD


#: Uniform interface ``(img, rng) -> (degraded, mask or None)`` per task name.
Degradation = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray | None]]

DEGRADATIONS: dict[str, Degradation] = {
    "rain": lambda img, rng: (add_rain(img, rng), None),
    "blur": lambda img, rng: (add_motion_blur(img, rng), None),
    "shadow": add_shadow,
}


def get_degradation(name: str) -> Degradation:
    """Look up a degradation; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return DEGRADATIONS[name]
    except KeyError:
        raise ValueError(f"unknown degradation {name!r}; valid names: {sorted(DEGRADATIONS)}") from None


def apply_degradation(name: str, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the degradation ``name`` to a uint8 ``(H, W, 3)`` image; returns ``(degraded, mask|None)``."""
    return get_degradation(name)(img, rng)


# --------------------------------------------------------------------------------------
# File helpers
# --------------------------------------------------------------------------------------


def _write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png_atomic(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """Save a uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grayscale/bool array as PNG, atomically.

    Bool arrays are stored as ``{0, 255}``.  Returns the sha256 of the written bytes.
    """
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * UINT8_MAX
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == RGB_CHANNELS)):
        raise ValueError(f"cannot save array of shape {arr.shape} dtype {arr.dtype} as PNG to {path}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    payload = buf.getvalue()
    _write_bytes_atomic(Path(path), payload)
    return hashlib.sha256(payload).hexdigest()


def _as_rgb_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """Grayscale -> replicated RGB, RGBA -> alpha dropped; anything else must be uint8 RGB."""
    if arr.dtype != np.uint8:
        raise ImageReadError(f"{what}: expected 8-bit image data, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], RGB_CHANNELS, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :RGB_CHANNELS]
    if arr.ndim != 3 or arr.shape[2] != RGB_CHANNELS:
        raise ImageReadError(f"{what}: cannot interpret array of shape {arr.shape} as RGB")
    return np.ascontiguousarray(arr)


#: PIL modes accepted by :func:`load_rgb` and how they become RGB.
_RGB_CONVERTIBLE_MODES = {
    "RGB": "as is",
    "RGBA": "alpha channel discarded (not composited)",
    "RGBX": "padding channel discarded",
    "L": "gray value replicated to R, G, B",
    "LA": "alpha discarded, gray replicated",
    "1": "bilevel {0,1} -> {0,255} replicated",
    "P": "palette expanded (alpha discarded)",
    "PA": "palette expanded (alpha discarded)",
}


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()  # force full decode so truncated files fail here
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image file {path}: {exc}") from exc


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit image file as RGB.

    Conversions (explicit, see ``_RGB_CONVERTIBLE_MODES``): grayscale is replicated to three
    channels, alpha channels are *discarded* (not composited onto a background), palette
    images are expanded.  High-bit-depth / float / CMYK modes are rejected rather than
    silently requantised.

    Args:
        path: Image file path.

    Returns:
        uint8 ``(H, W, 3)`` array in ``[0, 255]``.

    Raises:
        FileNotFoundError: The file does not exist (message contains the path).
        ImageReadError: A ``ValueError`` for undecodable files or unsupported modes
            (message contains the path).
    """
    path = Path(path)
    im = _open_image(path)
    if im.mode not in _RGB_CONVERTIBLE_MODES:
        raise ImageReadError(
            f"unsupported image mode {im.mode!r} in {path}; supported: {sorted(_RGB_CONVERTIBLE_MODES)}"
        )
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def load_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask image as bool ``(H, W)``: True where the (gray) value is above half range.

    Colour masks are converted to luminance first.  Errors as in :func:`load_rgb`.
    """
    path = Path(path)
    im = _open_image(path)
    if im.mode not in _RGB_CONVERTIBLE_MODES:
        raise ImageReadError(f"unsupported mask mode {im.mode!r} in {path}")
    gray = np.asarray(im.convert("L"), dtype=np.uint8)
    return gray > UINT8_MAX // 2


# --------------------------------------------------------------------------------------
# Synthetic dataset
# --------------------------------------------------------------------------------------


def _stable_key(text: str) -> int:
    """Process-independent 32-bit integer for a string (Python's hash() is salted)."""
    return zlib.crc32(text.encode("utf-8"))


def _choose_test_sources(
    sources: Sequence[str],
    test_sources: Sequence[str] | None,
    test_fraction: float | None,
    seed: int,
) -> list[str]:
    if test_sources is not None and test_fraction is not None:
        raise ValueError("give either test_sources or test_fraction, not both")
    if test_fraction is not None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n_test = min(len(sources) - 1, max(1, math.ceil(test_fraction * len(sources))))
        order = np.random.default_rng([seed, _stable_key("split")]).permutation(len(sources))
        return sorted(sources[i] for i in order[:n_test])
    chosen = list(DEFAULT_TEST_SOURCES if test_sources is None else test_sources)
    unknown = sorted(set(chosen) - set(sources))
    if unknown:
        raise ValueError(f"test sources {unknown} are not among the sources {list(sources)}")
    if len(set(chosen)) >= len(set(sources)):
        raise ValueError("every source photo is a test source; nothing left for training")
    return sorted(set(chosen))


def make_synthetic_dataset(
    out_dir: str | os.PathLike[str],
    task: str,
    size: int = DEFAULT_PATCH_SIZE,
    patches_per_image: int = DEFAULT_PATCHES_PER_IMAGE,
    test_patches_per_image: int = DEFAULT_TEST_PATCHES_PER_IMAGE,
    sources: Sequence[str] | None = None,
    test_sources: Sequence[str] | None = None,
    test_fraction: float | None = None,
    max_side: int | None = DEFAULT_MAX_PHOTO_SIDE,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthesise a paired restoration dataset from the bundled photographs.

    Each source photograph is assigned wholly to ``train`` or ``test`` (split by photo,
    so no scene leaks between splits).  From each photo, square patches at seeded
    random positions are cut, degraded with ``DEGRADATIONS[task]`` and written as PNG.
    Every file is written atomically and the output is a deterministic function of the
    arguments: the same seed gives byte-identical PNGs and index.

    Args:
        out_dir: Output folder (created).  Existing files with the same names are replaced.
        task: Degradation name, one of ``DEGRADATIONS`` (``rain``, ``blur``, ``shadow``).
        size: Patch side in pixels; photos smaller than this are upscaled.
        patches_per_image: Patches cut from each training photo.
        test_patches_per_image: Patches cut from each test photo.
        sources: Photo names from :data:`PHOTO_SOURCES` to use (default: all of them).
        test_sources: Photos held out for testing (default :data:`DEFAULT_TEST_SOURCES`).
        test_fraction: Alternatively, hold out ``ceil(fraction * n_sources)`` photos
            chosen by a permutation seeded with ``seed``.  Exclusive with ``test_sources``.
        max_side: Photos are first downscaled so their long side is at most this, so a
            patch shows scene content rather than a tiny texture crop.
        seed: Master seed.  Patch positions and degradation parameters of each photo are
            drawn from a generator seeded with ``(seed, photo name, task)``.

    The split and generation parameters are also recorded in ``out_dir/manifest.json``.

    Returns:
        The index as written to ``out_dir/index.parquet`` (columns :data:`INDEX_COLUMNS`,
        paths relative to ``out_dir``), sorted by split then image id.
    """
    get_degradation(task)  # validate the task name early
    if size < 1 or patches_per_image < 0 or test_patches_per_image < 0:
        raise ValueError("size must be >= 1 and patch counts >= 0")
    out = Path(out_dir)
    names = sorted(PHOTO_SOURCES) if sources is None else sorted(set(sources))
    unknown = sorted(set(names) - set(PHOTO_SOURCES))
    if unknown:
        raise ValueError(f"unknown photo sources {unknown}; valid: {sorted(PHOTO_SOURCES)}")
    test_set = set(_choose_test_sources(names, test_sources, test_fraction, seed))

    rows: list[dict[str, Any]] = []
    for name in names:
        split = "test" if name in test_set else "train"
        n_patches = test_patches_per_image if split == "test" else patches_per_image
        photo = load_source_photo(name, max_side=max_side, min_side=size)
        ph, pw = photo.shape[:2]
        rng = np.random.default_rng([seed, _stable_key(name), _stable_key(task)])
        for k in range(n_patches):
            top = int(rng.integers(0, ph - size + 1))
            left = int(rng.integers(0, pw - size + 1))
            clean = np.ascontiguousarray(photo[top : top + size, left : left + size])
            degraded, mask = apply_degradation(task, clean, rng)
            image_id = f"{task}-{name}-{k:04d}"
            rel = {col: f"{split}/{col}/{image_id}.png" for col in PATH_COLUMNS}
            row: dict[str, Any] = {
                "image_id": image_id,
                "split": split,
                "input": rel["input"],
                "target": rel["target"],
                "mask": rel["mask"] if mask is not None else None,
                "source": name,
                "task": task,
                "height": size,
                "width": size,
                "input_sha256": save_png_atomic(out / rel["input"], degraded),
                "target_sha256": save_png_atomic(out / rel["target"], clean),
                "mask_sha256": save_png_atomic(out / rel["mask"], mask) if mask is not None else None,
            }
            rows.append(row)

    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    df = df.astype({"height": "int64", "width": "int64"})
    for col in ("mask", "mask_sha256"):
        df[col] = df[col].astype("string")
    df = df.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    _write_parquet_atomic(df, out / INDEX_FILENAME)
    manifest = {
        "task": task,
        "seed": seed,
        "size": size,
        "patches_per_image": patches_per_image,
        "test_patches_per_image": test_patches_per_image,
        "max_side": max_side,
        "train_sources": sorted(set(names) - test_set),
        "test_sources": sorted(test_set),
        "n_train": int((df["split"] == "train").sum()),
        "n_test": int((df["split"] == "test").sum()),
    }
    _write_bytes_atomic(
        out / MANIFEST_FILENAME,
        (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
    )
    return df


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    _write_bytes_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------------------
# Reading and verifying indexes
# --------------------------------------------------------------------------------------


def _resolve_paths(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    df = df.copy()
    for col in PATH_COLUMNS:
        if col in df.columns:
            df[col] = [None if _is_null(p) else str(p if Path(p).is_absolute() else (root / p)) for p in df[col]]
    return df


def _is_null(value: Any) -> bool:
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
    df = _resolve_paths(df, path.parent.resolve())
    df.attrs["index_path"] = str(path.resolve())
    return df


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
            if _is_null(file):
                continue
            if not Path(file).is_file():
                raise FileNotFoundError(f"file listed in index column {col!r} not found: {file}")
            if _is_null(expected):
                continue
            actual = sha256_file(file)
            n_checked += 1
            if actual != expected:
                bad.append(f"{file} (expected sha256 {expected}, got {actual})")
    if bad:
        raise ChecksumError(f"{len(bad)} file(s) fail the sha256 check: " + "; ".join(bad))
    return n_checked


# --------------------------------------------------------------------------------------
# Model-space conversion
# --------------------------------------------------------------------------------------


def to_model_space(img: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` or ``(B, H, W, C)`` in ``[0, 255]`` -> float32 ``(C, H, W)`` /
    ``(B, C, H, W)`` tensor in ``[-1, 1]`` via ``x / 127.5 - 1``."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 (H, W, C) or (B, H, W, C), got shape {arr.shape} dtype {arr.dtype}")
    t = torch.from_numpy(arr.astype(np.float32))  # astype copies: input may be read-only
    t = t.movedim(-1, -3).contiguous()  # channels first
    return t / MODEL_SCALE - 1.0


def from_model_space(x: torch.Tensor) -> np.ndarray:
    """Float tensor ``(C, H, W)`` / ``(B, C, H, W)`` in ``[-1, 1]`` -> uint8 ``(H, W, C)`` /
    ``(B, H, W, C)`` in ``[0, 255]`` (values clipped, rounded to nearest)."""
    if x.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    y = ((x.detach().to("cpu", torch.float32) + 1.0) * MODEL_SCALE).round().clamp(0, UINT8_MAX)
    return y.to(torch.uint8).movedim(-3, -1).contiguous().numpy()


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
        index: DataFrame from :func:`read_index` (absolute paths; relative ones are taken
            relative to ``root``) or a path to an index file.
        split: Split to use (``train`` / ``test``).
        crop: Square crop side, or ``None`` for full images.
        flip: Random horizontal flips (only when a generator is given).
        cache: Keep decoded uint8 images in memory after the first read.
        root: Folder for relative paths of a DataFrame index (default: current folder).

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
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(index, pd.DataFrame):
            missing = [col for col in REQUIRED_INDEX_COLUMNS if col not in index.columns]
            if missing:
                raise IndexSchemaError(f"index DataFrame is missing required column(s) {missing}")
            df = _resolve_paths(index, Path(root) if root is not None else Path.cwd())
            origin = index.attrs.get("index_path", "<DataFrame>")
        else:
            df = read_index(index)
            origin = str(index)
        rows = df[df["split"] == split].reset_index(drop=True)
        if rows.empty:
            raise ValueError(f"split {split!r} has no rows in {origin}; splits present: {sorted(df['split'].unique())}")
        if crop is not None and crop < 1:
            raise ValueError(f"crop must be a positive int or None, got {crop}")
        self.rows = rows
        self.split = split
        self.crop = crop
        self.flip = flip
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

        Raises:
            ValueError: Input, target (and mask) sizes differ (names the files and sizes),
                or a file cannot be decoded; FileNotFoundError if missing.
        """
        if i in self._cache:
            return self._cache[i]
        row = self.rows.iloc[i]
        inp, tgt = load_rgb(row["input"]), load_rgb(row["target"])
        if inp.shape != tgt.shape:
            raise DataError(
                f"size mismatch in pair {row['image_id']!r}: input {row['input']} is "
                f"{inp.shape[1]}x{inp.shape[0]} but target {row['target']} is {tgt.shape[1]}x{tgt.shape[0]}"
            )
        mask = None
        if "mask" in row.index and not _is_null(row["mask"]):
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

        Draw order per item (fixed, for resumability): crop top, crop left, flip.
        Without a generator: centre crop, no flip.
        """
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        inp, tgt, mask = self.load_pair(i)
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
        item: dict[str, Any] = {
            "input": to_model_space(inp),
            "target": to_model_space(tgt),
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
