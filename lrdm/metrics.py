"""Image quality metrics (PSNR / SSIM) under the evaluation protocols of the papers.

All metrics take uint8 RGB images laid out as (H, W, 3) -- or (N, H, W, 3) for the
batch helper -- with values in 0..255, i.e. what is written to / read from PNG.

Protocols
---------
``"derain_y"``
    The deraining protocol (MATLAB evaluation scripts): both images are converted to
    the Y channel of MATLAB ``rgb2ycbcr`` on uint8 input, which returns uint8::

        Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255),   R, G, B in 0..255

    The conversion itself is ``skimage.color.rgb2ycbcr`` (same BT.601 matrix, float64);
    the result is rounded half away from zero (MATLAB's uint8 cast) and clipped to
    0..255.  Caveat: 194 of the 2**24 colours land *exactly* on .5 in exact arithmetic;
    for those, float64 rounding error decides which side they fall on, so Y may differ
    by 1 from other implementations (MATLAB's own double arithmetic, pyiqa's float32).
    PSNR uses peak 255 on Y; SSIM is Wang et al. (``ssim_index.m``): 11x11 gaussian
    window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, population (co)variances, SSIM
    map averaged over the 'valid' region only (the border of width 5 where the window
    would overhang the image is discarded, so padding never influences the result).
``"rgb"``
    PSNR with peak 255 and the MSE taken jointly over all H*W*3 values; SSIM is, for
    now, the mean over R, G, B of the per-channel Wang SSIM above.  The GoPro
    (deblurring) MATLAB protocol, which runs a 3-D SSIM over the RGB volume, is not
    implemented yet and will come as a separate protocol.

PSNR of identical images is ``float('inf')`` (MSE = 0); no epsilon is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

__all__ = ["PROTOCOLS", "psnr", "rgb_to_y", "score", "score_batch", "to_uint8"]

PROTOCOLS: tuple[str, ...] = ("derain_y", "rgb")

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_WIN = 11  # skimage: truncate=3.5 -> radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}; valid choices: {', '.join(PROTOCOLS)}"
        )


def _check_pair(pred: np.ndarray, target: np.ndarray, batched: bool) -> None:
    """Validate dtype/shape of a (pred, target) pair; ``batched`` selects (N,H,W,3)."""
    layout = "(N, H, W, 3)" if batched else "(H, W, 3)"
    ndim = 4 if batched else 3
    for name, a in (("pred", pred), ("target", target)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != np.uint8:
            raise ValueError(
                f"{name} must have dtype uint8 (values 0..255), got {a.dtype}"
            )
        if a.ndim != ndim or a.shape[-1] != 3:
            raise ValueError(
                f"{name} must be an RGB image of shape {layout}, got shape {a.shape}"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"shape mismatch: pred has shape {pred.shape}, target has shape {target.shape}"
        )
    h, w = pred.shape[-3:-1]
    if min(h, w) < SSIM_WIN:
        raise ValueError(
            f"images must be at least {SSIM_WIN}x{SSIM_WIN} for SSIM, got shape {pred.shape}"
        )


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` on uint8 RGB.

    Args:
        rgb: uint8 array (..., 3), values 0..255.
    Returns:
        float64 array (...) holding integers in 16..235 (rounded half away from zero).
    """
    y = rgb2ycbcr(rgb)[..., 0]  # float64, 16 + 65.481 r + ... with r = R / 255
    return np.clip(
        np.floor(y + 0.5), 0.0, 255.0
    )  # y > 0, so this is half-away rounding


