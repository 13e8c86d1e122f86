"""Image quality metrics under the evaluation protocols of the papers.

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
    The GoPro / HIDE deblurring protocol (MATLAB ``psnr(A, ref)`` and ``ssim(A, ref)``
    on the uint8 RGB images, as in the DeblurGAN / MPRNet evaluation scripts).  PSNR:
    peak 255, MSE jointly over all H*W*3 values.  SSIM: MATLAB's ``ssim`` treats an
    M x N x 3 array as a *volume* (see ``ssim_volume``): images as float64 in 0..255,
    every local statistic is a separable 3-D gaussian filter (``imgaussfilt3``), sigma
    1.5 in all three axes, 11 taps (radius ceil(3 * 1.5) = 5) in all three axes,
    normalised to sum 1, 'replicate' padding (the image is extended by repeating its
    edge values, also along the 3-long channel axis, so the z-filter sees each end
    channel 5 extra times); C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, population
    (co)variances ``E[xy] - E[x]E[y]``, and the map::

        ssim = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

    averaged over *all* H*W*3 positions (MATLAB keeps the full, padded-size map; no
    border is cropped).  Implemented with ``scipy.ndimage.gaussian_filter(sigma=1.5,
    radius=5, mode='nearest')``.
``"rgb_channelwise"``
    The per-channel alternative used by many Python evaluations (and by this module's
    ``"rgb"`` before the 3-D SSIM existed): PSNR as ``"rgb"``; SSIM is the mean over
    R, G, B of the 2-D Wang SSIM of ``"derain_y"`` (valid region, L = 255).
``"istd"``
    Shadow removal on ISTD, following the MATLAB script used by the shadow-removal
    literature (DSC / ShadowFormer / ShadowDiffusion; RDDM reports its numbers).
    Needs ``mask``: the ground truth's shadow mask, bool (H, W), True = shadow.

    1. ``pred`` and ``target`` are converted to float64 in [0, 1] (``x / 255``) and
       each is resized independently to 256 x 256 (``ISTD_SIZE``; or ``resize``) with
       ``imresize`` (MATLAB ``imresize`` semantics: bicubic, a = -0.5, antialiased
       when shrinking, symmetric border; no rounding for float input, no clipping).
       The mask is resized as MATLAB does for the uint8 0/255 mask PNG (uint8
       ``imresize``, rounding after each pass) and a pixel counts as shadow where the
       resized value is non-zero (the script's ``smask = ~~m``); non-shadow is the rest.
       Pairs already at the working size are not touched.
    2. ``psnr``: peak 1 on the resized float RGB images, MSE over all 256*256*3 values.
       ``ssim``: 2-D Wang SSIM (gaussian 11 x 11, sigma 1.5, population covariances,
       K1 = 0.01, K2 = 0.03) with data_range 1 per channel, valid region, mean over the
       three channels -- ``skimage.metrics.structural_similarity(channel_axis=-1,
       gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
       (The MATLAB script's own ``ssim`` on the 256 x 256 x 3 double image would be the
       3-D variant of ``"rgb"`` with L = 1; pass the images to ``ssim_volume`` for that.)
    3. LAB: the resized images are clipped to [0, 1] and converted with
       ``skimage.color.rgb2lab`` (sRGB, D65 white).  Caveat: MATLAB's
       ``makecform('srgb2lab')`` adapts to a D50 white, so absolute MAE values differ
       slightly from the MATLAB script's.
    4. With ``d = |L1 - L2| + |a1 - a2| + |b1 - b2|`` per pixel (the channel
       differences are *summed*, not averaged -- the script sums ``dist(:)`` over the
       three LAB channels and divides by the 2-D pixel count)::

           mae_all       = sum(d) / (256 * 256)
           mae_shadow    = sum(d[shadow]) / count(shadow)         (nan if no shadow)
           mae_nonshadow = sum(d[~shadow]) / count(~shadow)       (nan if all shadow)

       These are per-image values; their mean over the test set is the literature's
       "PI-Lab" (per-image) MAE.  The "PP-Lab" (per-pixel, pooled) MAE weights each
       image by its pixel count: ``pp_lab`` computes it from the per-image scores and
       the masks.
    Returns ``{"psnr", "ssim", "mae_all", "mae_shadow", "mae_nonshadow"}``.
``"realblur"``
    The RealBlur-J/R protocol (Rim et al. 2020, official ``evaluate_RealBlur.py``):
    ``realblur_align`` registers the restored image to the ground truth, then PSNR and
    SSIM are taken only over the pixels the warp keeps valid.  Images as float32 in
    [0, 1]; with ``z`` = pred, ``x`` = target:

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
    4. masked PSNR (``masked_psnr``): ``10 log10(1 / (sum((x c - z_r c)^2) / sum(c)))``,
       i.e. the MSE over the valid values of all three RGB channels (RGB, not gray,
       because the official script scores the colour images -- gray is only used to
       estimate the warp); peak 1 on [0, 1] equals peak 255 on 0..255;
    5. masked SSIM (``masked_ssim``): the full 2-D Wang SSIM map of each channel
       (gaussian sigma 1.5, 11 taps, population covariances, data_range 1, scipy
       'reflect' padding -- skimage's ``full=True`` map) of the masked images ``x c``
       and ``z_r c``; the 5-pixel border is cropped, then per channel
       ``sum(map * c) / sum(c)`` over the cropped region, and the mean over channels.
    The metrics are computed in float64 from the float32 aligned images.  ECC failing
    to converge raises ``RuntimeError``.

``"lrdm_y"``
    The LRDM paper's own Python protocol (``calc_psnr`` / ``calc_ssim`` of the official LRDM trainer),
    meant for images that went through its test transform (:func:`lrdm_test_resize`):

    * PSNR on the BT.601 luma of the *difference*: ``d = (pred - target) / 255`` (0..255 units, the float
      prediction **unrounded**), ``y = d · (65.738, 129.057, 25.064) / 256``, a 1-pixel border shaved, then
      ``-10 log10(mean(y²))``. (Note the 256: the weights are those of ``rgb2ycbcr`` scaled by 256/255.)
    * SSIM on ``Y' = RGB · (65.738, 129.057, 25.064) / 255 + 16`` (note the 255) of the prediction
      **rounded** to integers and of the target, 1-pixel border shaved, Wang's SSIM (gaussian 11 × 11,
      σ 1.5, ``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``, population statistics) averaged over the valid
      region. Y' is not rounded.
    * The test set's score is the mean of the per-image values.

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

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2lab, rgb2ycbcr
from skimage.metrics import structural_similarity

from lrdm.vocab import PROTOCOLS

__all__ = [
    "ISTD_SIZE",
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


PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_WIN = 11  # skimage: truncate=3.5 -> radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_RADIUS = (SSIM_WIN - 1) // 2  # = 5 = ceil(3 * 1.5), MATLAB ssim's filter radius too
SSIM_K1 = 0.01
SSIM_K2 = 0.03
ISTD_SIZE = 256
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
ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILT = 5


# ------------------------------------------------------------------ validation


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid choices: {', '.join(PROTOCOLS)}")


def _check_image(a: object, name: str, layout: str = "(H, W, 3)", ndim: int = 3) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (values 0..255), got {a.dtype}")
    if a.ndim != ndim or a.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image of shape {layout}, got shape {a.shape}")


def _as_uint8_prediction(pred: np.ndarray) -> np.ndarray:
    """A float prediction in [0, 1] rounded as a saved PNG is (``floor(255 x + 0.5)``); uint8 as it is."""
    if isinstance(pred, np.ndarray) and pred.dtype.kind == "f":
        return np.floor(_check_float_prediction(pred) * PEAK + 0.5).astype(np.uint8)
    return pred


def _check_float_prediction(pred: np.ndarray) -> np.ndarray:
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred must be an RGB image of shape (H, W, 3), got shape {pred.shape}")
    if not np.isfinite(pred).all() or pred.min() < 0.0 or pred.max() > 1.0:
        raise ValueError("a float pred must hold finite values in [0, 1]")
    return pred.astype(np.float64)


def _check_pair(pred: np.ndarray, target: np.ndarray, batched: bool) -> None:
    """Validate dtype/shape of a (pred, target) pair; ``batched`` selects (N,H,W,3)."""
    layout = "(N, H, W, 3)" if batched else "(H, W, 3)"
    ndim = 4 if batched else 3
    for name, a in (("pred", pred), ("target", target)):
        _check_image(a, name, layout, ndim)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred has shape {pred.shape}, target has shape {target.shape}")
    h, w = pred.shape[-3:-1]
    if min(h, w) < SSIM_WIN:
        raise ValueError(f"images must be at least {SSIM_WIN}x{SSIM_WIN} for SSIM, got shape {pred.shape}")


def _check_resize(resize: int | Sequence[int] | None) -> tuple[int, int] | None:
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


def _check_mask(mask: object, target: np.ndarray, protocol: str) -> None:
    if protocol != "istd":
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


# -------------------------------------------------------------------- resizing


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of MATLAB ``imresize`` bicubic weights along one axis.

    Output pixel ``k`` (1-based) samples the input at ``u = k / s + (1 - 1 / s) / 2``
    with ``s = n_out / n_in``; when shrinking (s < 1) the kernel is widened to
    ``s * cubic(s * x)`` (antialiasing).  Each row's weights are normalised to sum 1
    and taps outside the image are mirrored back ('symmetric': ..., 2, 1, 1, 2, ...).
    """
    s = n_out / n_in
    width = 4.0 / s if s < 1 else 4.0
    u = np.arange(1, n_out + 1, dtype=np.float64) / s + 0.5 * (1.0 - 1.0 / s)
    left = np.floor(u - width / 2.0)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]  # 1-based input indices
    dist = u[:, None] - taps
    w = s * _cubic(s * dist) if s < 1 else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    j = np.mod(taps - 1, 2 * n_in).astype(np.int64)  # 0-based position in [0..n-1, n-1..0]
    j = np.where(j < n_in, j, 2 * n_in - 1 - j)
    out = np.zeros((n_out, n_in))
    np.add.at(out, (np.repeat(np.arange(n_out), taps.shape[1]), j.ravel()), w.ravel())
    return out


