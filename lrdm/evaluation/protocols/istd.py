"""``"istd"``: shadow removal on ISTD, following the MATLAB script used by the shadow-removal literature
(DSC / ShadowFormer / ShadowDiffusion; RDDM reports its numbers).

Needs ``mask``: the ground truth's shadow mask, bool (H, W), True = shadow.

1. ``pred`` and ``target`` are converted to float64 in [0, 1] (``x / 255``) and
   each is resized independently to 256 x 256 (``ISTD_SIZE``; or ``resize``) with
   :func:`lrdm.evaluation.imresize.imresize` (MATLAB ``imresize`` semantics: bicubic,
   a = -0.5, antialiased when shrinking, symmetric border; no rounding for float input,
   no clipping).  The mask is resized as MATLAB does for the uint8 0/255 mask PNG
   (uint8 ``imresize``, rounding after each pass) and a pixel counts as shadow where
   the resized value is non-zero (the script's ``smask = ~~m``); non-shadow is the
   rest.  Pairs already at the working size are not touched.
2. ``psnr``: peak 1 on the resized float RGB images, MSE over all 256*256*3 values.
   ``ssim``: 2-D Wang SSIM (gaussian 11 x 11, sigma 1.5, population covariances,
   K1 = 0.01, K2 = 0.03) with data_range 1 per channel, valid region, mean over the
   three channels -- ``skimage.metrics.structural_similarity(channel_axis=-1,
   gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
   (The MATLAB script's own ``ssim`` on the 256 x 256 x 3 double image would be the
   3-D variant of ``"rgb"`` with L = 1; pass the images to ``ssim_volume`` for that.)
3. LAB (:func:`lrdm.evaluation.color.lab_distance`): the resized images are clipped
   to [0, 1] and converted with ``skimage.color.rgb2lab`` (sRGB, D65 white).  Caveat:
   MATLAB's ``makecform('srgb2lab')`` adapts to a D50 white, so absolute MAE values
   differ slightly from the MATLAB script's.
4. With ``d = |L1 - L2| + |a1 - a2| + |b1 - b2|`` per pixel (the channel
   differences are *summed*, not averaged -- the script sums ``dist(:)`` over the
   three LAB channels and divides by the 2-D pixel count)::

       mae_all       = sum(d) / (256 * 256)
       mae_shadow    = sum(d[shadow]) / count(shadow)         (nan if no shadow)
       mae_nonshadow = sum(d[~shadow]) / count(~shadow)       (nan if all shadow)

   These are per-image values; their mean over the test set is the literature's
   "PI-Lab" (per-image) MAE.  The "PP-Lab" (per-pixel, pooled) MAE weights each
   image by its pixel count: :func:`pp_lab` computes it from the per-image scores and
   the masks.

Returns ``{"psnr", "ssim", "mae_all", "mae_shadow", "mae_nonshadow"}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrdm.data.images import UINT8_MAX
from lrdm.evaluation.color import lab_distance
from lrdm.evaluation.imresize import imresize
from lrdm.evaluation.protocols.inputs import as_uint8_prediction, check_image, check_mask, check_resize
from lrdm.evaluation.psnr import psnr
from lrdm.evaluation.ssim import wang_ssim

__all__ = ["ISTD_SIZE", "pp_lab", "prepare", "score_pair", "shadow_mask"]

ISTD_SIZE = 256
"""The protocol's working size (both sides); ``resize`` overrides it."""
PROTOCOL = "istd"
MASK_ON = np.uint8(UINT8_MAX)
"""A shadow pixel of the mask PNG the MATLAB script reads."""


def shadow_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shadow mask at ``size``: uint8 0/255 ``imresize``d, then non-zero = shadow."""
    if mask.shape == size:
        return mask.copy()
    return imresize(mask.astype(np.uint8) * MASK_ON, size) > 0


def prepare(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """A float ``pred`` rounded to uint8, both images and the mask checked; nothing is resized here (the
    protocol resizes the float images itself)."""
    pred = as_uint8_prediction(pred)
    check_image(pred, "pred")
    check_image(target, "target")
    check_mask(mask, target, PROTOCOL)
    return pred, target


def score_pair(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, size: tuple[int, int] | None
) -> dict[str, float]:
    """``istd`` scores of one prepared uint8 pair and its shadow mask at ``size`` (default ``ISTD_SIZE``)."""
    size = size or (ISTD_SIZE, ISTD_SIZE)
    p = imresize(pred.astype(np.float64) / UINT8_MAX, size)
    t = imresize(target.astype(np.float64) / UINT8_MAX, size)
    shadow = shadow_mask(mask, size)
    d = lab_distance(p, t)  # (h, w)
    n_shadow = int(shadow.sum())
    n_non = shadow.size - n_shadow
    return {
        "psnr": psnr(p, t, peak=1.0),
        "ssim": wang_ssim(p, t, channel_axis=-1, data_range=1.0),
        "mae_all": float(d.sum() / d.size),
        "mae_shadow": float(d[shadow].sum() / n_shadow) if n_shadow else float("nan"),
        "mae_nonshadow": float(d[~shadow].sum() / n_non) if n_non else float("nan"),
    }


def pp_lab(
    scores: Sequence[dict[str, float]],
    masks: Sequence[np.ndarray],
    size: int | tuple[int, int] = ISTD_SIZE,
) -> dict[str, float]:
    """Pooled ("PP-Lab", per-pixel) LAB MAE over a test set from per-image ``istd`` scores.

    ``sum_i mae_i * n_i / sum_i n_i`` for each region, where ``n_i`` is image ``i``'s
    pixel count of the region at the working ``size`` (the mask resized as in ``score``),
    i.e. the total LAB distance over all images divided by the total pixel count.
    (The plain mean of the per-image values is the "PI-Lab" MAE.)

    Returns:
        ``{"mae_all", "mae_shadow", "mae_nonshadow"}``.
    """
    if len(scores) != len(masks):
        raise ValueError(f"got {len(scores)} scores but {len(masks)} masks")
    hw = check_resize(size)
    tot = {"mae_all": 0.0, "mae_shadow": 0.0, "mae_nonshadow": 0.0}
    cnt = dict.fromkeys(tot, 0)
    for s, m in zip(scores, masks):
        shadow = shadow_mask(np.asarray(m, bool), hw)
        n = {"mae_all": shadow.size, "mae_shadow": int(shadow.sum()), "mae_nonshadow": int((~shadow).sum())}
        for k in tot:
            if n[k]:
                tot[k] += s[k] * n[k]
                cnt[k] += n[k]
    return {k: tot[k] / cnt[k] if cnt[k] else float("nan") for k in tot}
