"""Run configuration: one flat, validated record per training run (saved beside its checkpoints)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lrdm.errors import TOP_LEVEL_KEY, ConfigError
from lrdm.files import write_text
from lrdm.vocab import (
    BACKBONES,
    BASES,
    DEVICES,
    LOSSES,
    LR_SCHEDULES,
    MIXED_PRECISION,
    NETWORKS,
    PROCESS_OBJECTIVES,
    PROCESSES,
    SHAPES,
    SOLVERS,
    RankSpec,
    check_choice,
)

NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
"""A decimal number as text: what YAML 1.2 reads as a float but PyYAML (YAML 1.1) leaves a string, e.g. ``1e-3``."""


FIELD_CHOICES: dict[str, tuple[str, ...]] = {
    "loss": LOSSES,
    "basis": BASES,
    "projection_solver": SOLVERS,
    "network": NETWORKS,
    "backbone": BACKBONES,
    "alpha_shape": SHAPES,
    "beta2_shape": SHAPES,
    "lr_schedule": LR_SCHEDULES,
    "mixed_precision": MIXED_PRECISION,
    "device": DEVICES,
}
"""The :class:`TrainConfig` fields that take one of a closed set of names, and the set (``process`` and
``objective``, whose choices depend on the process, are checked beside them)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run.  Defaults are the LRDM paper's (RDDM code base) except the
    data, size and step counts, which the workflow sets per config."""

    index: str = ""  # Parquet index of paired images (see lrdm.data)
    crop: int = 256  # side of the random training crops (unused when resize is set)
    resize: int | None = None  # official view: whole images padded and resized to resize x resize, no crops
    flip: bool = True  # random horizontal flips (probability 0.5) of the training pairs
    residual_scale: tuple[float, float] | None = None  # augmentation: I_in -> I_0 + λ(I_in - I_0), λ ~ U(low, high)
    process: str = "rddm"  # forward process: rddm (RDDM, and LRDM with a low rank_spec) or resshift (LRDM Tab. 5)
    T: int = 1000  # diffusion timesteps
    beta2_sum: float = 1.0  # sum of RDDM's noise schedule beta² over the T steps (RDDM Eq. 18; sum_scale there)
    alpha_shape: str = "decreasing"  # shape of the residual schedule alpha over t (RDDM Eq. 18)
    beta2_shape: str = "increasing"  # shape of the noise schedule beta² over t (RDDM Eq. 18)
    kappa: float = 2.0  # ResShift noise scale
    resshift_power: float = 0.3  # ResShift schedule exponent p
    objective: str = "pred_res_noise"  # what the network predicts (RDDM §4.3): SM-Res-N, SM-Res, SM-N; pred_x0
    loss: str = "l1"  # training loss on the predictions
    rank_spec: str = "full"  # the residual's rank over t (LRDM Eq. 15-19): full, fixed-rN, lin_*, poly_*-pN
    max_rank: int | None = None  # R_m; None = min(H, W)
    basis: str = "svd"  # the low-rank basis: each residual's own SVD, or dataset_pca (one basis for the data)
    projection_solver: str = "svd"  # per-image Q_k: svd (reference) or gram (float64 eigendecomposition)
    network: str = "two_net"  # two_net: one UNet per predicted term; one_net: one UNet with a head per term
    backbone: str = "ddpm_unet"  # ddpm_unet | rddm_unetres (the official RDDM UnetRes) | conv_unet (lrdm.core.convunet)
    dim: int = 64  # channels of the UNet's first level
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)  # channel multiple of each level; crop and resize divide by 2^(levels-1)
    steps: int = 120_000  # optimiser steps; raising it alone continues a run from its newest checkpoint
    batch_size: int = 1  # images per micro-batch, the global batch over train_gpus processes
    grad_accum: int = 1  # micro-batches of batch_size per optimizer step (official deraining recipe: 2)
    lr: float = 8e-5  # Adam learning rate
    lr_schedule: str = "constant"  # constant (the official code's) | cosine: decays to 0 at the last step
    lr_warmup: int = 0  # steps of linear warm-up from lr / lr_warmup to lr (0: none)
    adam_betas: tuple[float, float] = (0.9, 0.99)  # Adam betas (the official code's)
    grad_clip: float = 1.0  # gradient-norm clip
    ema_decay: float = 0.995  # decay of the EMA weights that model.pt holds
    ema_update_every: int = 10  # optimiser steps between EMA updates
    ema_start: int = 100  # step from which the EMA follows the weights (before: a copy of them)
    checkpoint_every: int = 1000  # steps between checkpoints (a killed run resumes from the newest)
    keep_checkpoints: int = 2  # newest checkpoints kept
    divergence_factor: float = 1000.0  # a loss above this multiple of its running median is divergence
    log_every: int = 50  # steps between lines of losses.csv and the log's progress lines
    tensorboard: bool = False  # also log the losses to TensorBoard (accelerate's tracker) in run_dir/tensorboard
    val_every: int = 0  # every N steps: PSNR/SSIM of the EMA model on val_images test images (0: never)
    val_images: int = 4  # test images of the periodic validation
    val_steps: int = 2  # sampling steps of the periodic validation
    seed: int = 0  # seeds the weights and every batch, crop, timestep and noise draw (by seed and step)
    mixed_precision: str = "auto"  # auto: bf16 autocast of the network on CUDA, fp32 elsewhere; no: fp32; bf16
    device: str = "auto"  # auto: cuda where torch sees a GPU, else cpu
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance (dataset name, ...)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in fields(self):
            check_type(item.name, getattr(self, item.name), hints[item.name])
        check_choice(self.process, PROCESSES, "process", key="process")
        check_choice(self.objective, PROCESS_OBJECTIVES[self.process], "objective", key="objective")
        for key, choices in FIELD_CHOICES.items():
            check_choice(getattr(self, key), choices, key, key=key)
        for key in (
            "crop",
            "T",
            "dim",
            "steps",
            "batch_size",
            "grad_accum",
            "ema_update_every",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "val_images",
            "val_steps",
        ):
            _positive_int(key, getattr(self, key))
        for key in ("val_every", "lr_warmup"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"config key {key!r} must be a non-negative integer (0: off), got {value!r}", key)
        for key in ("beta2_sum", "lr", "grad_clip", "kappa", "resshift_power"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)!r}", key)
        if not self.divergence_factor > 1:
            raise ConfigError(
                f"config key 'divergence_factor' must be > 1, got {self.divergence_factor!r}", "divergence_factor"
            )
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"config key 'ema_decay' must lie in [0, 1), got {self.ema_decay!r}", "ema_decay")
        if self.residual_scale is not None and not 0 <= self.residual_scale[0] <= self.residual_scale[1]:
            raise ConfigError(
                "config key 'residual_scale' must be [low, high] with 0 <= low <= high, "
                f"got {list(self.residual_scale)}",
                "residual_scale",
            )
        if not self.dim_mults or any(isinstance(m, bool) or m < 1 for m in self.dim_mults):
            raise ConfigError(
                f"config key 'dim_mults' must be a non-empty list of positive integers, got {list(self.dim_mults)}",
                "dim_mults",
            )
        if self.max_rank is not None:
            _positive_int("max_rank", self.max_rank)
        if self.resize is not None:
            _positive_int("resize", self.resize)
        try:
            spec = self.rank
        except ValueError as err:
            raise ConfigError(f"config key 'rank_spec': {err}", "rank_spec") from None
        factor = 2 ** (len(self.dim_mults) - 1)
        for key in ("crop", "resize"):
            if getattr(self, key) is not None and getattr(self, key) % factor:
                raise ConfigError(
                    f"config key {key!r} ({getattr(self, key)}) must be divisible by {factor} for dim_mults "
                    f"{self.dim_mults}",
                    key,
                )
        if self.basis == "dataset_pca" and spec.is_full:
            raise ConfigError("config key 'basis': dataset_pca needs a low-rank rank_spec, got 'full'", "basis")

    @property
    def rank(self) -> RankSpec:
        return RankSpec.parse(self.rank_spec, max_rank=self.max_rank)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown config key(s) {unknown}{hint}; valid keys: {', '.join(sorted(known))}", unknown[0]
            )
        hints = typing.get_type_hints(cls)
        return cls(**{key: coerce(key, value, hints[key]) for key, value in values.items()})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["dim_mults"] = list(self.dim_mults)
        out["adam_betas"] = list(self.adam_betas)
        out["residual_scale"] = None if self.residual_scale is None else list(self.residual_scale)
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def number_from_text(value: Any) -> Any:
    """``"1e-3"`` -> ``0.001`` (a number written as text: PyYAML reads ``1e-3`` as a string); anything else as is."""
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
        return float(value)
    return value


def _alternatives(hint: Any) -> tuple[Any, ...]:
    """``float | None`` -> ``(float, NoneType)``; any other type hint -> ``(hint,)``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` of config key ``key`` as its field type ``hint`` asks, where that is unambiguous: a number written
    as text (``1e-3``) where a float is expected, a list where a tuple is; otherwise ``value`` as is
    (:func:`check_type` then judges it; an int stays an int).  Returns a new value; ``value`` is not changed."""
    allowed = _alternatives(hint)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is float and isinstance(value, str):
            number = number_from_text(value)
            if isinstance(number, float):
                return number
        if typing.get_origin(kind) is tuple and isinstance(value, list | tuple):
            args = typing.get_args(kind)
            item_hints = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
            if len(item_hints) == len(value):
                return tuple(coerce(key, item, item_hint) for item, item_hint in zip(value, item_hints))
            return tuple(value)
    return value


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` names (``bool`` is no ``int``; an ``int`` is a ``float``)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(hint)
        item_hints = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        return len(item_hints) == len(value) and all(_fits(v, h) for v, h in zip(value, item_hints))
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
"""How an error names the type a config key expects."""


