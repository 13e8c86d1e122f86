"""Checks of the workflow config that the JSON schema cannot make (run by the Snakefile before it plans):
each names the config key at fault."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from lrdm.config import TrainConfig
from lrdm.core.samplers import DEFAULT_SAMPLER, check_sampler_name, sampler_for
from lrdm.errors import ConfigError
from lrdm.targets import MAIN_TABLE, PROTOCOLS, SCORE_TARGETS, TARGETS, Run, enabled_targets, target_evaluations
from lrdm.vocab import FULL_RANK, PROCESS_OBJECTIVES, PROCESSES, RankSpec
from lrdm.workflow.jobs import run_config, run_layers, train_gpus
from lrdm.workflow.official_weights import official_weights, unused_official_weights

RUN_KEYS = ("index", "process", "objective", "rank_spec", "seed", "max_rank", "extra")
"""TrainConfig keys that every run sets itself (from its wildcards and the top-level config)."""


def check_config(config: dict[str, Any]) -> None:
    """Checks what the JSON schema cannot: rank specs parse, targets name configured datasets, the
    resolved run configs are valid and ``train_gpus`` divides their batch.  Raises :class:`ConfigError` naming
    the key (its ``key`` attribute too)."""
    datasets = config["datasets"]
    overrides = [("train", config.get("train", {}))]
    overrides += [(f"datasets.{name}.train", d.get("train", {})) for name, d in datasets.items()]
    overrides += [(f"processes.{name}", p) for name, p in config.get("processes", {}).items()]
    for where, values in overrides:
        for key in RUN_KEYS:
            if key in values:
                raise ConfigError(
                    f"config key {where}.{key} cannot be set there: each run takes it from its target "
                    f"(rank specs, objectives, seeds) or from the top-level config",
                    f"{where}.{key}",
                )
    for target in enabled_targets(config):
        spec = config["targets"][target]
        for name in spec.get("datasets", []):
            if name not in datasets:
                raise ConfigError(
                    f"config key targets.{target}.datasets names {name!r}, which is not under 'datasets' "
                    f"(configured: {', '.join(datasets)})",
                    f"targets.{target}.datasets",
                )
        for key in ("specs", "spec"):
            values = spec.get(key)
            for text in [values] if isinstance(values, str) else values or []:
                try:
                    RankSpec.parse(text)
                except ValueError as err:
                    raise ConfigError(f"config key targets.{target}.{key}: {err}", f"targets.{target}.{key}") from None
    if PROTOCOLS in enabled_targets(config):
        if MAIN_TABLE not in config["targets"]:
            raise ConfigError(
                f"config key targets.{PROTOCOLS} scores the {MAIN_TABLE} runs: configure targets.{MAIN_TABLE}",
                f"targets.{PROTOCOLS}",
            )
        for name in config["targets"][MAIN_TABLE]["datasets"]:
            if datasets[name].get("eval_resize") is not None:
                raise ConfigError(
                    f"config key datasets.{name}.eval_resize: targets.{PROTOCOLS} rescores the images restored at "
                    f"their own size; remove eval_resize or disable targets.{PROTOCOLS}",
                    f"datasets.{name}.eval_resize",
                )
    for name in official_weights(config):
        if name not in datasets:
            raise ConfigError(
                f"config key official_weights.{name} names a dataset that is not under 'datasets' "
                f"(configured: {', '.join(datasets)})",
                f"official_weights.{name}",
            )
    for note in unused_official_weights(config):
        print(note, file=sys.stderr)
    for name, dataset in datasets.items():
        if dataset["source"] == "folders":
            from lrdm.data.folders import pair_folders

            pair_folders(dataset["folders"], name)  # unmatched files, ambiguous ids, size mismatches
        if dataset["source"] == "registry":
            from lrdm.data.registry import REGISTRY

            if name not in REGISTRY:
                raise ConfigError(
                    f"config key datasets.{name}: source 'registry' but {name!r} is not in the dataset registry "
                    f"({', '.join(REGISTRY)})",
                    f"datasets.{name}",
                )
    check_train_gpus(config)
    check_sampling_steps(config)
    check_sampler(config)


def check_sampler(config: dict[str, Any]) -> None:
    """``sampling.sampler`` is a name of the sampler table and samples the process of every evaluated run
    (:func:`lrdm.core.samplers.sampler_for`)."""
    name = config["sampling"].get("sampler", DEFAULT_SAMPLER)
    check_sampler_name(name)
    for target in enabled_targets(config):
        if target in SCORE_TARGETS:
            for process in sorted({evaluation.process for evaluation in target_evaluations(config, target)}):
                sampler_for(name, process)


def check_sampling_steps(config: dict[str, Any]) -> None:
    """Every evaluation samples at most ``T`` steps of its run's process (``sampling.steps``, or the target's
    own step lists: its :attr:`lrdm.targets.Target.steps_keys`, e.g. ``targets.steps.steps``)."""
    horizons = {(name, process): run.T for name, process, run in dataset_runs(config)}
    for target in enabled_targets(config):
        if target not in SCORE_TARGETS:
            continue
        for evaluation in target_evaluations(config, target):
            T = horizons[(evaluation.dataset, evaluation.process)]
            if evaluation.steps > T:
                key = _steps_key(config, target, evaluation.steps)
                raise ConfigError(
                    f"config key {key} ({evaluation.steps}) is more than T = {T} of process {evaluation.process} "
                    f"(dataset {evaluation.dataset!r}, target {target}): sampling cannot take more steps than the "
                    "process has; lower it or raise T",
                    key,
                )


def _steps_key(config: dict[str, Any], target: str, steps: int) -> str:
    """The config key that asked ``target`` for an evaluation at ``steps`` sampling steps: the first of the
    target's ``steps_keys`` that lists them, else ``sampling.steps``."""
    for name in TARGETS[target].steps_keys:
        if steps in config["targets"][target][name]:
            return f"targets.{target}.{name}"
    return "sampling.steps"