def imresize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB ``imresize(img, [h w])`` with its default bicubic, antialiased method.

    Axes are resized one after the other, the one with the smaller scale factor first
    (ties: rows first), each a product with ``_resize_weights`` in float64.  uint8 input
    is rounded (half away from zero) and clipped to 0..255 after *each* pass, as MATLAB
    does, and returns uint8; float input stays float64, neither rounded nor clipped.
    An axis whose length already matches is left alone (MATLAB's weights are then the
    identity), so an image already of ``size`` is returned unchanged (as a copy).

    Args:
        img: (H, W) or (H, W, C) array, uint8 or float.
        size: output (height, width).
    """
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    scales = [size[0] / img.shape[0], size[1] / img.shape[1]]
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first on ties
        if out.shape[axis] == size[axis]:
            continue
        w = _resize_weights(out.shape[axis], size[axis])
        out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
        if is_uint8:
            out = np.clip(np.floor(out + 0.5), 0.0, 255.0)
    return out.astype(np.uint8) if is_uint8 else out


# --------------------------------------------------------------------- metrics


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` on uint8 RGB.

    Args:
        rgb: uint8 array (..., 3), values 0..255.
    Returns:
        float64 array (...) holding integers in 16..235 (rounded half away from zero).
    """
    y = rgb2ycbcr(rgb)[..., 0]  # float64, 16 + 65.481 r + ... with r = R / 255
    return np.clip(np.floor(y + 0.5), 0.0, 255.0)  # y > 0, so this is half-away rounding


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