def type_name(hint: Any) -> str:
    """``float | None`` -> ``"a number or null"``; ``tuple[int, ...]`` -> ``"a list of integers"``."""
    names = []
    for kind in _alternatives(hint):
        origin = typing.get_origin(kind)
        if origin is tuple:
            args = typing.get_args(kind)
            item = TYPE_NAMES.get(args[0], str(args[0])).split(" ", 1)[-1]
            names.append(f"a list of {item}s" if args[-1] is Ellipsis else f"a list of {len(args)} {item}s")
        elif origin is dict:
            names.append("a mapping")
        else:
            names.append(TYPE_NAMES.get(kind, str(kind)))
    return " or ".join(names)


def check_type(key: str, value: Any, hint: Any) -> None:
    """Raises :class:`ConfigError` naming ``key`` and the expected type when ``value`` does not fit ``hint``."""
    if not any(_fits(value, kind) for kind in _alternatives(hint)):
        raise ConfigError(f"config key {key!r} must be {type_name(hint)}, got {value!r}", key)


def _positive_int(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"config key {key!r} must be a positive integer, got {value!r}", key)


def load_config(path: str | Path) -> TrainConfig:
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys", TOP_LEVEL_KEY)
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}", err.key) from None


def save_config(config: TrainConfig, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=True))
