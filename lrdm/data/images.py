"""Reading image files: 8-bit RGB (with explicit, documented conversions) and binary masks.

Images are ``uint8`` RGB arrays ``(H, W, 3)`` in ``[0, 255]``; masks are ``bool`` ``(H, W)``.
Writing goes through :func:`lrdm.files.write_png`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lrdm.errors import ImageReadError

UINT8_MAX = 255
RGB_CHANNELS = 3
HIGH_BIT_DEPTH_MARK = ";16"
"""In a PIL decoder's raw mode (e.g. ``RGB;16B``): 16 bits per sample, which PIL would cut to 8 silently."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
"""File name endings (case-insensitive) of the images read from your own folders (``lrdm restore``,
``source: folders``); ``lrdm restore`` ignores other files, ``source: folders`` refuses them (hidden ones aside)."""


def as_rgb_uint8(arr: np.ndarray, what: str) -> np.ndarray:
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
            deep = any(HIGH_BIT_DEPTH_MARK in str(tile.args) for tile in im.tile)
            im.load()  # force full decode so truncated files fail here
            image = im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image file {path}: {exc}") from exc
    if deep and image.mode in ("RGB", "RGBA"):
        raise ImageReadError(
            f"{path} is a 16-bit {image.mode} image; it is rejected rather than requantised to 8 bits silently: "
            "convert it to 8-bit explicitly"
        )
    return image


def header_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` from the image header only (cheap; a truncated body is not noticed here).

    Raises:
        ImageReadError: The header cannot be read (message contains the path).
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err
    return height, width


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