WANG_SSIM = {
    "gaussian_weights": True,
    "sigma": SSIM_SIGMA,
    "use_sample_covariance": False,
    "K1": SSIM_K1,
    "K2": SSIM_K2,
}
"""scikit-image settings of Wang et al.'s SSIM (gaussian 11×11, σ = 1.5, population statistics)."""


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None, data_range: float = PEAK) -> float:
    """Wang SSIM (valid region) on (H, W) or (H, W, C) float arrays in the 0..data_range scale."""
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis, **WANG_SSIM))


def ssim_volume(a: np.ndarray, b: np.ndarray, data_range: float = PEAK) -> float:
    """MATLAB ``ssim(A, ref)`` on a 3-D array (an RGB image is treated as a volume).

    3-D gaussian statistics (sigma 1.5, radius 5 = 11 taps per axis, 'replicate'
    padding), C1 = (0.01 L)^2, C2 = (0.03 L)^2, population (co)variances, SSIM map
    averaged over every element.  See the ``"rgb"`` protocol in the module docstring.

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


def masked_ssim(a: np.ndarray, b: np.ndarray, valid: np.ndarray, data_range: float = 1.0) -> float:
    """RealBlur's masked SSIM of two (H, W, C) images (see the module docstring, step 5).

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


# ---------------------------------------------------------------------- RealBlur


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
    x = target.astype(np.float32) / np.float32(255.0)
    z = pred.astype(np.float32) / np.float32(255.0)
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


