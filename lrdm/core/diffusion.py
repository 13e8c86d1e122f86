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

import torch
import torch.nn.functional as F

from lrdm.core.lowrank import PER_IMAGE_SVD, Projector, spec_ranks
from lrdm.core.precision import full_precision, lifted
from lrdm.core.prediction import Prediction, PredictionFn, TrainingExample, clip_to_image
from lrdm.core.schedules import ResidualSchedule, gather
from lrdm.vocab import FULL_RANK, LOSSES, OBJECTIVES, RankSpec, check_choice


def check_objective(objective: str) -> None:
    check_choice(objective, OBJECTIVES, "objective")


def check_loss(loss: str) -> None:
    check_choice(loss, LOSSES, "loss")


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


def x0_from_noise(
    x_t: torch.Tensor, x_in: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: ResidualSchedule
) -> torch.Tensor:
    """RDDM Eq. 16 solved for ``Î_0 = I_in - I_res``: ``(I_t - ᾱ_t I_in - β̄_t ε) / (1 - ᾱ_t)`` (SM-N), the
    form the official sampler evaluates."""
    alpha_bar = gather(schedule.alpha_bar, t, x_t)
    numerator = x_t - alpha_bar * x_in - gather(schedule.beta_bar, t, x_t) * noise
    return numerator / gather(one_minus_alpha_bar(schedule), t, x_t)


def checked_output(objective: str, prediction: Prediction) -> Prediction:
    """``prediction``, checked to set exactly the terms ``objective`` predicts (``res`` and/or ``noise``)."""
    predicts_res, predicts_noise = predicted_terms(objective)
    present = (prediction.res is not None, prediction.noise is not None, prediction.x0 is not None)
    if present != (predicts_res, predicts_noise, False):
        raise ValueError(
            f"objective {objective!r} predicts (res, noise, x0) presence {(predicts_res, predicts_noise, False)}, "
            f"the network gave {present}"
        )
    return prediction


def predicted_objective(prediction: Prediction) -> str:
    """The objective whose network output ``prediction`` is: the inverse of :func:`predicted_terms`."""
    for objective in OBJECTIVES:
        if predicted_terms(objective) == (prediction.res is not None, prediction.noise is not None):
            return objective
    raise ValueError("an RDDM prediction sets res, noise or both; this one sets neither")


def official_predictions(
    prediction: Prediction,
    x_t: torch.Tensor,
    x_in: torch.Tensor,
    t: torch.Tensor,
    schedule: ResidualSchedule,
    clip: bool = True,
) -> Prediction:
    """The sampler's complete, clipped per-step prediction, as the official ``model_predictions`` computes it.

    The objective is the one whose terms ``prediction`` sets (:func:`predicted_objective`).  With ``clip`` (the
    official ``clip_denoised``) values are clamped by :func:`lrdm.core.prediction.clip_to_image` in this
    order, and nowhere else:

    * ``pred_res_noise``: ``res = clip(res)``; ``Î_0 = clip(I_t - ᾱ_t res - β̄_t ε)``.
    * ``pred_res``: ``res = clip(res)``; ``ε`` from the clipped ``res`` (Eq. 16, unclipped);
      ``Î_0 = clip(I_in - res)``.
    * ``pred_noise``: ``Î_0 = clip((I_t - ᾱ_t I_in - β̄_t ε) / (1 - ᾱ_t))``; ``res = clip(I_in - Î_0)``.
    * all three terms given: ``res = clip(res)``, ``Î_0 = clip(Î_0)``.

    Args:
        prediction: the network's terms, each ``(B, C, H, W)``; ``x0`` only together with ``res`` and ``noise``.
        x_t, x_in: ``(B, C, H, W)`` current state and degraded input in [-1, 1]; ``t``: ``(B,)`` timesteps.
    Returns:
        :class:`Prediction` with all three terms, in ``x_t``'s precision (a bf16 network output under autocast
        becomes float32, so the sampler's arithmetic runs in float32).
    """
    res, noise, x0 = (None if value is None else lifted(value, x_t) for value in prediction)
    with full_precision(x_t.device):
        if res is not None and noise is not None and x0 is not None:
            return Prediction(clip_to_image(res, clip), noise, clip_to_image(x0, clip))
        if x0 is not None:
            raise ValueError("an RDDM prediction gives x0 only together with res and noise")
        objective = predicted_objective(prediction)
        if objective == "pred_noise":
            x0 = clip_to_image(x0_from_noise(x_t, x_in, noise, t, schedule), clip)
            return Prediction(clip_to_image(x_in - x0, clip), noise, x0)
        res = clip_to_image(res, clip)
        if objective == "pred_res":
            return Prediction(res, noise_from_residual(x_t, x_in, res, t, schedule), clip_to_image(x_in - res, clip))
        x0 = x_t - gather(schedule.alpha_bar, t, x_t) * res - gather(schedule.beta_bar, t, x_t) * noise
        return Prediction(res, noise, clip_to_image(x0, clip))


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
    network: PredictionFn,
    example: TrainingExample,
    schedule: ResidualSchedule,
    objective: str = "pred_res_noise",
    loss: str = "l1",
    rank_spec: RankSpec = FULL_RANK,
    projector: Projector = PER_IMAGE_SVD,
) -> torch.Tensor:
    """Scalar training loss: L1 or L2 (mean over elements), summed over the predicted terms.

    Args:
        example: ``(x0, x_in, t, noise)``, see :class:`lrdm.core.prediction.TrainingExample`.
    """
    check_objective(objective)
    check_loss(loss)
    x0, x_in, t, noise = example
    with full_precision(x0.device):  # the targets and I_t in float32; only the network runs under autocast
        residual = project_residual(x_in - x0, t, schedule.T, rank_spec, projector)
        x_t = q_sample(x0, residual, t, noise, schedule)
    prediction = checked_output(objective, network(x_t, t, x_in))
    total = x0.new_zeros((), dtype=torch.float32)
    if prediction.res is not None:
        total = total + loss_distance(prediction.res, residual, loss)
    if prediction.noise is not None:
        total = total + loss_distance(prediction.noise, noise, loss)
    return total
