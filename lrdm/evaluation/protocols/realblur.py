"""``"realblur"``: the RealBlur-J/R protocol (Rim et al. 2020, official ``evaluate_RealBlur.py``).

:func:`realblur_align` registers the restored image to the ground truth, then PSNR and SSIM are taken only
over the pixels the warp keeps valid.  Images as float32 in [0, 1]; with ``z`` = pred, ``x`` = target:

1. intensity matching ``z_s = (sum(x z) / sum(z z)) z`` (sums over all values);
2. ECC (``cv2.findTransformECC``) on the grayscale images (``cv2.COLOR_RGB2GRAY``:
   0.299 R + 0.587 G + 0.114 B) with template = gray(x), input = gray(z_s),
   ``MOTION_HOMOGRAPHY`` from the identity, termination after exactly 100
   iterations (``COUNT | EPS`` with eps = 0, as the official script),
   ``gaussFiltSize = 5``, no input mask.  The estimated ``W`` maps target pixel
   coordinates into the prediction: ``z_s(W p) ~ x(p)``;
3. ``z_r = warpPerspective(z_s, W, INTER_CUBIC | WARP_INVERSE_MAP, BORDER_REFLECT)``
   and the validity mask ``c = warpPerspective(ones(H, W, 3), W, INTER_NEAREST |
   WARP_INVERSE_MAP, BORDER_CONSTANT 0)``; both images are multiplied by ``c``;
4. masked PSNR (:func:`lrdm.evaluation.psnr.masked_psnr`):
   ``10 log10(1 / (sum((x c - z_r c)^2) / sum(c)))``, i.e. the MSE over the valid
   values of all three RGB channels (RGB, not gray, because the official script scores
   the colour images -- gray is only used to estimate the warp); peak 1 on [0, 1]
   equals peak 255 on 0..255;
5. masked SSIM (:func:`lrdm.evaluation.ssim.masked_ssim`): the full 2-D Wang SSIM map
   of each channel (gaussian sigma 1.5, 11 taps, population covariances, data_range 1,
   scipy 'reflect' padding -- skimage's ``full=True`` map) of the masked images ``x c``
   and ``z_r c``; the 5-pixel border is cropped, then per channel
   ``sum(map * c) / sum(c)`` over the cropped region, and the mean over channels.

The metrics are computed in float64 from the float32 aligned images.  ECC failing to converge raises
``RuntimeError``.
"""

from __future__ import annotations

import cv2
import numpy as np

from lrdm.data.images import UINT8_MAX
from lrdm.evaluation.psnr import masked_psnr
from lrdm.evaluation.ssim import masked_ssim

__all__ = ["realblur_align", "score_pair"]

ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILT = 5


def realblur_align(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Register ``pred`` to ``target`` as the RealBlur evaluation does (steps 1-3).

    Args:
        pred, target: uint8 RGB images (H, W, 3) of the same shape.
    Returns:
        ``(pred_aligned, target_masked, valid, warp)``: the intensity-matched, warped and
        masked prediction and the masked target (float32 (H, W, 3) in ~[0, 1]), the
        validity mask (float32 (H, W, 3) of 0/1) and the 3x3 homography ``W`` (float32,
        ``W[2, 2] = 1``) with ``pred(W p) ~ target(p)`` in pixel coordinates.
    Raises:
        RuntimeError: ECC did not converge (e.g. uncorrelated or constant images).
    """
    x = target.astype(np.float32) / np.float32(UINT8_MAX)
    z = pred.astype(np.float32) / np.float32(UINT8_MAX)
    zz = float(np.sum(z.astype(np.float64) ** 2))
    gain = float(np.sum(x.astype(np.float64) * z)) / zz if zz > 0 else 1.0
    zs = (z * np.float32(gain)).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(
            cv2.cvtColor(x, cv2.COLOR_RGB2GRAY),
            cv2.cvtColor(zs, cv2.COLOR_RGB2GRAY),
            np.eye(3, dtype=np.float32),
            cv2.MOTION_HOMOGRAPHY,
            criteria,
            None,
            ECC_GAUSS_FILT,
        )
    except cv2.error as err:
        raise RuntimeError(f"RealBlur ECC alignment failed: {str(err).strip().splitlines()[-1]}") from err
    h, w = target.shape[:2]
    zr = cv2.warpPerspective(
        zs, warp, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    valid = cv2.warpPerspective(
        np.ones_like(zs),
        warp,
        (w, h),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return zr * valid, x * valid, valid, warp


def score_pair(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
) -> dict[str, float]:
    """``realblur`` scores of one prepared uint8 pair (``mask`` and ``size`` are not used: the pair is
    already at its size and the protocol takes no mask)."""
    zr, xr, valid, _ = realblur_align(pred, target)
    return {"psnr": masked_psnr(xr, zr, valid, peak=1.0), "ssim": masked_ssim(xr, zr, valid, data_range=1.0)}
