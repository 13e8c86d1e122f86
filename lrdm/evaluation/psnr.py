"""PSNR, plain and masked, in NumPy (float64).

``PSNR = 10 log10(peak² / MSE)``; identical images give ``inf`` (MSE = 0, no epsilon is added).
"""

from __future__ import annotations

import numpy as np

from lrdm.data.images import UINT8_MAX

__all__ = ["PEAK", "masked_psnr", "psnr"]

PEAK = float(UINT8_MAX)
"""The peak signal value of uint8 images (0..255)."""


def psnr(a: np.ndarray, b: np.ndarray, batched: bool = False, peak: float = PEAK) -> np.ndarray | float:
    """PSNR = 10 log10(peak^2 / MSE), MSE over all non-batch axes (peak 255 by default).

    Same formula as ``skimage.metrics.peak_signal_noise_ratio(data_range=peak)``, but
    vectorised over a leading batch axis when ``batched``; MSE = 0 gives ``inf``.

    Args:
        a, b: arrays of equal shape in the 0..peak scale (any numeric dtype).
        batched: if True the first axis indexes images and an array (N,) is returned.
        peak: the maximum signal value (255 for 0..255 images, 1 for [0, 1]).
    """
    diff = a.astype(np.float64) - b.astype(np.float64)
    axes = tuple(range(1, diff.ndim)) if batched else None
    mse = np.mean(diff * diff, axis=axes)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(peak**2 / mse)
    return out if batched else float(out)


def masked_psnr(a: np.ndarray, b: np.ndarray, valid: np.ndarray, peak: float = 1.0) -> float:
    """PSNR over the valid entries only: MSE = sum(valid * (a - b)^2) / sum(valid).

    Args:
        a, b: arrays of equal shape (H, W, C).
        valid: 0/1 (or bool) array broadcastable to ``a`` -- RealBlur's warped mask.
        peak: maximum signal value (1 for [0, 1] images).
    """
    v = np.broadcast_to(np.asarray(valid, np.float64), a.shape)
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.sum(v * diff * diff) / np.sum(v)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(peak**2 / mse))
