"""``"derain_y"``: the deraining protocol (MATLAB evaluation scripts).

Both images are converted to the Y channel of MATLAB ``rgb2ycbcr`` on uint8 input, which returns uint8::

    Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255),   R, G, B in 0..255

The conversion itself is ``skimage.color.rgb2ycbcr`` (same BT.601 matrix, float64); the result is rounded
half away from zero (MATLAB's uint8 cast) and clipped to 0..255 (:func:`lrdm.evaluation.color.rgb_to_y`).
Caveat: 194 of the 2**24 colours land *exactly* on .5 in exact arithmetic; for those, float64 rounding
error decides which side they fall on, so Y may differ by 1 from other implementations (MATLAB's own double
arithmetic, pyiqa's float32). PSNR uses peak 255 on Y; SSIM is Wang et al. (``ssim_index.m``): 11x11
gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, population (co)variances, SSIM map averaged over
the 'valid' region only (the border of width 5 where the window would overhang the image is discarded, so
padding never influences the result; :func:`lrdm.evaluation.ssim.wang_ssim`).
"""

from __future__ import annotations

import numpy as np

from lrdm.evaluation.color import rgb_to_y
from lrdm.evaluation.psnr import psnr
from lrdm.evaluation.ssim import wang_ssim

__all__ = ["score_stack"]


def score_stack(preds: np.ndarray, targets: np.ndarray) -> list[dict[str, float]]:
    """``derain_y`` scores of validated same-shape uint8 stacks (N, H, W, 3); PSNR vectorised."""
    p, t = rgb_to_y(preds), rgb_to_y(targets)  # (N, H, W) float64
    psnrs = psnr(p, t, batched=True)
    return [{"psnr": float(psnrs[i]), "ssim": wang_ssim(p[i], t[i], None)} for i in range(len(p))]
