"""ResShift's residual-shifting diffusion process (Yue et al., NeurIPS 2023) and its low-rank variant.

A second diffusion process behind the same kind of interface as RDDM's (:mod:`lrdm.core.diffusion`,
:mod:`lrdm.core.sampling`), used for LRDM Tab. 5 ("ResShift + Low-Rank").

Model space: images in [-1, 1]; ``x_0`` clean target, ``y`` degraded input (``x_in``), residual
``e_0 = y - x_0``.  Code indices ``t ∈ {0, …, T-1}`` stand for ResShift's ``t ∈ {1, …, T}``; ``t = -1``
is the clean end (``η_{-1} = 0``, see :func:`lrdm.core.schedules.gather`).

Forward process (ResShift Eq. 1, with ``α_t = η_t - η_{t-1}``, ``α_0 = η_0``)::

    q(x_t | x_{t-1}, y) = N(x_{t-1} + α_t e_0, κ² α_t I)

and its marginal (ResShift Eq. 2)::

    q(x_t | x_0, y) = N(x_0 + η_t e_0, κ² η_t I)          →  x_t = x_0 + η_t e_0 + κ sqrt(η_t) ε

The low-rank variant (LRDM Eq. 13/14 transplanted to ResShift) injects ``Q_{k(t)}(e_0)`` instead of
``e_0``; the network ``f(x_t, t, y)`` predicts ``x_0`` (ResShift Eq. 8) and stays full-rank.

Sampling starts at ``x_T = y + κ sqrt(η_{T-1}) z`` (ResShift's prior, which neglects the
``(1 - η_{T-1}) e_0`` gap; under the low-rank variant the gap also includes the part of ``e_0``
outside the rank-``k(T-1)`` subspace) and draws from the posterior ``q(x_s | x_t, x̂_0)``
(ResShift Eq. 3-4 generalised to any ``s < t``, see :func:`q_posterior`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from lrdm.core.diffusion import check_loss, loss_distance, project_residual
from lrdm.core.lowrank import PER_IMAGE_SVD, Projector
from lrdm.core.precision import full_precision, lifted
from lrdm.core.prediction import Prediction, PredictionFn, TrainingExample, clip_to_image
from lrdm.core.samplers import DEFAULT_OPTIONS, Callback, SamplerOptions
from lrdm.core.sampling import Generators, standard_normal, start_point, step_pairs
from lrdm.core.schedules import check_timesteps, gather
from lrdm.vocab import FULL_RANK, RankSpec

DEFAULT_T = 15
DEFAULT_KAPPA = 2.0
DEFAULT_POWER = 0.3
DEFAULT_ETA_MAX = 0.99


@dataclass(frozen=True)
class ResShiftSchedule:
    """ResShift's shifting schedule.

    ``eta``: ``(T,)`` float64, strictly increasing in ``(0, 1]``; ``eta[t]`` is ResShift's ``η_{t+1}``
    (the fraction of the residual ``e_0`` shifted into ``x_t``).  ``kappa``: ``κ > 0``, the noise
    scale (``x_t`` has noise variance ``κ² η_t``).
    """

    eta: torch.Tensor
    kappa: float

    @property
    def T(self) -> int:
        return int(self.eta.shape[0])

    @cached_property
    def noise_scale(self) -> torch.Tensor:
        """``κ sqrt(η_t)`` ``(T,)`` float64, the noise scale of ``x_t`` (computed once, so its device copy is
        cached too)."""
        with torch.inference_mode(False):  # a plain tensor even when first asked for while sampling
            return self.kappa * torch.sqrt(self.eta)

    @property
    def alpha(self) -> torch.Tensor:
        """Per-step increments ``α_t = η_t - η_{t-1}`` (``α_0 = η_0``), ``(T,)`` float64."""
        return torch.diff(self.eta, prepend=self.eta.new_zeros(1))


def default_eta_min(kappa: float) -> float:
    """ResShift's ``η_1 = min((0.04 / κ)², 0.001)``."""
    return min((0.04 / kappa) ** 2, 0.001)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resshift_schedule(
    T: int = DEFAULT_T,
    kappa: float = DEFAULT_KAPPA,
    power: float = DEFAULT_POWER,
    eta_min: float | None = None,
    eta_max: float = DEFAULT_ETA_MAX,
) -> ResShiftSchedule:
    """ResShift's geometric shifting schedule (ResShift Eq. 10).

    ``sqrt(η_t) = sqrt(η_1) · b_0^{β_t}`` with ``β_t = ((t-1)/(T-1))^p · (T-1)`` and
    ``b_0 = exp(log(η_T / η_1) / (2(T-1)))``, for ResShift's ``t = 1 … T`` (code index ``t - 1``), so
    ``log sqrt(η_t)`` is linear in ``β_t`` and the endpoints are ``η_1 = eta_min``, ``η_T = eta_max``.

    Args:
        T: number of diffusion steps, an integer >= 2 (ResShift: 15).
        kappa: noise scale ``κ > 0`` (ResShift: 2.0 for 4× SR).
        power: ``p > 0``; smaller values shift faster early on (ResShift: 0.3).
        eta_min: ``η_1`` in ``(0, eta_max)``; None for ResShift's ``min((0.04/κ)², 0.001)``.
        eta_max: ``η_T`` in ``(eta_min, 1]`` (ResShift: 0.99).
    Returns:
        :class:`ResShiftSchedule` with ``eta`` ``(T,)`` float64.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if not _is_real(kappa) or kappa <= 0:
        raise ValueError(f"kappa must be a finite number > 0, got {kappa!r}")
    if not _is_real(power) or power <= 0:
        raise ValueError(f"power must be a finite number > 0, got {power!r}")
    if not _is_real(eta_max) or not 0 < eta_max <= 1:
        raise ValueError(f"eta_max must lie in (0, 1], got {eta_max!r}")
    if eta_min is None:
        eta_min = default_eta_min(float(kappa))
        if not eta_min < eta_max:
            raise ValueError(
                f"eta_max must exceed the default eta_min = min((0.04/kappa)^2, 0.001) = {eta_min}, got {eta_max}"
            )
    elif not _is_real(eta_min) or not 0 < eta_min < eta_max:
        raise ValueError(f"eta_min must lie in (0, eta_max={eta_max}), got {eta_min!r}")
    steps = torch.arange(T, dtype=torch.float64)  # ResShift's t - 1
    beta = (steps / (T - 1)) ** power * (T - 1)
    log_b0 = math.log(eta_max / eta_min) / (2 * (T - 1))
    sqrt_eta = math.sqrt(eta_min) * torch.exp(beta * log_b0)
    eta = sqrt_eta**2
    if not bool((torch.diff(eta) > 0).all()):
        raise ValueError(
            f"power={power} with T={T} gives a schedule that is not strictly increasing in float64; use a larger power"
        )
    return ResShiftSchedule(eta=eta, kappa=float(kappa))


def q_sample(
    x0: torch.Tensor, residual: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: ResShiftSchedule
) -> torch.Tensor:
    """Closed-form forward sample (ResShift Eq. 2): ``x_t = x_0 + η_t · residual + κ · sqrt(η_t) · noise``.

    Args:
        x0: ``(B, C, H, W)`` clean images in [-1, 1].
        residual: ``(B, C, H, W)`` residual ``y - x_0`` (in [-2, 2]) or its projection ``Q_{k(t)}(y - x_0)``.
        t: ``(B,)`` integer timesteps in ``[0, T-1]``.
        noise: ``(B, C, H, W)`` standard Gaussian ``ε``.
    Returns:
        ``x_t`` ``(B, C, H, W)`` in ``x0``'s dtype.
    """
    return _q_sample(x0, residual, check_timesteps(t, schedule.T, lowest=0), noise, schedule)


def _q_sample(
    x0: torch.Tensor, residual: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: ResShiftSchedule
) -> torch.Tensor:
    """:func:`q_sample` on timesteps known to lie in ``[0, T-1]``: nothing is read back to the host."""
    with full_precision(x0.device):
        return x0 + gather(schedule.eta, t, x0) * residual + gather(schedule.noise_scale, t, x0) * noise


def q_posterior(
    x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor, schedule: ResShiftSchedule
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the posterior ``q(x_s | x_t, x_0, y)`` for any ``-1 <= s < t``.

    Derivation: the forward transition from ``s`` to ``t`` is the sum of the per-step transitions of
    ResShift Eq. 1, ``q(x_t | x_s, y) = N(x_s + (η_t - η_s) e_0, κ² (η_t - η_s) I)``, and the prior is
    the marginal ``q(x_s | x_0, y) = N(x_0 + η_s e_0, κ² η_s I)`` (Eq. 2).  Bayes' rule multiplies the two
    Gaussians in ``x_s``: precision ``1/(κ² η_s) + 1/(κ² (η_t - η_s)) = η_t / (κ² η_s (η_t - η_s))`` and
    mean ``[(η_t - η_s)(x_0 + η_s e_0) + η_s (x_t - (η_t - η_s) e_0)] / η_t``, in which ``e_0`` cancels::

        mean     = (η_s / η_t) · x_t + ((η_t - η_s) / η_t) · x_0
        variance = κ² · η_s · (η_t - η_s) / η_t

    For ``s = t - 1`` this is ResShift Eq. 3-4 (``α_t / η_t`` and ``κ² η_{t-1} α_t / η_t``); for ``s = -1``
    (``η_{-1} = 0``) it is ``N(x_0, 0)``.  It does not involve ``e_0``, so it is the same for the
    low-rank variant.

    Args:
        x_t, x0: ``(B, C, H, W)``.
        t: ``(B,)`` integer timesteps in ``[0, T-1]``; s: ``(B,)`` in ``[-1, T-2]`` with ``s < t``.
    Returns:
        ``(mean, variance)``: mean ``(B, C, H, W)``, variance ``(B, 1, 1, 1)``, both in ``x_t``'s dtype
        (coefficients computed in float64).
    """
    t = check_timesteps(t, schedule.T, lowest=0)
    s = check_timesteps(s, schedule.T)
    if s.shape != t.shape or bool((s >= t).any()):
        raise ValueError(f"posterior needs s < t elementwise, got t={t.tolist()} and s={s.tolist()}")
    return _q_posterior(x_t, x0, t, s, schedule)


