"""lrdm: Low-Rank Residual Diffusion Models (LRDM) on top of Residual Denoising Diffusion Models (RDDM).

The package's layers and modules are described in ``docs/package.md``, and checked against the code by
``tests/test_docs.py``.

The stable public API (the names in :data:`PUBLIC_API`) is importable from here, so modules can move
without breaking users:
``lrdm.residual_schedule``, ``lrdm.rank_schedule``, ``lrdm.project_low_rank``, ``lrdm.singular_spectrum``,
``lrdm.q_sample``, ``lrdm.sample``, ``lrdm.score``, ``lrdm.load_model``,
``lrdm.lrdm_test_resize``. They are loaded on first use, so
``import lrdm.workflow`` stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

PUBLIC_API: dict[str, str] = {
    "residual_schedule": "lrdm.core.schedules",
    "rank_schedule": "lrdm.core.lowrank",
    "project_low_rank": "lrdm.core.lowrank",
    "singular_spectrum": "lrdm.core.lowrank",
    "q_sample": "lrdm.core.diffusion",
    "sample": "lrdm.core.sampling",
    "score": "lrdm.evaluation.metrics",
    "load_model": "lrdm.training.rundir",
    "lrdm_test_resize": "lrdm.evaluation.protocols.lrdm_y",
}
"""Each public name and the module that defines it."""

__all__ = sorted(PUBLIC_API)


def __getattr__(name: str) -> Any:
    if name in PUBLIC_API:
        value = getattr(importlib.import_module(PUBLIC_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lrdm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *PUBLIC_API})
