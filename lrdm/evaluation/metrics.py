"""Image quality metrics under the evaluation protocols of the papers: the public entry.

:func:`score` and :func:`score_batch` look the protocol up in
:data:`lrdm.evaluation.protocols.PROTOCOL_TABLE`; each protocol's module documents its maths:

``"derain_y"``
    PSNR and Wang SSIM on MATLAB's Y (:mod:`lrdm.evaluation.protocols.derain_y`).
``"rgb"``, ``"rgb_channelwise"``
    PSNR on RGB; MATLAB's 3-D SSIM of the RGB volume, or the mean of the per-channel 2-D SSIMs
    (:mod:`lrdm.evaluation.protocols.rgb`).
``"istd"``
    Shadow removal: PSNR, SSIM and LAB MAE (all / shadow / non-shadow) at 256 x 256
    (:mod:`lrdm.evaluation.protocols.istd`).
``"realblur"``
    ECC alignment, then masked PSNR and SSIM (:mod:`lrdm.evaluation.protocols.realblur`).
``"lrdm_y"``
    The LRDM paper's own luma PSNR and SSIM (:mod:`lrdm.evaluation.protocols.lrdm_y`).

The shared pieces have their own modules: :mod:`lrdm.evaluation.imresize` (MATLAB ``imresize``),
:mod:`lrdm.evaluation.psnr`, :mod:`lrdm.evaluation.ssim` (Wang, 3-D, masked) and
:mod:`lrdm.evaluation.color` (MATLAB Y, LAB distance). Their public names are importable from here too.

All metrics take uint8 RGB images laid out as (H, W, 3) -- or (N, H, W, 3) for the
batch helper -- with values in 0..255, i.e. what is written to / read from PNG.

Predictions as floats
---------------------
``pred`` may be uint8 or float (float32 / float64) in [0, 1], the network's output before it is saved.
``"lrdm_y"`` scores a float prediction as the official LRDM code does: PSNR unrounded, SSIM rounded
(``round(pred · 255)``, ties to even as ``torch.round``). Every other protocol first rounds it to uint8
as saving a PNG does (``floor(pred · 255 + 0.5)``, torchvision's ``save_image``), because RDDM's MATLAB
scripts scored the saved PNGs. ``target`` is always uint8.

Resizing policy (``resize``)
----------------------------
RDDM resizes its inputs to 256 x 256, so its outputs are 256 x 256, and resizes the
ground truth to the output size before scoring.  ``score(..., resize=256)`` (or
``resize=(h, w)``) applies that policy to any protocol: ``pred`` and ``target`` may then
have different sizes, each is brought to the requested size with ``imresize`` (on the
uint8 images, uint8 result, MATLAB semantics; an image already at that size -- the
network output -- is left untouched) and then scored.  ``resize=None`` (default) never
resizes and requires equal shapes, except ``"istd"``, whose protocol always works at
``ISTD_SIZE`` = 256 (``resize`` overrides that size).  Record the policy next to the
numbers (the evaluation table has a ``protocol`` column; append e.g. ``@256``).

PSNR of identical images is ``float('inf')`` (MSE = 0); no epsilon is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrdm.evaluation.color import rgb_to_y
from lrdm.evaluation.imresize import imresize
from lrdm.evaluation.protocols import PROTOCOL_TABLE
from lrdm.evaluation.protocols.inputs import check_pair, check_protocol, check_resize
from lrdm.evaluation.protocols.istd import ISTD_SIZE, pp_lab
from lrdm.evaluation.protocols.lrdm_y import LRDM_TEST_SIZE, lrdm_test_resize
from lrdm.evaluation.protocols.realblur import realblur_align
from lrdm.evaluation.psnr import masked_psnr, psnr
from lrdm.evaluation.ssim import masked_ssim, ssim_volume
from lrdm.vocab import PROTOCOLS

__all__ = [
    "ISTD_SIZE",
    "LRDM_TEST_SIZE",
    "PROTOCOLS",
    "imresize",
    "lrdm_test_resize",
    "masked_psnr",
    "masked_ssim",
    "pp_lab",
    "psnr",
    "realblur_align",
    "rgb_to_y",
    "score",
    "score_batch",
    "ssim_volume",
]


def score(
    pred: np.ndarray,
    target: np.ndarray,
    protocol: str,
    mask: np.ndarray | None = None,
    *,
    resize: int | tuple[int, int] | None = None,
) -> dict[str, float]:
    """Metrics of one restored image against its ground truth.

    Args:
        pred: uint8 RGB image (H, W, 3), values 0..255, or float in [0, 1] (see "Predictions as
            floats": ``lrdm_y`` scores it unrounded, the other protocols round it first); H, W >= 11.
        target: uint8 RGB image of the same shape (any shape when resizing).
        protocol: one of ``PROTOCOLS`` (see the module docstring and the protocol's module).
        mask: ``"istd"`` only (required there): bool (H, W) shadow mask of ``target``,
            True = shadow.
        resize: None, or the RDDM policy: bring both images to ``resize`` x ``resize``
            (or ``(h, w)``) with ``imresize`` before scoring; for ``"istd"`` it
            replaces the protocol's 256 x 256.
    Returns:
        ``{"psnr": float (dB, inf if identical), "ssim": float (<= 1)}``, plus
        ``"mae_all", "mae_shadow", "mae_nonshadow"`` for ``"istd"``.
    Raises:
        ValueError: unknown protocol, non-uint8 dtype, non-(H, W, 3) layout, shape
            mismatch, an image smaller than the SSIM window, a missing / non-bool /
            wrongly shaped istd mask, a mask given to another protocol, a bad resize.
        TypeError: pred or target is not a numpy array.
        RuntimeError: ``"realblur"`` alignment (ECC) failed.
    """
    check_protocol(protocol)
    size = check_resize(resize)
    entry = PROTOCOL_TABLE[protocol]
    pred, target = entry.prepare(pred, target, mask, size)
    return entry.score_pair(pred, target, mask, size)


def score_batch(
    preds: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
    protocol: str,
    masks: np.ndarray | Sequence[np.ndarray] | None = None,
    *,
    resize: int | tuple[int, int] | None = None,
) -> list[dict[str, float]]:
    """Score many pairs; for derain_y / rgb* the Y conversion and PSNR are vectorised.

    Args:
        preds: uint8 array (N, H, W, 3), or a sequence of uint8 (H_i, W_i, 3) images
            (sizes may differ between pairs).
        targets: same layout and shapes as ``preds``.
        protocol: one of ``PROTOCOLS``.
        masks: ``"istd"`` only: bool (N, H, W) or a sequence of (H_i, W_i) masks.
        resize: as in ``score``.
    Returns:
        One ``score``-style dict per pair, in order (equal to calling ``score``).
    """
    check_protocol(protocol)
    size = check_resize(resize)
    entry = PROTOCOL_TABLE[protocol]
    stack = entry.score_stack
    if isinstance(preds, np.ndarray) and isinstance(targets, np.ndarray) and preds.dtype == np.uint8:
        check_pair(preds, targets, batched=True)
        if stack is not None and size is None and masks is None:
            return stack(preds, targets)
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} preds but {len(targets)} targets")
    mask_list: list[np.ndarray | None] = [None] * len(preds) if masks is None else list(masks)
    if len(mask_list) != len(preds):
        raise ValueError(f"got {len(preds)} preds but {len(mask_list)} masks")
    pairs = [entry.prepare(p, t, m, size) for p, t, m in zip(preds, targets, mask_list)]
    if stack is None:
        return [entry.score_pair(p, t, m, size) for (p, t), m in zip(pairs, mask_list)]
    if pairs and len({p.shape for p, _ in pairs}) == 1:
        return stack(np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs]))
    return [stack(p[None], t[None])[0] for p, t in pairs]
