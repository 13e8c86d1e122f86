"""``"lrdm_y"``: the LRDM paper's own Python protocol (``calc_psnr`` / ``calc_ssim`` of the official LRDM
trainer), meant for images that went through its test transform (:func:`lrdm_test_resize`):

* PSNR on the BT.601 luma of the *difference*: ``d = (pred - target) / 255`` (0..255 units, the float
  prediction **unrounded**), ``y = d · (65.738, 129.057, 25.064) / 256``, a 1-pixel border shaved, then
  ``-10 log10(mean(y²))``. (Note the 256: the weights are those of ``rgb2ycbcr`` scaled by 256/255.)
* SSIM on ``Y' = RGB · (65.738, 129.057, 25.064) / 255 + 16`` (note the 255) of the prediction
  **rounded** to integers and of the target, 1-pixel border shaved, Wang's SSIM (gaussian 11 × 11,
  σ 1.5, ``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``, population statistics) averaged over the valid
  region. Y' is not rounded.
* The test set's score is the mean of the per-image values.

A float prediction is scored as the official LRDM code does: PSNR unrounded, SSIM rounded
(``round(pred · 255)``, ties to even as ``torch.round``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lrdm.evaluation.imresize import imresize
from lrdm.evaluation.protocols.inputs import check_float_prediction, check_image, check_mask
from lrdm.evaluation.psnr import PEAK
from lrdm.evaluation.ssim import SSIM_WIN, wang_ssim

__all__ = ["LRDM_TEST_SIZE", "lrdm_test_resize", "prepare", "score_pair"]

PROTOCOL = "lrdm_y"
LRDM_Y_WEIGHTS = np.array([65.738, 129.057, 25.064])
"""BT.601 luma weights of the LRDM code (``rgb2ycbcr``'s, in units of 1/255 of the 0..255 scale)."""
LRDM_PSNR_DIVISOR = 256.0
"""``calc_psnr`` divides the weighted difference by 256 (not 255)."""
LRDM_SSIM_DIVISOR = 255.0
LRDM_Y_OFFSET = 16.0
LRDM_SHAVE = 1
"""Border (pixels) both LRDM metrics shave off."""
LRDM_TEST_SIZE = 256
LRDM_PAD_BLOCK = 8
"""The LRDM test transform pads to a multiple of this."""


def padded_side(n: int, size: int) -> int:
    """The LRDM test transform's padded length: at least ``size``, rounded up to a multiple of 8."""
    n = max(n, size)
    return -(-n // LRDM_PAD_BLOCK) * LRDM_PAD_BLOCK


def lrdm_test_resize(image: np.ndarray, size: int = LRDM_TEST_SIZE) -> np.ndarray:
    """The LRDM test transform: pad bottom and right with black, then resize to ``size × size``.

    The padding brings each side to at least ``size`` and to a multiple of 8; the resize is PIL's
    bicubic (what the official Augmentor pipeline calls). The network restores the transformed input and
    its output is scored against the transformed ground truth (protocol ``lrdm_y``).

    Args:
        image: uint8 RGB ``(H, W, 3)``.
        size: output side.
    Returns:
        uint8 ``(size, size, 3)``.
    """
    check_image(image, "image")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    height, width = image.shape[:2]
    padded = np.zeros((padded_side(height, size), padded_side(width, size), 3), dtype=np.uint8)
    padded[:height, :width] = image
    return np.asarray(Image.fromarray(padded).resize((size, size), Image.Resampling.BICUBIC))


def luma(rgb: np.ndarray, divisor: float) -> np.ndarray:
    """``rgb · LRDM_Y_WEIGHTS / divisor`` in float64 (no offset, no rounding)."""
    return rgb.astype(np.float64) @ LRDM_Y_WEIGHTS / divisor


def shave(a: np.ndarray) -> np.ndarray:
    """``a`` without its ``LRDM_SHAVE``-pixel border."""
    return a[LRDM_SHAVE:-LRDM_SHAVE, LRDM_SHAVE:-LRDM_SHAVE]


def prepare(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` as float64 in 0..255 (a float prediction in [0, 1] scaled, not rounded), ``target`` uint8,
    both brought to ``size`` when one is given, then checked for equal shapes and the minimum size."""
    check_mask(mask, target, PROTOCOL)
    check_image(target, "target")
    if isinstance(pred, np.ndarray) and pred.dtype.kind == "f":
        pred = check_float_prediction(pred) * PEAK
    else:
        check_image(pred, "pred")
        pred = pred.astype(np.float64)
    if size is not None:
        pred, target = imresize(pred, size), imresize(target, size)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred has shape {pred.shape}, target has shape {target.shape}")
    if min(target.shape[:2]) < SSIM_WIN + 2 * LRDM_SHAVE:
        raise ValueError(f"images must be at least {SSIM_WIN + 2 * LRDM_SHAVE} pixels for lrdm_y, got {target.shape}")
    return pred, target


def score_pair(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
) -> dict[str, float]:
    """``lrdm_y`` on ``pred`` as float64 in 0..255 (unrounded) and ``target`` uint8, both (H, W, 3), as
    :func:`prepare` returns them (``mask`` and ``size`` are not used)."""
    diff = shave(luma((pred - target.astype(np.float64)) / PEAK, LRDM_PSNR_DIVISOR))
    mse = float(np.mean(diff * diff))
    with np.errstate(divide="ignore"):
        psnr_value = float(-10.0 * np.log10(mse))
    rounded = np.rint(np.clip(pred, 0.0, PEAK))
    y_pred = shave(luma(rounded, LRDM_SSIM_DIVISOR) + LRDM_Y_OFFSET)
    y_target = shave(luma(target, LRDM_SSIM_DIVISOR) + LRDM_Y_OFFSET)
    return {"psnr": psnr_value, "ssim": wang_ssim(y_pred, y_target, None)}
