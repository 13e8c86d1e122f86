"""Colour conversions of the evaluation protocols: MATLAB's luma Y and the LAB distance."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2lab, rgb2ycbcr

from lrdm.data.images import UINT8_MAX

__all__ = ["lab_distance", "rgb_to_y"]


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` on uint8 RGB.

    Args:
        rgb: uint8 array (..., 3), values 0..255.
    Returns:
        float64 array (...) holding integers in 16..235 (rounded half away from zero).
    """
    y = rgb2ycbcr(rgb)[..., 0]  # float64, 16 + 65.481 r + ... with r = R / 255
    return np.clip(np.floor(y + 0.5), 0.0, UINT8_MAX)  # y > 0, so this is half-away rounding


def lab_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel ``|L1 - L2| + |a1 - a2| + |b1 - b2|`` of two float RGB images (H, W, 3).

    Both are clipped to [0, 1] and converted with ``skimage.color.rgb2lab`` (sRGB, D65 white); the channel
    differences are summed, not averaged.

    Returns:
        float64 (H, W).
    """
    return np.sum(np.abs(rgb2lab(np.clip(a, 0.0, 1.0)) - rgb2lab(np.clip(b, 0.0, 1.0))), axis=-1)