def dataset_runs(config: dict[str, Any]) -> Iterable[tuple[str, str, TrainConfig]]:
    """``(dataset, process, resolved TrainConfig)`` of a full-rank run per dataset and process: what every run
    of that dataset shares.  An invalid resolved config raises :class:`ConfigError` naming the config key
    that set the bad value (e.g. ``train.steps``), then the dataset and process."""
    for name in config["datasets"]:
        for process in PROCESSES:
            try:
                run = Run(name, process, PROCESS_OBJECTIVES[process][0], FULL_RANK.name, 0)
                yield name, process, run_config(config, run, index="<index>")
            except ConfigError as err:
                where = key_origin(config, name, process, err.key)
                raise ConfigError(f"config key {where} is invalid: {err} (dataset {name!r}, process {process})",
                                  where) from None  # fmt: skip


def key_origin(config: dict[str, Any], dataset: str, process: str, key: str | None) -> str:
    """The config key that sets run key ``key`` for ``dataset`` and ``process`` (the innermost layer of
    :func:`run_layers` holding it), or ``train.<key>`` for a default."""
    for where, overrides in reversed(run_layers(config, dataset, process)):
        if key in overrides:
            return f"{where}.{key}"
    return f"train.{key}"


def check_train_gpus(config: dict[str, Any]) -> None:
    """``train_gpus`` must divide every run's global ``batch_size`` (each process trains on its share)."""
    gpus = train_gpus(config)
    if gpus < 1:
        raise ConfigError(f"config key train_gpus must be a positive integer, got {gpus}", "train_gpus")
    for name, process, run in dataset_runs(config):
        if run.batch_size % gpus:
            raise ConfigError(
                f"config key train_gpus ({gpus}) must divide the global batch_size ({run.batch_size}) of dataset "
                f"{name!r} (process {process}): each of the {gpus} processes trains on batch_size / train_gpus "
                "samples of every global batch",
                "train_gpus",
            )
