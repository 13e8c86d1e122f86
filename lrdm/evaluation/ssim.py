"""SSIM variants of the evaluation protocols: Wang et al.'s 2-D SSIM, MATLAB's 3-D ``ssim`` on an RGB
volume, and RealBlur's masked SSIM.

All use a gaussian window of σ = 1.5 with 11 taps (radius 5), ``C1 = (K1 L)²``, ``C2 = (K2 L)²`` with
``K1 = 0.01``, ``K2 = 0.03`` and population (co)variances ``E[xy] - E[x]E[y]``; the map is::

    ssim = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

They differ in the padding and in which part of the map is averaged (see each function).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from lrdm.evaluation.psnr import PEAK

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_RADIUS",
    "SSIM_SIGMA",
    "SSIM_WIN",
    "WANG_SSIM",
    "masked_ssim",
    "ssim_volume",
    "wang_ssim",
]

SSIM_SIGMA = 1.5
SSIM_WIN = 11  # skimage: truncate=3.5 -> radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_RADIUS = (SSIM_WIN - 1) // 2  # = 5 = ceil(3 * 1.5), MATLAB ssim's filter radius too
SSIM_K1 = 0.01
SSIM_K2 = 0.03

WANG_SSIM = {
    "gaussian_weights": True,
    "sigma": SSIM_SIGMA,
    "use_sample_covariance": False,
    "K1": SSIM_K1,
    "K2": SSIM_K2,
}
"""scikit-image settings of Wang et al.'s SSIM (gaussian 11×11, σ = 1.5, population statistics)."""


def wang_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None, data_range: float = PEAK) -> float:
    """Wang et al.'s SSIM (``ssim_index.m``) averaged over the 'valid' region only (the border of width 5
    where the window would overhang the image is discarded, so padding never influences the result).

    Args:
        a, b: (H, W) or (H, W, C) float arrays in the 0..data_range scale.
        channel_axis: None for one plane, -1 for the mean over the channels of (H, W, C).
        data_range: L (255 for 0..255, 1 for [0, 1]).
    """
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis, **WANG_SSIM))


def ssim_volume(a: np.ndarray, b: np.ndarray, data_range: float = PEAK) -> float:
    """MATLAB ``ssim(A, ref)`` on a 3-D array (an RGB image is treated as a volume).

    3-D gaussian statistics (sigma 1.5, radius 5 = 11 taps per axis, 'replicate'
    padding), C1 = (0.01 L)^2, C2 = (0.03 L)^2, population (co)variances, SSIM map
    averaged over every element.  See :mod:`lrdm.evaluation.protocols.rgb`.

    Args:
        a, b: arrays (H, W, C) of equal shape (any numeric dtype), values 0..data_range.
        data_range: L, the dynamic range (255 for uint8, 1 for double in MATLAB).
    """
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma=SSIM_SIGMA, radius=SSIM_RADIUS, mode="nearest")

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def masked_ssim(a: np.ndarray, b: np.ndarray, valid: np.ndarray, data_range: float = 1.0) -> float:
    """RealBlur's masked SSIM of two (H, W, C) images (see :mod:`lrdm.evaluation.protocols.realblur`, step 5).

    The full Wang SSIM map per channel (skimage ``full=True``: gaussian sigma 1.5,
    11 taps, 'reflect' padding, population covariances) is weighted by ``valid``, the
    5-pixel border is cropped, each channel's map is averaged over its valid pixels,
    and the channel averages are averaged.  ``a`` and ``b`` should already be masked.
    """
    v = np.broadcast_to(np.asarray(valid, np.float64), a.shape)
    _, smap = structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        data_range=data_range,
        channel_axis=-1,
        **WANG_SSIM,
        full=True,
    )
    r = SSIM_RADIUS
    crop = (slice(r, -r), slice(r, -r))
    per_channel = np.sum((smap * v)[crop], axis=(0, 1)) / np.sum(v[crop], axis=(0, 1))
    return float(np.mean(per_channel))