def psnr(a: np.ndarray, b: np.ndarray, batched: bool = False) -> np.ndarray | float:
    """PSNR with peak 255 = 10 log10(255^2 / MSE), MSE over all non-batch axes.

    Same formula as ``skimage.metrics.peak_signal_noise_ratio(data_range=255)``, but
    vectorised over a leading batch axis when ``batched``; MSE = 0 gives ``inf``.

    Args:
        a, b: arrays of equal shape in the 0..255 scale (any numeric dtype).
        batched: if True the first axis indexes images and an array (N,) is returned.
    """
    diff = a.astype(np.float64) - b.astype(np.float64)
    axes = tuple(range(1, diff.ndim)) if batched else None
    mse = np.mean(diff * diff, axis=axes)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(PEAK**2 / mse)
    return out if batched else float(out)


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    """Wang SSIM on (H, W) or (H, W, C) float arrays in the 0..255 scale."""
    return float(
        structural_similarity(
            a,
            b,
            data_range=PEAK,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            K1=SSIM_K1,
            K2=SSIM_K2,
            channel_axis=channel_axis,
        )
    )


def _score_stacked(
    preds: np.ndarray, targets: np.ndarray, protocol: str
) -> list[dict[str, float]]:
    """Score validated uint8 batches (N, H, W, 3)."""
    if protocol == "derain_y":
        p, t = rgb_to_y(preds), rgb_to_y(targets)  # (N, H, W) float64
        channel_axis = None
    else:  # "rgb"
        p, t = preds.astype(np.float64), targets.astype(np.float64)
        channel_axis = -1
    psnrs = psnr(p, t, batched=True)
    return [
        {"psnr": float(psnrs[i]), "ssim": _ssim(p[i], t[i], channel_axis)}
        for i in range(len(p))
    ]


def score(pred: np.ndarray, target: np.ndarray, protocol: str) -> dict[str, float]:
    """PSNR and SSIM of one restored image against its ground truth.

    Args:
        pred: uint8 RGB image (H, W, 3), values 0..255; H, W >= 11.
        target: uint8 RGB image of the same shape.
        protocol: one of ``PROTOCOLS`` (see the module docstring).
    Returns:
        ``{"psnr": float (dB, inf if identical), "ssim": float (<= 1)}``.
    Raises:
        ValueError: unknown protocol, non-uint8 dtype, non-(H, W, 3) layout, shape
            mismatch or an image smaller than the SSIM window.
        TypeError: pred or target is not a numpy array.
    """
    _check_protocol(protocol)
    _check_pair(pred, target, batched=False)
    return _score_stacked(pred[None], target[None], protocol)[0]


def score_batch(
    preds: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
    protocol: str,
) -> list[dict[str, float]]:
    """Score many pairs; the Y conversion and PSNR are vectorised over the batch.

    Args:
        preds: uint8 array (N, H, W, 3), or a sequence of uint8 (H_i, W_i, 3) images
            (sizes may differ between pairs).
        targets: same layout and shapes as ``preds``.
        protocol: one of ``PROTOCOLS``.
    Returns:
        One ``score``-style dict per pair, in order.
    """
    _check_protocol(protocol)
    if isinstance(preds, np.ndarray) and isinstance(targets, np.ndarray):
        _check_pair(preds, targets, batched=True)
        return _score_stacked(preds, targets, protocol)
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} preds but {len(targets)} targets")
    for p, t in zip(preds, targets):
        _check_pair(p, t, batched=False)
    if preds and len({p.shape for p in preds}) == 1:
        return _score_stacked(np.stack(preds), np.stack(targets), protocol)
    return [
        _score_stacked(p[None], t[None], protocol)[0] for p, t in zip(preds, targets)
    ]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model-space image tensor -> uint8 channels-last numpy image.

    Args:
        x: float tensor (B, 3, H, W) or (3, H, W) in [-1, 1] (clamped first), any device.
    Returns:
        uint8 array (B, H, W, 3) or (H, W, 3): round((x + 1) / 2 * 255).
    Raises:
        ValueError: wrong layout, or non-finite values (a diverged sample should be loud).
        TypeError: x is not a torch.Tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(
            f"expected shape (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}"
        )
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("tensor contains NaN or inf values")
    u = torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)
    return u.movedim(-3, -1).cpu().numpy()
