"""The project's vocabularies: every closed set of names, and the rank-spec grammar, in one place.

Config validation, the workflow's wildcard constraints, the dataset registry and the tables all take their
names from here; ``workflow/schemas/config.schema.yaml`` repeats some of them (JSON Schema cannot import
Python), and ``tests/test_architecture.py::test_schema_vocabularies_equal_lrdm_vocab`` proves the copies
equal. Torch-free, so the Snakefile can import it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from lrdm.errors import ConfigError

# --------------------------------------------------------------------------------------------------
# Processes, objectives, networks, schedules
# --------------------------------------------------------------------------------------------------

PROCESSES: tuple[str, ...] = ("rddm", "resshift")
"""Forward processes: RDDM (LRDM Eq. 13/14) and ResShift (LRDM Tab. 5)."""
OBJECTIVES: tuple[str, ...] = ("pred_res_noise", "pred_res", "pred_noise")
"""RDDM's training objectives (RDDM §4.3): SM-Res-N, SM-Res, SM-N."""
PROCESS_OBJECTIVES: dict[str, tuple[str, ...]] = {"rddm": OBJECTIVES, "resshift": ("pred_x0",)}
"""What each process's network predicts; the first entry is the process's default."""
DEFAULT_PROCESS = "rddm"
DEFAULT_OBJECTIVE = PROCESS_OBJECTIVES[DEFAULT_PROCESS][0]
PROCESS_DEFAULT_OBJECTIVES: dict[str, str] = {process: names[0] for process, names in PROCESS_OBJECTIVES.items()}
OBJECTIVE_LABELS: dict[str, str] = {"pred_res": "SM-Res", "pred_noise": "SM-N", "pred_res_noise": "SM-Res-N"}
"""RDDM's names of the objectives (RDDM Tab. 1)."""
OFFICIAL_RUN = "official"
"""Folder of a dataset's run imported from the authors' weights (``runs/<dataset>/official``), hence the ``run``
column of its score rows: what marks them as the official weights' rows in the main table."""
LOSSES: tuple[str, ...] = ("l1", "l2")
NETWORKS: tuple[str, ...] = ("two_net", "one_net")
BACKBONES: tuple[str, ...] = ("ddpm_unet", "rddm_unetres", "conv_unet")
"""Network architectures: denoising-diffusion-pytorch 2.x ``Unet`` (the default), the official RDDM
``UnetRes`` (the paper's network; official checkpoints load into it), or a convolutional UNet with attention
only at its coarsest level (:mod:`lrdm.core.convunet`, the embedded default's: faster per step on a CPU)."""
OFFICIAL_BACKBONE = "rddm_unetres"
"""The authors' network, the one their released weights load into and the official training recipe uses."""
SHAPES: tuple[str, ...] = ("decreasing", "increasing", "mean", "power", "power_decreasing")
"""Coefficient-schedule shapes (RDDM Eq. 18)."""
MIXED_PRECISION: tuple[str, ...] = ("auto", "no", "bf16")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
"""Learning-rate decay after warm-up (:func:`lrdm.training.trainer.learning_rate`); the official code's is constant."""
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

# --------------------------------------------------------------------------------------------------
# Low rank
# --------------------------------------------------------------------------------------------------

