"""The sampler table: every sampler is one function with one signature, chosen by name (config key
``sampling.sampler``, ``lrdm restore --sampler``, ``lrdm evaluate --sampler``).

As in k-diffusion, a sampler is a function

    sampler(network, x_in, schedule, steps, generator=None, callback=None, options=SamplerOptions()) -> Î_0

with ``network(x_t, t_batch, x_in) -> Prediction`` (:data:`lrdm.core.prediction.PredictionFn`), ``x_in`` the
degraded input ``(B, C, H, W)`` in [-1, 1], ``schedule`` its process's coefficient table (the process's
``schedule``), ``steps`` the number of reverse steps, ``generator`` the noise source
(:data:`lrdm.core.sampling.Generators`), ``callback`` called once per step with ``{"i", "t", "x",
"prediction"}``, and ``options`` the per-call settings every sampler reads the same way (:class:`SamplerOptions`;
settings of one sampler alone are keyword defaults of its function, bound in its entry).

Adding a sampler: write its function, add its :class:`Sampler` entry to :data:`SAMPLERS`, test it.  The config
schema, the ``evaluate`` rule, the evaluation, the score files (column ``sampler``) and the command line read this
table.  Torch-free (the entries name their functions), so the Snakefile and ``lrdm --help`` can import it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lrdm.errors import ConfigError
from lrdm.vocab import PROCESSES

if TYPE_CHECKING:
    import torch

DEFAULT_SAMPLER = "default"
"""``sampling.sampler`` value naming each process's own sampler (the entry of :data:`SAMPLERS` marked
``default`` for it): RDDM's ``ddim``, ResShift's ``resshift``."""

Callback = Callable[[dict[str, Any]], object]
"""Called once per step with ``{"i": step index from 0, "t": timestep (int), "x": x_t, "prediction": the completed,
clipped Prediction}``; its return value is ignored."""


@dataclass(frozen=True)
class SamplerOptions:
    """What a caller sets for one sampling call, the same for every sampler.

    ``eta``: stochasticity of the steps, 0 (deterministic) to 1 (DDIM's ``η``; a sampler without stochastic
    steps refuses any other value than 0); ``clip``: clip the predicted terms to [-1, 1] as the reference code
    does; ``x_T``: the start ``(B, C, H, W)`` (None: drawn from the process's prior).
    """

    eta: float = 0.0
    clip: bool = True
    x_T: torch.Tensor | None = None


DEFAULT_OPTIONS = SamplerOptions()


SamplerFn = Callable[..., "torch.Tensor"]
"""A sampler: a function of the parameters :data:`SAMPLER_PARAMETERS` (module docstring) -> ``Î_0``."""
SAMPLER_PARAMETERS = ("network", "x_in", "schedule", "steps", "generator", "callback", "options")
"""The one signature, in order: ``network`` (:data:`lrdm.core.prediction.PredictionFn`), ``x_in`` ``(B, C, H, W)``,
``schedule`` (the process's), ``steps`` (int), ``generator=None`` (:data:`lrdm.core.sampling.Generators`),
``callback=None`` (:data:`Callback`), ``options=DEFAULT_OPTIONS`` (:class:`SamplerOptions`); then the sampler's
own keyword settings, if any (bound by its entry's ``keywords``)."""


@dataclass(frozen=True)
class Sampler:
    """One entry of the sampler table.

    ``name``: the config value; ``process``: the process whose schedule it walks (:data:`lrdm.vocab.PROCESSES`);
    ``path``: ``"module:name"`` of the function (imported on first use); ``summary``: one line for help texts;
    ``default``: whether it is its process's own sampler (:data:`DEFAULT_SAMPLER`); ``keywords``: settings of this
    sampler alone, bound to the function as keyword arguments.
    """

    name: str
    process: str
    path: str
    summary: str
    default: bool = False
    keywords: dict[str, Any] = field(default_factory=dict, hash=False)

    @cached_property
    def function(self) -> SamplerFn:
        """The sampler, its ``keywords`` bound: call it with :data:`SAMPLER_PARAMETERS` -> ``Î_0`` ``(B, C, H, W)``."""
        module, _, name = self.path.partition(":")
        function = getattr(importlib.import_module(module), name)
        return functools.partial(function, **self.keywords) if self.keywords else function


SAMPLERS: dict[str, Sampler] = {
    entry.name: entry
    for entry in (
        Sampler(
            name="ddim",
            process="rddm",
            path="lrdm.core.sampling:ddim",
            summary="RDDM Eq. 13, DDIM-style (eta 0: deterministic), the official ddim_sample",
            default=True,
        ),
        Sampler(
            name="resshift",
            process="resshift",
            path="lrdm.core.resshift:sample",
            summary="ResShift's posterior chain q(x_s | x_t, x0) over the step list",
            default=True,
        ),
    )
}
"""The samplers by name, in the order help texts list them."""

SAMPLER_NAMES: tuple[str, ...] = (DEFAULT_SAMPLER, *SAMPLERS)
"""The values of ``sampling.sampler`` and ``--sampler``."""


SAMPLER_KEY = "sampling.sampler"
"""The config key naming the sampler (``--sampler`` on the command line)."""


def _where(key: str) -> str:
    """How an error names ``key``: ``config key sampling.sampler``, or an option such as ``--sampler`` as it is."""
    return key if key.startswith("--") else f"config key {key}"


def check_sampler_name(name: str, key: str = SAMPLER_KEY) -> str:
    """``name`` if it is one of :data:`SAMPLER_NAMES`, else :class:`ConfigError` naming ``key`` (a config key, or an
    option such as ``--sampler``) and the valid values."""
    if name not in SAMPLER_NAMES:
        raise ConfigError(f"{_where(key)}: unknown sampler {name!r}; valid: {', '.join(SAMPLER_NAMES)}", key)
    return name


def sampler_for(name: str, process: str, key: str = SAMPLER_KEY) -> Sampler:
    """The entry of sampler ``name`` for a run of ``process`` (:data:`DEFAULT_SAMPLER`: the process's own).

    Raises :class:`ConfigError` naming ``key`` for an unknown name or a sampler of another process."""
    check_sampler_name(name, key)
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; valid: {', '.join(PROCESSES)}")
    if name == DEFAULT_SAMPLER:
        return next(entry for entry in SAMPLERS.values() if entry.process == process and entry.default)
    entry = SAMPLERS[name]
    if entry.process != process:
        own = [other.name for other in SAMPLERS.values() if other.process == process]
        raise ConfigError(
            f"{_where(key)}: sampler {name!r} samples process {entry.process!r}, not {process!r} "
            f"(its samplers: {', '.join([DEFAULT_SAMPLER, *own])})",
            key,
        )
    return entry
