"""Few-step deterministic/stochastic sampler of RDDM (RDDM Eq. 12/13, DDIM-style).

From ``I_T = I_in + β̄_T z`` the sampler walks the step list ``t → s`` (``s = -1`` is the clean end):

    Î_0 = I_t - ᾱ_t res - β̄_t ε            (unless the model supplies Î_0 itself, see below)
    σ²  = η (β̄²_t - β̄²_s) β̄²_s / β̄²_t
    I_s = I_t - (ᾱ_t - ᾱ_s) res - (β̄_t - sqrt(β̄²_s - σ²)) ε + σ z

and returns ``Î_0`` at the last pair.  η = 0 is deterministic (the restoration default).  This is the
official RDDM ``ddim_sample`` ("use_pred_noise" update): each step completes the model's prediction with
:func:`lrdm.core.diffusion.official_predictions` (the official per-objective ``res``, ``ε`` and ``Î_0``,
clipped there and only there), so it reproduces the official sampler for every objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict, Unpack

import torch

from lrdm.core.diffusion import official_predictions
from lrdm.core.precision import full_precision
from lrdm.core.prediction import PredictionFn, as_prediction
from lrdm.core.samplers import DEFAULT_OPTIONS, Callback, SamplerOptions
from lrdm.core.schedules import ResidualSchedule, gather


def step_pairs(T: int, steps: int) -> list[tuple[int, int]]:
    """Timestep pairs ``(t, s)`` for ``steps`` sampling steps, built as the official RDDM code builds them:
    a **float32** ``linspace(-1, T-1, steps+1)`` (on the CPU), truncated to integers, reversed, taken in
    consecutive pairs (``steps=5, T=1000``: 999→799→599→399→199→-1).

    The float32 rounding matters: for T = 1000 the list differs from a float64 construction at 156 values of
    ``steps`` in 1..1000 (the first is 26).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"sampling steps must be an integer in [1, T={T}], got {steps!r}")
    grid = torch.linspace(-1, T - 1, steps + 1, dtype=torch.float32, device="cpu")
    times = grid.int().tolist()[::-1]
    return list(zip(times[:-1], times[1:]))


SEED_STRIDE = 1_000_003
"""A large prime separating seed streams: per test image (:func:`image_generator`) and, in training, per step and
per process (``lrdm.training.trainer``)."""


def image_generator(seed: int, image_number: int, device: torch.device | str) -> torch.Generator:
    """Generator of the start noise for test image ``image_number`` (evaluation, restoring, training's validation):
    an image's noise does not depend on which or how many other images are restored with it."""
    return torch.Generator(device=device).manual_seed(seed * SEED_STRIDE + image_number)


Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the whole batch, one per sample (so each sample's draws do not depend on the batch it is
in: batch 1 and batch N give the same noise), or none (torch's global generator)."""


def standard_normal(like: torch.Tensor, generator: Generators) -> torch.Tensor:
    """``N(0, I)`` shaped like ``like``; with a sequence of generators, sample ``b`` draws from ``generator[b]``."""
    if generator is None or isinstance(generator, torch.Generator):
        device = generator.device if generator is not None else like.device
        draw = torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype)
        return draw.to(like.device, non_blocking=True)  # a CPU generator's draw: copied without a stream sync
    if len(generator) != like.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {like.shape[0]} samples")
    return torch.cat([standard_normal(like[b : b + 1], g) for b, g in enumerate(generator)])


