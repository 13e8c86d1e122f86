"""Coefficient schedules of the residual diffusion process (RDDM, CVPR 2024).

The forward process (RDDM Eq. 9) adds a fraction ``α_t`` of the residual and Gaussian noise of variance
``β²_t`` at each step; its closed form (RDDM Eq. 10, LRDM Eq. 13) uses the cumulative sums
``ᾱ_t = Σ_{i≤t} α_i`` and ``β̄²_t = Σ_{i≤t} β²_i``.  Code indices run ``t ∈ {0, …, T-1}``.

Shapes follow RDDM's normalised power function (RDDM Eq. 18): ``P(x, a) ∝ x^a`` with ``x = t / T``.
The defaults are RDDM's restoration schedules: ``α`` linearly decreasing (``P(1-x, 1)``), ``β²``
linearly increasing (``P(x, 1)``).

Notation map, from the official RDDM/LRDM code (``ResidualDiffusion``) to this module:

==============================  ======================================
official code                   here
==============================  ======================================
``gen_coefficients``            :func:`power_weights`
``sum_scale``                   ``beta2_sum`` (config key)
``alphas``                      ``ResidualSchedule.alpha``
``alphas_cumsum``               ``ResidualSchedule.alpha_bar``
``one_minus_alphas_cumsum``     ``ResidualSchedule.one_minus_alpha_bar``
``betas2``                      ``ResidualSchedule.beta2``
``betas2_cumsum``               ``ResidualSchedule.beta2_bar``
``betas_cumsum``                ``ResidualSchedule.beta_bar``
``extract(a, t, x.shape)``      :func:`gather`
==============================  ======================================
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import torch

from lrdm.vocab import SHAPES, check_choice

# Schedule shapes (lrdm.vocab.SHAPES): ``decreasing`` = P(1-x, 1), ``increasing`` = P(x, 1), ``mean`` = P(x, 0),
# ``power`` = P(x, a), ``power_decreasing`` = P(1-x, a).

DEFAULT_T = 1000
SM_N_LAST_DENOMINATOR = 1e-6
"""Eq. 16 solved for the residual (or for ``Î_0``) divides by ``1 - ᾱ_t``, which is 0 at ``t = T-1`` (where
``I_T`` carries no information about ``I_res``).  The official code overwrites ``1 - ᾱ_{T-1}`` with 1e-6;
here the last entry is bounded below by the same value, which equals the official value for every schedule
with ``ᾱ_{T-1} = 1`` (all RDDM schedules) and leaves schedules with ``ᾱ_{T-1} < 1`` (e.g. RDDM Eq. 17's DDIM
equivalent) exact.  Every other ``1 - ᾱ_t`` is exact (computed in float64)."""


@dataclass(frozen=True)
class ResidualSchedule:
    """Per-timestep coefficients, each a ``(T,)`` float64 tensor indexed by code timestep ``t``.

    ``alpha``: residual diffusion speed α_t (Σ α = ᾱ_{T-1}); ``alpha_bar``: ᾱ_t;
    ``beta2``: noise variance speed β²_t; ``beta2_bar``: β̄²_t; ``beta_bar``: β̄_t = sqrt(β̄²_t).
    """

    alpha: torch.Tensor
    alpha_bar: torch.Tensor
    beta2: torch.Tensor
    beta2_bar: torch.Tensor
    beta_bar: torch.Tensor

    @property
    def T(self) -> int:
        return int(self.alpha.shape[0])

    @cached_property
    def one_minus_alpha_bar(self) -> torch.Tensor:
        """``1 - ᾱ_t`` ``(T,)`` float64, the last entry bounded below by :data:`SM_N_LAST_DENOMINATOR` (computed
        once per schedule, so its device copy is cached too)."""
        with torch.inference_mode(False):  # a plain tensor even when first asked for while sampling
            values = 1.0 - self.alpha_bar
            values[-1] = values[-1].clamp(min=SM_N_LAST_DENOMINATOR)
        return values


def power_weights(T: int, shape: str, power: float = 1.0) -> torch.Tensor:
    """Unnormalised schedule weights ``(T,)`` float64 for a named shape (RDDM Eq. 18).

    ``increasing`` ∝ (t + 1), ``decreasing`` ∝ (T - t), ``mean`` ∝ 1, ``power`` ∝ (t + 1)^a,
    ``power_decreasing`` ∝ (T - t)^a, for code index ``t = 0 … T-1``.
    """
    check_choice(shape, SHAPES, "schedule shape")
    if T <= 0:
        raise ValueError(f"T must be a positive integer, got {T}")
    steps_up = torch.arange(1, T + 1, dtype=torch.float64)  # t + 1
    steps_down = torch.flip(steps_up, dims=(0,))  # T - t
    if shape == "increasing":
        return steps_up
    if shape == "decreasing":
        return steps_down
    if shape == "mean":
        return torch.ones(T, dtype=torch.float64)
    if power < 0:
        raise ValueError(f"power must be >= 0 for shape {shape!r}, got {power}")
    if shape == "power":
        return steps_up**power
    return steps_down**power  # power_decreasing


def schedule_from_coefficients(alpha: torch.Tensor, beta2: torch.Tensor) -> ResidualSchedule:
    """Builds a :class:`ResidualSchedule` from per-step ``α_t`` and ``β²_t`` (both ``(T,)``)."""
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    beta2 = torch.as_tensor(beta2, dtype=torch.float64)
    if alpha.shape != beta2.shape or alpha.ndim != 1:
        raise ValueError(
            f"alpha and beta2 must be 1-D of equal length, got {tuple(alpha.shape)} and {tuple(beta2.shape)}"
        )
    if bool((beta2 < 0).any()):
        raise ValueError("beta2 must be non-negative")
    beta2_bar = torch.cumsum(beta2, dim=0)
    return ResidualSchedule(
        alpha=alpha,
        alpha_bar=torch.cumsum(alpha, dim=0),
        beta2=beta2,
        beta2_bar=beta2_bar,
        beta_bar=torch.sqrt(beta2_bar),
    )


def residual_schedule(
    T: int = DEFAULT_T,
    beta2_sum: float = 1.0,
    alpha_shape: str = "decreasing",
    beta2_shape: str = "increasing",
    alpha_power: float = 1.0,
    beta2_power: float = 1.0,
) -> ResidualSchedule:
    """RDDM coefficient schedule with ``Σ α_t = 1`` (so ``ᾱ_{T-1} = 1``) and ``Σ β²_t = beta2_sum``.

    RDDM uses ``beta2_sum`` = 1 for deraining and 0.01 for shadow removal and deblurring.
    """
    if not beta2_sum > 0:
        raise ValueError(f"beta2_sum must be > 0, got {beta2_sum}")
    alpha = power_weights(T, alpha_shape, alpha_power)
    beta2 = power_weights(T, beta2_shape, beta2_power)
    alpha = alpha / alpha.sum()
    beta2 = beta2 / beta2.sum() * beta2_sum
    return schedule_from_coefficients(alpha, beta2)


def check_timesteps(t: torch.Tensor | int, T: int, lowest: int = -1) -> torch.Tensor:
    """``t`` as a ``(B,)`` LongTensor, checked to lie in ``[lowest, T-1]`` (``-1``: the clean end).

    The API edge: it reads ``t`` back to the host, so call it where timesteps enter (drawing a batch, a user's
    call), never per step; :func:`gather` itself does not check.
    """
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"timesteps must be integers, got dtype {t.dtype}")
    t = t.reshape(-1)
    if bool(((t < lowest) | (t >= T)).any()):
        raise ValueError(f"timesteps must lie in [{lowest}, {T - 1}], got {t.tolist()}")
    return t.long()


_TABLES: dict[tuple[int, str, torch.dtype], tuple[weakref.ref, int, torch.Tensor]] = {}
"""Device copies of coefficient tables: ``(id, device, dtype)`` -> ``(the table, its version, the copy)``."""


def device_table(coefficient: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``coefficient`` ``(T,)`` padded in front with the clean end's 0 -> ``(T+1,)`` in ``dtype`` on ``device``.

    Cached per table, device and dtype (a table changed in place is copied again), so a training or sampling
    step reads its coefficients where the model is, with no host-to-device copy.  The values are cast from
    float64 once, as a per-call cast would.
    """
    key = (id(coefficient), str(device), dtype)
    hit = _TABLES.get(key)
    if hit is not None and hit[0]() is coefficient and hit[1] == coefficient._version:
        return hit[2]
    with torch.inference_mode(False):  # cached for training too, so never an inference tensor
        padded = torch.cat([coefficient.new_zeros(1), coefficient]).to(dtype=dtype)
        copy = padded.to(device=device, non_blocking=True)  # pageable source: staged, no stream sync
    for stale in [k for k, (ref, _, _) in _TABLES.items() if ref() is None]:
        del _TABLES[stale]
    _TABLES[key] = (weakref.ref(coefficient), coefficient._version, copy)
    return copy


def gather(coefficient: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Coefficient values at timesteps ``t`` ``(B,)``, shaped ``(B, 1, 1, 1)`` in ``like``'s dtype/device.

    ``t = -1`` denotes the clean end of the chain (``ᾱ_{-1} = β̄_{-1} = 0``).  ``t`` is not read back to the
    host (no sync on a GPU): check it once where it enters (:func:`check_timesteps`).  A timestep outside
    ``[-1, T-1]`` is never wrapped around: ``index_select`` raises ``IndexError`` on the CPU and fails the
    stream with a device-side assert on CUDA.
    """
    table = device_table(coefficient, like.device, like.dtype)
    index = torch.as_tensor(t).reshape(-1).to(device=like.device, dtype=torch.long, non_blocking=True) + 1
    return table.index_select(0, index).reshape(-1, *([1] * (like.ndim - 1)))
