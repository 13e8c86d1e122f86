"""What every protocol checks before it scores: the protocol name, the images, the mask, the ``resize``
policy, and the rounding of a float prediction to the uint8 image a saved PNG holds.

:func:`prepare_uint8_pair` is the default preparation of a pair (``derain_y``, ``rgb``,
``rgb_channelwise``, ``realblur``); ``istd`` and ``lrdm_y`` prepare their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrdm.evaluation.imresize import imresize
from lrdm.evaluation.psnr import PEAK
from lrdm.evaluation.ssim import SSIM_WIN
from lrdm.vocab import PROTOCOLS, check_choice

__all__ = [
    "as_uint8_prediction",
    "check_float_prediction",
    "check_image",
    "check_mask",
    "check_pair",
    "check_protocol",
    "check_resize",
    "prepare_uint8_pair",
]

MASKED_PROTOCOL = "istd"
"""The one protocol that takes a shadow mask."""


def check_protocol(protocol: str) -> None:
    """Raises ``ValueError`` naming the valid choices unless ``protocol`` is one of ``PROTOCOLS``."""
    check_choice(protocol, PROTOCOLS, "protocol")


def check_image(a: object, name: str, layout: str = "(H, W, 3)", ndim: int = 3) -> None:
    """``a`` must be a uint8 numpy RGB image of ``ndim`` axes (``layout`` names them in the error)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (values 0..255), got {a.dtype}")
    if a.ndim != ndim or a.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image of shape {layout}, got shape {a.shape}")


def check_float_prediction(pred: np.ndarray) -> np.ndarray:
    """A float prediction (H, W, 3) with finite values in [0, 1] -> float64; anything else raises."""
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred must be an RGB image of shape (H, W, 3), got shape {pred.shape}")
    if not np.isfinite(pred).all() or pred.min() < 0.0 or pred.max() > 1.0:
        raise ValueError("a float pred must hold finite values in [0, 1]")
    return pred.astype(np.float64)


def as_uint8_prediction(pred: np.ndarray) -> np.ndarray:
    """A float prediction in [0, 1] rounded as a saved PNG is (``floor(255 x + 0.5)``); uint8 as it is."""
    if isinstance(pred, np.ndarray) and pred.dtype.kind == "f":
        return np.floor(check_float_prediction(pred) * PEAK + 0.5).astype(np.uint8)
    return pred


def check_pair(pred: np.ndarray, target: np.ndarray, batched: bool) -> None:
    """Validate dtype/shape of a (pred, target) pair; ``batched`` selects (N,H,W,3)."""
    layout = "(N, H, W, 3)" if batched else "(H, W, 3)"
    ndim = 4 if batched else 3
    for name, a in (("pred", pred), ("target", target)):
        check_image(a, name, layout, ndim)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred has shape {pred.shape}, target has shape {target.shape}")
    h, w = pred.shape[-3:-1]
    if min(h, w) < SSIM_WIN:
        raise ValueError(f"images must be at least {SSIM_WIN}x{SSIM_WIN} for SSIM, got shape {pred.shape}")


def check_resize(resize: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``None``, an int or an (height, width) pair of ints, each at least the SSIM window -> (h, w) or None."""
    if resize is None:
        return None
    if isinstance(resize, (int, np.integer)):
        size: tuple = (resize, resize)
    elif isinstance(resize, (tuple, list)):
        size = tuple(resize)
    else:
        size = ()
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        raise ValueError(f"resize must be None, an int or an (height, width) pair of ints, got {resize!r}")
    if min(size) < SSIM_WIN:
        raise ValueError(f"resize must be at least {SSIM_WIN} (the SSIM window), got {resize!r}")
    return int(size[0]), int(size[1])


def check_mask(mask: object, target: np.ndarray, protocol: str) -> None:
    """``istd`` needs a bool (H, W) mask of the target's size; every other protocol takes none."""
    if protocol != MASKED_PROTOCOL:
        if mask is not None:
            raise ValueError(f"mask is only used by the 'istd' protocol, not by {protocol!r}")
        return
    if mask is None:
        raise ValueError("the 'istd' protocol needs mask: the shadow mask, bool (H, W), True = shadow")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask must be a bool numpy array (H, W), True = shadow, got {got}")
    if mask.shape != target.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the target's (H, W) = {target.shape[:2]}")


def prepare_uint8_pair(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None,
    size: tuple[int, int] | None,
    *,
    protocol: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The default preparation of one pair: a float ``pred`` rounded to uint8, a mask refused, both images
    brought to ``size`` with :func:`imresize` when one is given (RDDM's policy), then the pair checked."""
    pred = as_uint8_prediction(pred)
    check_mask(mask, target, protocol)  # non-istd: only rejects a given mask
    if size is not None:
        check_image(pred, "pred")
        check_image(target, "target")
        pred, target = imresize(pred, size), imresize(target, size)
    check_pair(pred, target, batched=False)
    return pred, target