def start_point(x_in: torch.Tensor, x_T: torch.Tensor | None, prior: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The sampler's start: ``x_T`` when given (its shape must be ``x_in``'s), else a draw of ``prior()``."""
    if x_T is None:
        return prior()
    if x_T.shape != x_in.shape:
        raise ValueError(f"x_T shape {tuple(x_T.shape)} differs from x_in shape {tuple(x_in.shape)}")
    return x_T


class SampleKeywords(TypedDict, total=False):
    """The keyword arguments of :func:`sample` after ``generator`` (DESIGN's public call)."""

    clip: bool
    x_T: torch.Tensor | None
    callback: Callback | None


def sample(
    model_fn: PredictionFn,
    x_in: torch.Tensor,
    schedule: ResidualSchedule,
    steps: int,
    eta: float = 0.0,
    generator: Generators = None,
    **keywords: Unpack[SampleKeywords],
) -> torch.Tensor:
    """The public call of RDDM's sampler, ``lrdm.sample(model_fn, x_in, schedule, steps, eta=0.0, generator=None,
    clip=True, x_T=None, callback=None)``: :func:`ddim` with ``SamplerOptions(eta, clip, x_T)``."""
    callback = keywords.pop("callback", None)
    options = SamplerOptions(eta=eta, **keywords)
    return ddim(model_fn, x_in, schedule, steps, generator, callback=callback, options=options)


def ddim(
    network: PredictionFn,
    x_in: torch.Tensor,
    schedule: ResidualSchedule,
    steps: int,
    generator: Generators = None,
    callback: Callback | None = None,
    options: SamplerOptions = DEFAULT_OPTIONS,
) -> torch.Tensor:
    """Restores ``x_in`` with ``steps`` reverse steps of RDDM Eq. 13 (the sampler ``ddim`` of
    :data:`lrdm.core.samplers.SAMPLERS`).

    Args:
        network: ``network(x_t, t_batch, x_in) -> Prediction`` (a network, :mod:`lrdm.core.nets`), all
            ``(B, C, H, W)`` except ``t_batch`` ``(B,)`` long.  It sets ``res`` and/or ``noise`` (the terms of
            its objective; all three terms to give ``Î_0`` itself); a plain ``(pred_res, pred_noise)`` or
            ``(pred_res, pred_noise, pred_x0)`` tuple is read as one
            (:func:`lrdm.core.prediction.as_prediction`).  Each step completes it with
            :func:`lrdm.core.diffusion.official_predictions`.
        x_in: ``(B, C, H, W)`` degraded input in [-1, 1].
        generator: source of the start noise and of the stochastic steps.
        callback: called once per step, after the prediction and before the update, with the state
            ``{"i": step index from 0, "t": timestep (int), "x": I_t, "prediction": the completed, clipped
            Prediction}`` (k-diffusion's shape).  Its return value is ignored.
        options: ``eta`` 0 (deterministic, DDIM-like) to 1 (DDPM-like); ``clip`` the predicted residual and
            ``Î_0`` to [-1, 1] as the reference code does; ``x_T`` the start ``(B, C, H, W)``, default
            ``I_in + β̄_T z``.
    Returns:
        ``Î_0`` ``(B, C, H, W)``: the last step's ``prediction.x0``.

    Only ``network`` runs under an enclosing autocast; the update runs in ``x_in``'s precision (half-precision
    predictions are lifted to float32).  No step reads a value back to the host: the timesteps are made on
    ``x_in``'s device and the coefficient tables are cached there (:func:`lrdm.core.schedules.device_table`).
    The sampler has no progress bar (a caller wraps its own around the images).
    """
    eta, clip = options.eta, options.clip
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    pairs = step_pairs(schedule.T, steps)  # the step list is checked here, once
    batch = x_in.shape[0]

    def timesteps(value: int) -> torch.Tensor:
        return torch.full((batch,), value, dtype=torch.long, device=x_in.device)  # made on the device: no copy

    def prior() -> torch.Tensor:
        return x_in + gather(schedule.beta_bar, timesteps(schedule.T - 1), x_in) * standard_normal(x_in, generator)

    with full_precision(x_in.device):
        x_t = start_point(x_in, options.x_T, prior)
    for i, (t, s) in enumerate(pairs):
        t_batch, s_batch = timesteps(t), timesteps(s)
        output = as_prediction(network(x_t, t_batch, x_in))  # the one call under an enclosing autocast
        with full_precision(x_in.device):
            prediction = official_predictions(output, x_t, x_in, t_batch, schedule, clip)
            if callback is not None:
                callback({"i": i, "t": t, "x": x_t, "prediction": prediction})
            if s < 0:
                return prediction.x0
            residual, noise = prediction.res, prediction.noise
            alpha_bar_t = gather(schedule.alpha_bar, t_batch, x_t)
            beta_bar_t = gather(schedule.beta_bar, t_batch, x_t)
            beta2_bar_t = gather(schedule.beta2_bar, t_batch, x_t)
            beta2_bar_s = gather(schedule.beta2_bar, s_batch, x_t)
            sigma2 = eta * (beta2_bar_t - beta2_bar_s) * beta2_bar_s / beta2_bar_t
            x_t = (
                x_t
                - (alpha_bar_t - gather(schedule.alpha_bar, s_batch, x_t)) * residual
                - (beta_bar_t - torch.sqrt(beta2_bar_s - sigma2)) * noise
            )
            if eta > 0:
                x_t = x_t + torch.sqrt(sigma2) * standard_normal(x_t, generator)
    raise AssertionError("step_pairs always ends at s = -1")
