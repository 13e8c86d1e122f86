"""Precision boundaries of the diffusion arithmetic.

Under bf16 (or fp16) autocast only the network runs in reduced precision.  The low-rank projection
``Q_k`` (LRDM Eq. 13), the forward sample (LRDM Eq. 14), the training targets and the sampler's update
(RDDM Eq. 13) run in float32: autocast would otherwise run the projection's reconstruction matmul in bf16
(an error of about 1e-2 on a ``(4, 3, 64, 64)`` residual).  The loss is computed in float32 as well.
"""

from __future__ import annotations

import torch

HALF_PRECISION = (torch.float16, torch.bfloat16)
"""Reduced-precision dtypes that the diffusion arithmetic lifts to float32."""


def full_precision(device: torch.device) -> torch.autocast:
    """A context in which autocast is off on ``device``'s type, so tensors keep their own dtype."""
    return torch.autocast(device_type=device.type, enabled=False)


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when it is a half-precision tensor (a network output under autocast), else ``x``."""
    return x.float() if x.dtype in HALF_PRECISION else x


def lifted(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` out of half precision (:func:`as_float32`) and promoted to ``like``'s dtype where that is wider:
    a network output made ready for the sampler's arithmetic on ``like``."""
    value = as_float32(value)
    return value.to(torch.promote_types(value.dtype, like.dtype))
