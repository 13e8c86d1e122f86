"""``"rgb"`` and ``"rgb_channelwise"``: PSNR and SSIM on the uint8 RGB images.

``"rgb"``
    The GoPro / HIDE deblurring protocol (MATLAB ``psnr(A, ref)`` and ``ssim(A, ref)``
    on the uint8 RGB images, as in the DeblurGAN / MPRNet evaluation scripts).  PSNR:
    peak 255, MSE jointly over all H*W*3 values.  SSIM: MATLAB's ``ssim`` treats an
    M x N x 3 array as a *volume* (:func:`lrdm.evaluation.ssim.ssim_volume`): images as
    float64 in 0..255, every local statistic is a separable 3-D gaussian filter
    (``imgaussfilt3``), sigma 1.5 in all three axes, 11 taps (radius ceil(3 * 1.5) = 5)
    in all three axes, normalised to sum 1, 'replicate' padding (the image is extended
    by repeating its edge values, also along the 3-long channel axis, so the z-filter
    sees each end channel 5 extra times); C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
    population (co)variances ``E[xy] - E[x]E[y]``, and the map::

        ssim = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

    averaged over *all* H*W*3 positions (MATLAB keeps the full, padded-size map; no
    border is cropped).  Implemented with ``scipy.ndimage.gaussian_filter(sigma=1.5,
    radius=5, mode='nearest')``.
``"rgb_channelwise"``
    The per-channel alternative used by many Python evaluations (and by ``"rgb"``
    before the 3-D SSIM existed): PSNR as ``"rgb"``; SSIM is the mean over R, G, B of
    the 2-D Wang SSIM of ``"derain_y"`` (valid region, L = 255).
"""

from __future__ import annotations

import numpy as np

from lrdm.evaluation.psnr import psnr
from lrdm.evaluation.ssim import ssim_volume, wang_ssim

__all__ = ["score_stack", "score_stack_channelwise"]


def score_stack(preds: np.ndarray, targets: np.ndarray) -> list[dict[str, float]]:
    """``rgb`` scores of validated same-shape uint8 stacks (N, H, W, 3); PSNR vectorised."""
    p, t = preds.astype(np.float64), targets.astype(np.float64)
    psnrs = psnr(p, t, batched=True)
    return [{"psnr": float(psnrs[i]), "ssim": ssim_volume(p[i], t[i])} for i in range(len(p))]


def score_stack_channelwise(preds: np.ndarray, targets: np.ndarray) -> list[dict[str, float]]:
    """``rgb_channelwise`` scores of validated same-shape uint8 stacks (N, H, W, 3); PSNR vectorised."""
    p, t = preds.astype(np.float64), targets.astype(np.float64)
    psnrs = psnr(p, t, batched=True)
    return [{"psnr": float(psnrs[i]), "ssim": wang_ssim(p[i], t[i], -1)} for i in range(len(p))]
