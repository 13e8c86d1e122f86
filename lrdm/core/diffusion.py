"""Forward process and training objectives of (low-rank) residual diffusion.

Model space: images in [-1, 1]; ``I_0`` clean target, ``I_in`` degraded input, ``I_res = I_in - I_0``.
Forward process (LRDM Eq. 14): ``I_t = I_0 + ᾱ_t Q_{k(t)}(I_res) + β̄_t ε``.  Only the injected
residual is low-rank; the network sees ``concat(I_t, I_in)`` and ``t`` and stays full-rank.

Objectives (RDDM §4.3):
  * ``pred_res_noise`` (SM-Res-N, default): predict ``Q_{k(t)}(I_res)`` and ``ε``.
  * ``pred_res`` (SM-Res): predict ``Q_{k(t)}(I_res)``; ``ε`` is derived with RDDM Eq. 16.
  * ``pred_noise`` (SM-N): predict ``ε``; the residual is derived with RDDM Eq. 16.

RDDM Eq. 16, ``I_t = I_in + (ᾱ_t - 1) I_res + β̄_t ε``, assumes the full residual was injected.  Under a
low-rank forward process it holds only approximately (the error is ``(1 - ᾱ_t)`` times the part of
``I_res`` outside the rank-``k(t)`` subspace); the reference implementation uses it all the same, and so
do SM-Res and SM-N here.  The default SM-Res-N needs no conversion.

Sampling predictions (:func:`official_predictions`) follow the official code's ``model_predictions``,
clipping order included: with clipping on, the *derived* term follows the clipped one (SM-Res clips the
residual and derives ``ε`` from it; SM-N clips ``Î_0`` and takes ``res = clip(I_in - Î_0)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from lrdm.core.lowrank import PER_IMAGE_SVD, Projector, spec_ranks
from lrdm.core.precision import full_precision
from lrdm.core.schedules import ResidualSchedule, gather
from lrdm.vocab import FULL_RANK, LOSSES, OBJECTIVES, RankSpec

CLIP_RANGE = (-1.0, 1.0)
"""Model-space image range; the official ``clip_denoised`` clamps the residual and ``Î_0`` to it."""

ModelOutput = tuple[torch.Tensor | None, torch.Tensor | None]
Predictions = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]
ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Predictions]


class ResidualNetwork(Protocol):
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, x_in: torch.Tensor) -> ModelOutput: ...


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid choices: {', '.join(OBJECTIVES)}")


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid choices: {', '.join(LOSSES)}")


def predicted_terms(objective: str) -> tuple[bool, bool]:
    """Which of (residual, noise) the network predicts for an objective."""
    check_objective(objective)
    return objective in ("pred_res_noise", "pred_res"), objective in ("pred_res_noise", "pred_noise")


def q_sample(
    x0: torch.Tensor, residual: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: ResidualSchedule
) -> torch.Tensor:
    """Closed-form forward sample (LRDM Eq. 13/14): ``I_t = I_0 + ᾱ_t · residual + β̄_t · noise``.

    Args:
        x0: ``(B, C, H, W)`` clean images ``I_0`` in [-1, 1].
        residual: ``(B, C, H, W)`` residual, already projected (``Q_{k(t)}(I_in - I_0)``) or full.
        t: ``(B,)`` integer timesteps in ``[0, T-1]``.
        noise: ``(B, C, H, W)`` standard Gaussian ``ε``.

    Runs in the inputs' precision under any autocast, and reads nothing back to the host (``t`` is checked
    where it is drawn, :func:`lrdm.core.schedules.check_timesteps`).
    """
    with full_precision(x0.device):
        return x0 + gather(schedule.alpha_bar, t, x0) * residual + gather(schedule.beta_bar, t, x0) * noise


def noise_from_residual(
    x_t: torch.Tensor, x_in: torch.Tensor, residual: torch.Tensor, t: torch.Tensor, schedule: ResidualSchedule
) -> torch.Tensor:
    """RDDM Eq. 16 solved for ``ε``: ``(I_t - I_in - (ᾱ_t - 1) I_res) / β̄_t`` (SM-Res)."""
    alpha_bar = gather(schedule.alpha_bar, t, x_t)
    return (x_t - x_in - (alpha_bar - 1) * residual) / gather(schedule.beta_bar, t, x_t)


def one_minus_alpha_bar(schedule: ResidualSchedule) -> torch.Tensor:
    """``1 - ᾱ_t`` ``(T,)`` float64, the last entry bounded below by :data:`lrdm.core.schedules.SM_N_LAST_DENOMINATOR`.

    The schedule's cached table (do not modify it): one table per schedule, so its device copy is cached."""
    return schedule.one_minus_alpha_bar