def _q_posterior(
    x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor, schedule: ResShiftSchedule
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`q_posterior` on timesteps known to be valid (``-1 <= s < t <= T-1``): nothing is read back."""
    like64 = torch.empty((1,) * x_t.ndim, dtype=torch.float64, device=x_t.device)
    eta_t = gather(schedule.eta, t, like64)
    eta_s = gather(schedule.eta, s, like64)
    coef_xt = (eta_s / eta_t).to(x_t.dtype)
    coef_x0 = ((eta_t - eta_s) / eta_t).to(x_t.dtype)
    variance = (schedule.kappa**2 * eta_s * (eta_t - eta_s) / eta_t).to(x_t.dtype)
    return coef_xt * x_t + coef_x0 * x0, variance


def predicted_x0(prediction: Prediction) -> torch.Tensor:
    """The ``x0`` of a ResShift network's :class:`Prediction`, which sets ``x0`` and nothing else."""
    if not isinstance(prediction, Prediction) or list(prediction.terms()) != ["x0"]:
        got = list(prediction.terms()) if isinstance(prediction, Prediction) else type(prediction).__name__
        raise ValueError(f"a ResShift network returns Prediction(x0=...) and nothing else, got {got}")
    return prediction.x0


def training_loss(
    network: PredictionFn,
    example: TrainingExample,
    schedule: ResShiftSchedule,
    loss: str = "l2",
    rank_spec: RankSpec = FULL_RANK,
    projector: Projector = PER_IMAGE_SVD,
) -> torch.Tensor:
    """Scalar ResShift training loss (ResShift Eq. 8): ``mean |f(x_t, t, y) - x_0|^p``, ``p ∈ {1, 2}``.

    ``x_t`` follows ResShift Eq. 2 with the residual ``Q_{k(t)}(x_in - x0)`` (identity for ``full``).

    Args:
        network: ``network(x_t, t, x_in) -> Prediction(x0=pred_x0)``, ``pred_x0`` ``(B, C, H, W)``.
        example: ``(x0, x_in, t, noise)``, see :class:`lrdm.core.prediction.TrainingExample`.
        loss: ``"l2"`` (ResShift's MSE) or ``"l1"``; mean over elements, float32.
    """
    check_loss(loss)
    x0, x_in, t, noise = example
    with full_precision(x0.device):
        residual = project_residual(x_in - x0, t, schedule.T, rank_spec, projector)
        x_t = _q_sample(x0, residual, t, noise, schedule)
    return loss_distance(predicted_x0(network(x_t, t, x_in)), x0, loss)


def prior_sample(
    x_in: torch.Tensor, schedule: ResShiftSchedule, generator: Generators = None
) -> torch.Tensor:
    """ResShift's start ``x_T = y + κ sqrt(η_{T-1}) z`` ``(B, C, H, W)`` (ResShift §3.1, ``x_T ~ N(y, κ² η_T I)``)."""
    scale = schedule.kappa * math.sqrt(float(schedule.eta[-1]))
    return x_in + scale * standard_normal(x_in, generator)


def sample(
    network: PredictionFn,
    x_in: torch.Tensor,
    schedule: ResShiftSchedule,
    steps: int,
    generator: Generators = None,
    callback: Callback | None = None,
    options: SamplerOptions = DEFAULT_OPTIONS,
) -> torch.Tensor:
    """Restores ``x_in`` with ``steps`` reverse steps of ResShift (the sampler ``resshift`` of
    :data:`lrdm.core.samplers.SAMPLERS`).

    Walks :func:`lrdm.core.sampling.step_pairs` ``(t, s)`` from ``T-1`` down: predicts ``x̂_0`` with
    ``network(x_t, t, y)`` (clipped to [-1, 1] when ``clip``, by :func:`lrdm.core.prediction.clip_to_image`),
    returns ``x̂_0`` at ``s = -1`` and otherwise draws ``x_s ~ q(x_s | x_t, x̂_0)`` (:func:`q_posterior`).
    ``steps = T`` is ResShift's own sampler (ResShift Eq. 3-4 with ``x_0`` replaced by the prediction); fewer
    steps skip timesteps.

    Args:
        network: ``network(x_t, t_batch, x_in) -> Prediction(x0=pred_x0)``, all ``(B, C, H, W)`` except
            ``t_batch`` ``(B,)`` long.
        x_in: ``(B, C, H, W)`` degraded input ``y`` in [-1, 1].
        steps: integer in ``[1, T]``.
        generator: source of the start noise and of the posterior noise.
        callback: called once per step, before the posterior draw, with ``{"i": step index from 0, "t":
            timestep (int), "x": x_t, "prediction": Prediction(x0=the clipped x̂_0)}``.  The sampler has no
            progress bar.
        options: ``clip`` ``x̂_0`` to [-1, 1] at every step; ``x_T`` the start ``(B, C, H, W)``, default
            ``y + κ sqrt(η_{T-1}) z``; ``eta`` must be 0 (the posterior chain has no DDIM ``η``).
    Returns:
        ``x̂_0`` ``(B, C, H, W)``.
    """
    if options.eta != 0.0:
        raise ValueError("ResShift's sampler is its posterior chain; eta applies to process 'rddm' only")
    clip = options.clip
    pairs = step_pairs(schedule.T, steps)  # the step list is checked here, once
    batch = x_in.shape[0]

    def timesteps(value: int) -> torch.Tensor:
        return torch.full((batch,), value, dtype=torch.long, device=x_in.device)  # made on the device: no copy

    with full_precision(x_in.device):
        x_t = start_point(x_in, options.x_T, lambda: prior_sample(x_in, schedule, generator))
    for i, (t, s) in enumerate(pairs):
        t_batch = timesteps(t)
        x0_hat = predicted_x0(network(x_t, t_batch, x_in))  # the one call under an enclosing autocast
        with full_precision(x_in.device):
            x0_hat = clip_to_image(lifted(x0_hat, x_t), clip)
            if callback is not None:
                callback({"i": i, "t": t, "x": x_t, "prediction": Prediction(x0=x0_hat)})
            if s < 0:
                return x0_hat
            mean, variance = _q_posterior(x_t, x0_hat, t_batch, timesteps(s), schedule)
            x_t = mean + torch.sqrt(variance) * standard_normal(mean, generator)
    raise AssertionError("step_pairs always ends at s = -1")
