"""MATLAB ``imresize`` (bicubic, antialiased, symmetric border) in NumPy.

The RDDM evaluation scripts resize with MATLAB's ``imresize(img, [h w])``; the ``istd`` protocol and the
``resize`` policy of :func:`lrdm.evaluation.metrics.score` use this copy of it. Semantics: Keys' cubic
kernel with ``a = -0.5``, widened when shrinking (antialiasing), weights normalised per output pixel, taps
outside the image mirrored back ('symmetric'); the axes are resized one after the other; uint8 input is
rounded half away from zero and clipped after each pass, float input is neither rounded nor clipped.
"""

from __future__ import annotations

import numpy as np

from lrdm.data.images import UINT8_MAX

__all__ = ["cubic", "imresize", "resize_weights"]

KERNEL_WIDTH = 4.0
"""Support of the cubic kernel (taps at distance < 2 on each side), widened by ``1 / scale`` when shrinking."""


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of MATLAB ``imresize`` bicubic weights along one axis.

    Output pixel ``k`` (1-based) samples the input at ``u = k / s + (1 - 1 / s) / 2``
    with ``s = n_out / n_in``; when shrinking (s < 1) the kernel is widened to
    ``s * cubic(s * x)`` (antialiasing).  Each row's weights are normalised to sum 1
    and taps outside the image are mirrored back ('symmetric': ..., 2, 1, 1, 2, ...).
    """
    s = n_out / n_in
    width = KERNEL_WIDTH / s if s < 1 else KERNEL_WIDTH
    u = np.arange(1, n_out + 1, dtype=np.float64) / s + 0.5 * (1.0 - 1.0 / s)
    left = np.floor(u - width / 2.0)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]  # 1-based input indices
    dist = u[:, None] - taps
    w = s * cubic(s * dist) if s < 1 else cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    j = np.mod(taps - 1, 2 * n_in).astype(np.int64)  # 0-based position in [0..n-1, n-1..0]
    j = np.where(j < n_in, j, 2 * n_in - 1 - j)
    out = np.zeros((n_out, n_in))
    np.add.at(out, (np.repeat(np.arange(n_out), taps.shape[1]), j.ravel()), w.ravel())
    return out


def imresize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB ``imresize(img, [h w])`` with its default bicubic, antialiased method.

    Axes are resized one after the other, the one with the smaller scale factor first
    (ties: rows first), each a product with :func:`resize_weights` in float64.  uint8 input
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
        w = resize_weights(out.shape[axis], size[axis])
        out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
        if is_uint8:
            out = np.clip(np.floor(out + 0.5), 0.0, UINT8_MAX)
    return out.astype(np.uint8) if is_uint8 else out