def residual_from_noise(
    x_t: torch.Tensor, x_in: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: ResidualSchedule
) -> torch.Tensor:
    """RDDM Eq. 16 solved for ``I_res``: ``(I_in + β̄_t ε - I_t) / (1 - ᾱ_t)`` (SM-N), with
    ``1 - ᾱ_t`` from :func:`one_minus_alpha_bar`."""
    return (x_in + gather(schedule.beta_bar, t, x_t) * noise - x_t) / gather(one_minus_alpha_bar(schedule), t, x_t)


def x0_from_noise(
    x_t: torch.Tensor, x_in: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: ResidualSchedule
) -> torch.Tensor:
    """RDDM Eq. 16 solved for ``Î_0 = I_in - I_res``: ``(I_t - ᾱ_t I_in - β̄_t ε) / (1 - ᾱ_t)`` (SM-N), the
    form the official sampler evaluates."""
    alpha_bar = gather(schedule.alpha_bar, t, x_t)
    numerator = x_t - alpha_bar * x_in - gather(schedule.beta_bar, t, x_t) * noise
    return numerator / gather(one_minus_alpha_bar(schedule), t, x_t)


def checked_output(objective: str, output: ModelOutput) -> ModelOutput:
    """``output`` = ``(residual or None, noise or None)``, checked against what ``objective`` predicts."""
    predicts_res, predicts_noise = predicted_terms(objective)
    residual, noise = output
    if (residual is not None) != predicts_res or (noise is not None) != predicts_noise:
        raise ValueError(f"objective {objective!r} expects (residual, noise) presence {(predicts_res, predicts_noise)}")
    return residual, noise