def _score_realblur(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    zr, xr, valid, _ = realblur_align(pred, target)
    return {"psnr": masked_psnr(xr, zr, valid, peak=1.0), "ssim": masked_ssim(xr, zr, valid, data_range=1.0)}


# -------------------------------------------------------------------------- ISTD


def _istd_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shadow mask at ``size``: uint8 0/255 ``imresize``d, then non-zero = shadow."""
    if mask.shape == size:
        return mask.copy()
    return imresize(mask.astype(np.uint8) * np.uint8(255), size) > 0


def _score_istd(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    p = imresize(pred.astype(np.float64) / 255.0, size)
    t = imresize(target.astype(np.float64) / 255.0, size)
    shadow = _istd_mask(mask, size)
    d = np.sum(np.abs(rgb2lab(np.clip(p, 0.0, 1.0)) - rgb2lab(np.clip(t, 0.0, 1.0))), axis=-1)  # (h, w)
    n_shadow = int(shadow.sum())
    n_non = shadow.size - n_shadow
    return {
        "psnr": psnr(p, t, peak=1.0),
        "ssim": _ssim(p, t, channel_axis=-1, data_range=1.0),
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
    hw = _check_resize(size)
    tot = {"mae_all": 0.0, "mae_shadow": 0.0, "mae_nonshadow": 0.0}
    cnt = dict.fromkeys(tot, 0)
    for s, m in zip(scores, masks):
        shadow = _istd_mask(np.asarray(m, bool), hw)
        n = {"mae_all": shadow.size, "mae_shadow": int(shadow.sum()), "mae_nonshadow": int((~shadow).sum())}
        for k in tot:
            if n[k]:
                tot[k] += s[k] * n[k]
                cnt[k] += n[k]
    return {k: tot[k] / cnt[k] if cnt[k] else float("nan") for k in tot}


# ------------------------------------------------------------------------ LRDM


def _padded_side(n: int, size: int) -> int:
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
    _check_image(image, "image")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    height, width = image.shape[:2]
    padded = np.zeros((_padded_side(height, size), _padded_side(width, size), 3), dtype=np.uint8)
    padded[:height, :width] = image
    return np.asarray(Image.fromarray(padded).resize((size, size), Image.Resampling.BICUBIC))


def _lrdm_luma(rgb: np.ndarray, divisor: float) -> np.ndarray:
    return rgb.astype(np.float64) @ LRDM_Y_WEIGHTS / divisor


def _shave(a: np.ndarray) -> np.ndarray:
    return a[LRDM_SHAVE:-LRDM_SHAVE, LRDM_SHAVE:-LRDM_SHAVE]


def _score_lrdm_y(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``lrdm_y`` on ``pred`` as float64 in 0..255 (unrounded) and ``target`` uint8, both (H, W, 3)."""
    diff = _shave(_lrdm_luma((pred - target.astype(np.float64)) / PEAK, LRDM_PSNR_DIVISOR))
    mse = float(np.mean(diff * diff))
    with np.errstate(divide="ignore"):
        psnr_value = float(-10.0 * np.log10(mse))
    rounded = np.rint(np.clip(pred, 0.0, PEAK))
    y_pred = _shave(_lrdm_luma(rounded, LRDM_SSIM_DIVISOR) + LRDM_Y_OFFSET)
    y_target = _shave(_lrdm_luma(target, LRDM_SSIM_DIVISOR) + LRDM_Y_OFFSET)
    return {"psnr": psnr_value, "ssim": _ssim(y_pred, y_target, None)}


# ------------------------------------------------------------------------ scoring


def _score_stacked(preds: np.ndarray, targets: np.ndarray, protocol: str) -> list[dict[str, float]]:
    """Score validated same-shape uint8 batches (N, H, W, 3) under derain_y / rgb*."""
    if protocol == "derain_y":
        p, t = rgb_to_y(preds), rgb_to_y(targets)  # (N, H, W) float64
    else:
        p, t = preds.astype(np.float64), targets.astype(np.float64)
    psnrs = psnr(p, t, batched=True)
    if protocol == "derain_y":
        ssims = [_ssim(p[i], t[i], None) for i in range(len(p))]
    elif protocol == "rgb":
        ssims = [ssim_volume(p[i], t[i]) for i in range(len(p))]
    else:  # "rgb_channelwise"
        ssims = [_ssim(p[i], t[i], -1) for i in range(len(p))]
    return [{"psnr": float(psnrs[i]), "ssim": ssims[i]} for i in range(len(p))]


def _prepare(
    pred: np.ndarray, target: np.ndarray, protocol: str, mask: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one pair (and its mask); apply the ``resize`` policy (not for istd).

    A float ``pred`` comes back as float64 in 0..255 for ``lrdm_y`` and rounded to uint8 otherwise.
    """
    if protocol == "lrdm_y":
        return _prepare_lrdm_y(pred, target, mask, size)
    pred = _as_uint8_prediction(pred)
    if protocol == "istd":
        _check_image(pred, "pred")
        _check_image(target, "target")
        _check_mask(mask, target, protocol)
        return pred, target
    _check_mask(mask, target, protocol)  # non-istd: only rejects a given mask
    if size is not None:
        _check_image(pred, "pred")
        _check_image(target, "target")
        pred, target = imresize(pred, size), imresize(target, size)
    _check_pair(pred, target, batched=False)
    return pred, target


def _prepare_lrdm_y(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    _check_mask(mask, target, "lrdm_y")
    _check_image(target, "target")
    if isinstance(pred, np.ndarray) and pred.dtype.kind == "f":
        pred = _check_float_prediction(pred) * PEAK
    else:
        _check_image(pred, "pred")
        pred = pred.astype(np.float64)
    if size is not None:
        pred, target = imresize(pred, size), imresize(target, size)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred has shape {pred.shape}, target has shape {target.shape}")
    if min(target.shape[:2]) < SSIM_WIN + 2 * LRDM_SHAVE:
        raise ValueError(f"images must be at least {SSIM_WIN + 2 * LRDM_SHAVE} pixels for lrdm_y, got {target.shape}")
    return pred, target


def _score_one(
    pred: np.ndarray, target: np.ndarray, protocol: str, mask: np.ndarray | None, size: tuple[int, int] | None
) -> dict[str, float]:
    if protocol == "istd":
        return _score_istd(pred, target, mask, size or (ISTD_SIZE, ISTD_SIZE))
    if protocol == "realblur":
        return _score_realblur(pred, target)
    if protocol == "lrdm_y":
        return _score_lrdm_y(pred, target)
    return _score_stacked(pred[None], target[None], protocol)[0]


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
        protocol: one of ``PROTOCOLS`` (see the module docstring).
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
    _check_protocol(protocol)
    size = _check_resize(resize)
    pred, target = _prepare(pred, target, protocol, mask, size)
    return _score_one(pred, target, protocol, mask, size)


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
    _check_protocol(protocol)
    size = _check_resize(resize)
    stackable = protocol in ("derain_y", "rgb", "rgb_channelwise") and size is None and masks is None
    if isinstance(preds, np.ndarray) and isinstance(targets, np.ndarray) and preds.dtype == np.uint8:
        _check_pair(preds, targets, batched=True)
        if stackable:
            return _score_stacked(preds, targets, protocol)
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} preds but {len(targets)} targets")
    mask_list: list[np.ndarray | None] = [None] * len(preds) if masks is None else list(masks)
    if len(mask_list) != len(preds):
        raise ValueError(f"got {len(preds)} preds but {len(mask_list)} masks")
    pairs = [_prepare(p, t, protocol, m, size) for p, t, m in zip(preds, targets, mask_list)]
    if protocol in ("istd", "realblur", "lrdm_y"):
        return [_score_one(p, t, protocol, m, size) for (p, t), m in zip(pairs, mask_list)]
    if pairs and len({p.shape for p, _ in pairs}) == 1:
        return _score_stacked(np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs]), protocol)
    return [_score_stacked(p[None], t[None], protocol)[0] for p, t in pairs]