RANK_KINDS: tuple[str, ...] = ("full", "fixed", "lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
"""Rank schedulers ``k(t)`` (LRDM Eq. 15–19); ``full`` is plain RDDM."""
POLY_KINDS: tuple[str, ...] = ("poly_increase", "poly_decrease")
DYNAMIC_KINDS: tuple[str, ...] = ("lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
"""The schedulers whose rank changes with t (LRDM Tab. 3)."""
DEFAULT_ORDER = 3
BASES: tuple[str, ...] = ("svd", "dataset_pca")
SOLVERS: tuple[str, ...] = ("svd", "gram")
"""Per-image rank-k solvers: ``svd`` (truncated SVD) or ``gram`` (eigendecomposition of the smaller Gram
matrix in float64, equal to the SVD up to rounding)."""

_POSITIVE = "[1-9][0-9]*"


def check_choice(value: object, choices: Collection[object], what: str, key: str | None = None) -> None:
    """Raises unless ``value`` is one of ``choices``, with one message shape: ``unknown <what> <value>; valid
    choices: a, b, c``.  With ``key`` (a config key) it raises :class:`ConfigError` naming the key, else
    ``ValueError``."""
    if value in choices:
        return
    valid = ", ".join(str(choice) for choice in choices)
    if key is None:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {valid}")
    raise ConfigError(f"config key {key!r} has unknown value {value!r}; valid choices: {valid}", key)


def _spec_alternative(kind: str) -> str:
    if kind == "fixed":
        return f"fixed-r{_POSITIVE}"
    if kind in POLY_KINDS:
        return f"{kind}-p{_POSITIVE}"
    return kind


RANK_SPEC_PATTERN = "|".join(_spec_alternative(kind) for kind in RANK_KINDS)
"""The rank-spec grammar (``full``, ``fixed-r16``, ``lin_increase``, ``poly_decrease-p3``, ...) as a regular
expression without anchors: the Snakefile's ``rank_spec`` wildcard constraint; the config schema's pattern is
``^(...)$`` of it."""
_RANK_SPEC_RE = re.compile(f"^(?:{RANK_SPEC_PATTERN})$")
_SPEC_PARTS = re.compile(r"^(?P<kind>[a-z_]+?)(?:-r(?P<rank>\d+))?(?:-p(?P<order>\d+))?$")


@dataclass(frozen=True)
class RankSpec:
    """A rank scheduler with its parameters, written as in run names (:data:`RANK_SPEC_PATTERN`).

    ``max_rank`` (``R_m``) is None for ``min(H, W)``.
    """

    kind: str
    order: int | None = None
    rank: int | None = None
    max_rank: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, RANK_KINDS, "rank scheduler")
        if self.kind == "fixed" and (self.rank is None or self.rank <= 0):
            raise ValueError(f"rank spec 'fixed' needs a positive rank (e.g. 'fixed-r16'), got {self.rank!r}")
        if self.kind != "fixed" and self.rank is not None:
            raise ValueError(f"rank spec {self.kind!r} takes no fixed rank, got rank={self.rank}")
        if self.kind in POLY_KINDS and (self.order is None or self.order < 1):
            raise ValueError(
                f"rank spec {self.kind!r} needs an order p >= 1 (e.g. '{self.kind}-p3'), got {self.order!r}"
            )
        if self.kind not in POLY_KINDS and self.order is not None:
            raise ValueError(f"rank spec {self.kind!r} takes no polynomial order, got order={self.order}")
        if self.max_rank is not None and self.max_rank <= 0:
            raise ValueError(f"max_rank must be a positive integer, got {self.max_rank}")

    @classmethod
    def parse(cls, text: str, max_rank: int | None = None) -> RankSpec:
        """Parse a run name's rank spec; anything outside :data:`RANK_SPEC_PATTERN` raises ``ValueError``."""
        match = _SPEC_PARTS.match(text)
        if match is None:
            raise ValueError(
                f"cannot parse rank spec {text!r}; expected one of: full, fixed-r<rank>, lin_increase, "
                f"lin_decrease, poly_increase-p<order>, poly_decrease-p<order>"
            )
        rank, order = match["rank"], match["order"]
        spec = cls(
            kind=match["kind"],
            rank=int(rank) if rank is not None else None,
            order=int(order) if order is not None else None,
            max_rank=max_rank,
        )
        if not _RANK_SPEC_RE.match(text):  # e.g. 'fixed-r016': valid numbers, not the canonical spelling
            raise ValueError(f"rank spec {text!r} is not written canonically; write {spec.name!r}")
        return spec

    @property
    def name(self) -> str:
        if self.kind == "fixed":
            return f"fixed-r{self.rank}"
        if self.kind in POLY_KINDS:
            return f"{self.kind}-p{self.order}"
        return self.kind

    @property
    def is_full(self) -> bool:
        return self.kind == "full"

    @property
    def schedule_order(self) -> int:
        """The polynomial order handed to the rank schedule (the default where the kind takes none)."""
        return self.order if self.order is not None else DEFAULT_ORDER

    def resolve_max_rank(self, height: int, width: int) -> int:
        """``R_m`` for images of this size: the configured one, never above ``min(H, W)``."""
        limit = min(height, width)
        return limit if self.max_rank is None else min(self.max_rank, limit)


FULL_RANK = RankSpec("full")
"""No projection: plain RDDM."""

# --------------------------------------------------------------------------------------------------
# Data and evaluation
# --------------------------------------------------------------------------------------------------

TASKS: tuple[str, ...] = ("rain", "blur", "shadow", "inpainting")
"""Restoration tasks of the datasets (and of the synthetic degradations, less inpainting)."""
PROTOCOLS: tuple[str, ...] = ("derain_y", "rgb", "rgb_channelwise", "istd", "realblur", "lrdm_y")
"""Evaluation protocols (see :mod:`lrdm.evaluation.metrics`)."""
DATASET_SOURCES: tuple[str, ...] = ("synthetic", "registry", "folders")
"""Where a workflow dataset comes from: synthesised here, the registry of real benchmarks, or your own paired
folders (``datasets.<name>.folders``)."""
SPLITS: tuple[str, ...] = ("train", "test")