def official_predictions(
    objective: str,
    output: ModelOutput,
    x_t: torch.Tensor,
    x_in: torch.Tensor,
    t: torch.Tensor,
    schedule: ResidualSchedule,
    clip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sampler's per-step ``(residual, noise, Î_0)``, as the official ``model_predictions`` computes them.

    With ``clip`` (the official ``clip_denoised``) values are clamped to :data:`CLIP_RANGE` in this order:

    * ``pred_res_noise``: ``res = clip(res)``; ``Î_0 = clip(I_t - ᾱ_t res - β̄_t ε)``.
    * ``pred_res``: ``res = clip(res)``; ``ε`` from the clipped ``res`` (Eq. 16, unclipped);
      ``Î_0 = clip(I_in - res)``.
    * ``pred_noise``: ``Î_0 = clip((I_t - ᾱ_t I_in - β̄_t ε) / (1 - ᾱ_t))``; ``res = clip(I_in - Î_0)``.

    Args:
        output: the network's ``(residual or None, noise or None)``, each ``(B, C, H, W)``.
        x_t, x_in: ``(B, C, H, W)`` current state and degraded input in [-1, 1]; ``t``: ``(B,)`` timesteps.
    """
    residual, noise = checked_output(objective, output)
    with full_precision(x_t.device):
        return _official_predictions(objective, residual, noise, x_t, x_in, t, schedule, clip)


def _official_predictions(
    objective: str,
    residual: torch.Tensor | None,
    noise: torch.Tensor | None,
    x_t: torch.Tensor,
    x_in: torch.Tensor,
    t: torch.Tensor,
    schedule: ResidualSchedule,
    clip: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`official_predictions` on checked outputs, lifted to ``x_t``'s precision (a bf16 network output
    under autocast becomes float32, so the sampler's arithmetic runs in float32)."""
    residual = None if residual is None else residual.to(torch.promote_types(residual.dtype, x_t.dtype))
    noise = None if noise is None else noise.to(torch.promote_types(noise.dtype, x_t.dtype))

    def maybe_clip(value: torch.Tensor) -> torch.Tensor:
        return value.clamp(*CLIP_RANGE) if clip else value

    if objective == "pred_noise":
        x0 = maybe_clip(x0_from_noise(x_t, x_in, noise, t, schedule))
        return maybe_clip(x_in - x0), noise, x0
    residual = maybe_clip(residual)
    if objective == "pred_res":
        noise = noise_from_residual(x_t, x_in, residual, t, schedule)
        return residual, noise, maybe_clip(x_in - residual)
    x0 = x_t - gather(schedule.alpha_bar, t, x_t) * residual - gather(schedule.beta_bar, t, x_t) * noise
    return residual, noise, maybe_clip(x0)


def as_model_fn(network: ResidualNetwork, objective: str, schedule: ResidualSchedule, clip: bool = True) -> ModelFn:
    """Wraps a network into the sampler's ``model_fn(x_t, t, x_in) -> (residual, noise, Î_0)``
    (:func:`official_predictions`; ``clip`` must match the sampler's)."""
    check_objective(objective)

    def model_fn(x_t: torch.Tensor, t: torch.Tensor, x_in: torch.Tensor) -> Predictions:
        return official_predictions(objective, network(x_t, t, x_in), x_t, x_in, t, schedule, clip)

    return model_fn


def project_residual(
    residual: torch.Tensor, t: torch.Tensor, T: int, rank_spec: RankSpec, projector: Projector = PER_IMAGE_SVD
) -> torch.Tensor:
    """``Q_{k(t)}(residual)`` for a batch ``(B, C, H, W)`` with timesteps ``t`` ``(B,)``; identity for ``full``."""
    if rank_spec.is_full:
        return residual
    height, width = residual.shape[-2:]
    return projector(residual, spec_ranks(rank_spec, t, T, height, width))


def loss_distance(pred: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """L1 or L2 distance (mean over elements) in float32, under any autocast."""
    with full_precision(pred.device):
        if loss == "l1":
            return F.l1_loss(pred.float(), target.float())
        return F.mse_loss(pred.float(), target.float())


def training_loss(
    network: ResidualNetwork,
    x0: torch.Tensor,
    x_in: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    schedule: ResidualSchedule,
    objective: str = "pred_res_noise",
    loss: str = "l1",
    rank_spec: RankSpec = FULL_RANK,
    projector: Projector = PER_IMAGE_SVD,
) -> torch.Tensor:
    """Scalar training loss: L1 or L2 (mean over elements), summed over the predicted terms.

    Args:
        x0, x_in: ``(B, C, H, W)`` clean target and degraded input in [-1, 1].
        t: ``(B,)`` timesteps in ``[0, T-1]``; noise: ``(B, C, H, W)`` standard Gaussian.
    """
    check_objective(objective)
    check_loss(loss)
    with full_precision(x0.device):  # the targets and I_t in float32; only the network runs under autocast
        residual = project_residual(x_in - x0, t, schedule.T, rank_spec, projector)
        x_t = q_sample(x0, residual, t, noise, schedule)
    pred_res, pred_noise = network(x_t, t, x_in)
    predicts_res, predicts_noise = predicted_terms(objective)
    total = x0.new_zeros((), dtype=torch.float32)
    if predicts_res:
        total = total + loss_distance(pred_res, residual, loss)
    if predicts_noise:
        total = total + loss_distance(pred_noise, noise, loss)
    return total
