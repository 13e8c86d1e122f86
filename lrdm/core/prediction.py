"""The model contract: what every network returns, and the one clamp the samplers apply to it.

Every network (:mod:`lrdm.core.nets`), every sampler's ``model_fn`` and every training loss speaks
:class:`Prediction`: the terms a network predicts are set, the others are ``None``.  RDDM's objectives
(RDDM §4.3) fill ``res`` and/or ``noise``; ResShift fills ``x0``.  A sampler completes a prediction
(:func:`lrdm.core.diffusion.official_predictions` for RDDM) and clamps it with :func:`clip_to_image`, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

CLIP_RANGE = (-1.0, 1.0)
"""Model-space image range; the official ``clip_denoised`` clamps the residual and ``Î_0`` to it."""


class Prediction(NamedTuple):
    """A network's (or a sampler's completed) prediction at one step, each term ``(B, C, H, W)`` or ``None``.

    ``res``: the injected residual ``Q_{k(t)}(I_in - I_0)``; ``noise``: ``ε``; ``x0``: the clean image ``Î_0``.
    """

    res: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    x0: torch.Tensor | None = None

    def terms(self) -> dict[str, torch.Tensor]:
        """The terms that are set, by name, in field order (``res``, ``noise``, ``x0``)."""
        return {name: value for name, value in zip(self._fields, self) if value is not None}


class TrainingExample(NamedTuple):
    """A training batch as both processes' losses take it (the network's input side of the contract).

    ``x0``, ``x_in``: ``(B, C, H, W)`` clean target and degraded input in [-1, 1]; ``t``: ``(B,)`` integer
    timesteps in ``[0, T-1]``; ``noise``: ``(B, C, H, W)`` standard Gaussian.
    """

    x0: torch.Tensor
    x_in: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor


TERMS: tuple[str, ...] = Prediction._fields
"""The names a network may predict: the fields of :class:`Prediction`."""

PredictionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prediction]
"""``model_fn(x_t, t_batch, x_in) -> Prediction``: ``(B, C, H, W)``, ``(B,)`` long, ``(B, C, H, W)``; every
network is one."""

PLAIN_TUPLE_LENGTHS = (2, 3)
"""The plain tuples :func:`as_prediction` accepts: ``(res, noise)`` and ``(res, noise, x0)``."""


def as_prediction(output: object) -> Prediction:
    """``output`` as a :class:`Prediction`: a :class:`Prediction` as it is, or a plain ``(res, noise)`` or
    ``(res, noise, x0)`` tuple (the public :func:`lrdm.sample` contract, ``model_fn -> (pred_res, pred_noise)``)."""
    if isinstance(output, Prediction):
        return output
    if isinstance(output, tuple) and len(output) in PLAIN_TUPLE_LENGTHS:
        return Prediction(*output)
    raise TypeError(
        f"model_fn must return a Prediction or a (res, noise) or (res, noise, x0) tuple, got {type(output).__name__}"
        + (f" of length {len(output)}" if isinstance(output, tuple) else "")
    )


def clip_to_image(value: torch.Tensor, clip: bool) -> torch.Tensor:
    """``value`` clamped to :data:`CLIP_RANGE` when ``clip`` (the official ``clip_denoised``), else ``value``."""
    return value.clamp(*CLIP_RANGE) if clip else value
