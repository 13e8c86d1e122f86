"""The embedded default data: degradations synthesised on scikit-image's photographs.

The real benchmarks of the LRDM / RDDM papers (Rain100L/H, GoPro, ISTD, ...) cannot be
downloaded here, so the default data is *synthesised*: natural photographs bundled with
scikit-image are cut into square patches and degraded with rain streaks, linear motion
blur or cast shadows.  The degradations are "near-domain": the degraded input stays
close to the clean target and the residual ``input - target`` is sparse / structured,
which is the regime residual diffusion models are designed for.

All randomness is drawn from explicit ``numpy.random.Generator`` objects, so a dataset is a
deterministic function of its arguments.

On-disk layout written by :func:`make_synthetic_dataset`::


    out_dir/
        index.parquet                       # one row per pair, see INDEX_COLUMNS
        manifest.json                       # generation parameters, train/test photos
        {split}/input/{image_id}.png
        {split}/target/{image_id}.png

Paths in ``index.parquet`` are relative to the folder holding the index (:mod:`lrdm.data.index`).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from skimage import draw

from lrdm.data.images import RGB_CHANNELS, UINT8_MAX, as_rgb_uint8
from lrdm.data.index import INDEX_COLUMNS, MANIFEST_FILENAME, PATH_COLUMNS
from lrdm.errors import DataError
from lrdm.files import stable_key, write_parquet, write_png, write_text
from lrdm.paths import INDEX_FILE
from lrdm.vocab import check_choice

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
MAX_INPUT_PSNR_DB = 40.0
"""A synthetic input must differ visibly from its target: PSNR at most this (RMS error >= 2.55 grey levels)."""
MAX_PATCH_DRAWS = 50
"""Patch positions and degradations drawn per pair before a photo is declared unable to show the degradation."""
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
        return as_rgb_uint8(np.asarray(out), what=f"skimage.data.{self.loader}")

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
    check_choice(name, sorted(PHOTO_SOURCES), "photo source")
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


@dataclass(frozen=True)
class RainSettings:
    """The ranges :func:`add_rain` draws its streaks from (pixel units refer to the patch being degraded).

    Args:
        density: Range of the fraction of pixels seeding a streak.
        length: Range of the streak length in pixels.
        max_tilt_deg: Streaks deviate from vertical by ``U(-max_tilt, max_tilt)`` degrees.
        width_sigma: Gaussian sigma (pixels) widening streaks; 0 gives 1-pixel lines.
        brightness: Range of the per-streak peak brightness in ``[0, 1]``.
        opacity: Range of the global blend weight towards white of a full streak.
    """

    density: tuple[float, float] = RAIN_DENSITY_RANGE
    length: tuple[float, float] = RAIN_LENGTH_RANGE
    max_tilt_deg: float = RAIN_MAX_TILT_DEG
    width_sigma: float = RAIN_WIDTH_SIGMA
    brightness: tuple[float, float] = RAIN_BRIGHTNESS_RANGE
    opacity: tuple[float, float] = RAIN_OPACITY_RANGE


def add_rain(img: np.ndarray, rng: np.random.Generator, settings: RainSettings | None = None) -> np.ndarray:
    """Overlay thin slanted rain streaks (Rain100L-like).

    Sparse random seed points with random brightness are smeared along one common
    direction with a :func:`line_kernel` and alpha-blended towards white, so the
    residual ``rainy - clean`` is non-negative and concentrated on the streaks.

    Args:
        img: Clean uint8 ``(H, W, 3)`` image in ``[0, 255]``.
        rng: Source of all randomness (the result is a function of ``img`` and its state).
        settings: The ranges drawn from (None: :class:`RainSettings`'s defaults).

    Returns:
        Rainy uint8 ``(H, W, 3)`` image in ``[0, 255]``, ``>= img`` up to rounding.
    """
    _check_rgb_uint8(img)
    rain = settings or RainSettings()
    h, w = img.shape[:2]
    dens = _uniform(rng, rain.density)
    streak_len = _uniform(rng, rain.length)
    angle = 90.0 + _uniform(rng, (-rain.max_tilt_deg, rain.max_tilt_deg))
    alpha_max = _uniform(rng, rain.opacity)
    seeds = (rng.random((h, w)) < dens) * rng.uniform(*rain.brightness, size=(h, w))
    width_sigma = rain.width_sigma
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



# --------------------------------------------------------------------------------------
# Synthetic dataset
# --------------------------------------------------------------------------------------


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
        order = np.random.default_rng([seed, stable_key("split")]).permutation(len(sources))
        return sorted(sources[i] for i in order[:n_test])
    chosen = list(DEFAULT_TEST_SOURCES if test_sources is None else test_sources)
    unknown = sorted(set(chosen) - set(sources))
    if unknown:
        raise ValueError(f"test sources {unknown} are not among the sources {list(sources)}")
    if len(set(chosen)) >= len(set(sources)):
        raise ValueError("every source photo is a test source; nothing left for training")
    return sorted(set(chosen))


def input_psnr(degraded: np.ndarray, clean: np.ndarray) -> float:
    """PSNR (dB, RGB, peak 255) of a degraded patch against its clean one; ``inf`` when they are equal."""
    mse = float(np.mean((degraded.astype(np.float64) - clean.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(UINT8_MAX**2 / mse)


def _draw_degraded_patch(
    photo: np.ndarray, task: str, size: int, rng: np.random.Generator, image_id: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(clean, degraded, mask)`` of one patch at a random position whose degradation is visible (input PSNR at
    most :data:`MAX_INPUT_PSNR_DB`); positions and degradations are redrawn from ``rng`` until it is."""
    ph, pw = photo.shape[:2]
    for _ in range(MAX_PATCH_DRAWS):
        top = int(rng.integers(0, ph - size + 1))
        left = int(rng.integers(0, pw - size + 1))
        clean = np.ascontiguousarray(photo[top : top + size, left : left + size])
        degraded, mask = apply_degradation(task, clean, rng)
        if input_psnr(degraded, clean) <= MAX_INPUT_PSNR_DB:
            return clean, degraded, mask
    raise DataError(
        f"{image_id}: no visible {task} degradation (input PSNR <= {MAX_INPUT_PSNR_DB} dB) in {MAX_PATCH_DRAWS} "
        f"draws at {size}x{size}; use larger patches or another photo"
    )


@dataclass(frozen=True)
class SynthesisOptions:
    """How :func:`make_synthetic_dataset` cuts and splits its patches.

    Args:
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

    Raises:
        ValueError: ``size`` below 1 or a negative patch count.
    """

    size: int = DEFAULT_PATCH_SIZE
    patches_per_image: int = DEFAULT_PATCHES_PER_IMAGE
    test_patches_per_image: int = DEFAULT_TEST_PATCHES_PER_IMAGE
    sources: Sequence[str] | None = None
    test_sources: Sequence[str] | None = None
    test_fraction: float | None = None
    max_side: int | None = DEFAULT_MAX_PHOTO_SIDE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1 or self.patches_per_image < 0 or self.test_patches_per_image < 0:
            raise ValueError("size must be >= 1 and patch counts >= 0")


def make_synthetic_dataset(
    out_dir: str | os.PathLike[str], task: str, options: SynthesisOptions | None = None
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
        options: Patch size and counts, photos, split and seed (None: :class:`SynthesisOptions`'s defaults).

    The split and generation parameters are also recorded in ``out_dir/manifest.json``.

    Returns:
        The index as written to ``out_dir/index.parquet`` (columns :data:`INDEX_COLUMNS`,
        paths relative to ``out_dir``), sorted by split then image id.
    """
    get_degradation(task)  # validate the task name early
    opts = options or SynthesisOptions()
    size, seed = opts.size, opts.seed
    out = Path(out_dir)
    names = sorted(PHOTO_SOURCES) if opts.sources is None else sorted(set(opts.sources))
    unknown = sorted(set(names) - set(PHOTO_SOURCES))
    if unknown:
        raise ValueError(f"unknown photo sources {unknown}; valid: {sorted(PHOTO_SOURCES)}")
    test_set = set(_choose_test_sources(names, opts.test_sources, opts.test_fraction, seed))

    rows: list[dict[str, Any]] = []
    for name in names:
        split = "test" if name in test_set else "train"
        n_patches = opts.test_patches_per_image if split == "test" else opts.patches_per_image
        photo = load_source_photo(name, max_side=opts.max_side, min_side=size)
        rng = np.random.default_rng([seed, stable_key(name), stable_key(task)])
        for k in range(n_patches):
            clean, degraded, mask = _draw_degraded_patch(photo, task, size, rng, f"{task}-{name}-{k:04d}")
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
                "input_sha256": write_png(out / rel["input"], degraded),
                "target_sha256": write_png(out / rel["target"], clean),
                "mask_sha256": write_png(out / rel["mask"], mask) if mask is not None else None,
            }
            rows.append(row)

    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    df = df.astype({"height": "int64", "width": "int64"})
    for col in ("mask", "mask_sha256"):
        df[col] = df[col].astype("string")
    df = df.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    write_parquet(df, out / INDEX_FILE)
    manifest = {
        "task": task,
        "seed": seed,
        "size": size,
        "patches_per_image": opts.patches_per_image,
        "test_patches_per_image": opts.test_patches_per_image,
        "max_side": opts.max_side,
        "train_sources": sorted(set(names) - test_set),
        "test_sources": sorted(test_set),
        "n_train": int((df["split"] == "train").sum()),
        "n_test": int((df["split"] == "test").sum()),
    }
    write_text(out / MANIFEST_FILENAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return df
