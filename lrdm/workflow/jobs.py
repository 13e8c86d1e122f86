"""Planning: which runs and evaluations the workflow makes, their files (named by :mod:`lrdm.paths`, as the rules
name them), the resolved config of every run and the ``params`` of the rules.  Which evaluations each paper
artefact needs is in the table of paper targets, :mod:`lrdm.targets`.

A training run is a :class:`lrdm.targets.Run`, ``(dataset, process, objective, rank_spec, seed)``; an evaluation
a run and a number of sampling steps (:class:`lrdm.targets.Evaluation`).  Targets that need the same run share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import astuple
from typing import Any

from lrdm import paths
from lrdm.config import TrainConfig
from lrdm.errors import ConfigError
from lrdm.evaluation.tiling import AUTO as AUTO_TILE
from lrdm.paths import resources_folder, results_folder
from lrdm.targets import (
    LOSSES_FIGURE,
    MAIN_TABLE,
    PROTOCOLS,
    RANK_SWEEP,
    SCORE_TARGETS,
    TARGETS,
    Evaluation,
    Run,
    all_targets,
    enabled_targets,
    fixed_rank_specs,
    sampling_steps,
    target_evaluations,
)
from lrdm.vocab import DEFAULT_OBJECTIVE, DEFAULT_PROCESS, FULL_RANK
from lrdm.workflow.official_weights import official_datasets, official_model_path, official_score_path, official_weights

LRDM_SCORING = "lrdm_y@lrdm256"
"""How the LRDM paper scores (its test transform, then ``lrdm_y``); see ``lrdm.evaluation.evaluate``."""
RDDM_RESIZE = 256
"""The size RDDM resizes test images to (its issue #7)."""


def score_path(results: str, evaluation: Evaluation) -> str:
    """The evaluation's score file (:func:`lrdm.paths.score_path`)."""
    return paths.score_path(results, evaluation.path, evaluation.steps)


def protocols_path(results: str, evaluation: Evaluation) -> str:
    """The evaluation's further scorings (:func:`protocol_scorings`), beside its score file."""
    return paths.protocols_path(results, evaluation.path, evaluation.steps)


def protocol_scorings(config: dict[str, Any], dataset: str) -> list[str]:
    """Protocol labels under which ``dataset``'s restored images are scored once more for the ``protocols``
    target: the dataset's protocol at the images' own size, under RDDM's resize policy, and under the LRDM
    transform with ``lrdm_y``.  Empty unless the target is enabled and ``dataset`` is a main-table dataset."""
    if PROTOCOLS not in enabled_targets(config) or dataset not in config["targets"][MAIN_TABLE]["datasets"]:
        return []
    protocol = config["datasets"][dataset]["protocol"]
    resize = config["targets"][PROTOCOLS].get("resize", RDDM_RESIZE)
    return list(dict.fromkeys([protocol, f"{protocol}@{resize}", LRDM_SCORING]))


def target_score_paths(config: dict[str, Any], target: str) -> list[str]:
    """The score files a scored target reads (its further-protocol files for a target with ``protocol_scores``);
    those of a target with ``official_rows`` include the authors' weights' scores."""
    entry = TARGETS[target]
    path = protocols_path if entry.protocol_scores else score_path
    found = {path(results_folder(config), e) for e in target_evaluations(config, target)}
    if entry.official_rows:
        steps = sampling_steps(config)
        found |= {official_score_path(results_folder(config), d, steps) for d in official_datasets(config)}
    return sorted(found)


def canonical(value: Any) -> str:
    """One text per content (mapping keys sorted): a rule's ``params`` that changes only when the content does,
    so Snakemake reruns a job whose settings changed and never one whose config file was merely reordered."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def run_layers(config: dict[str, Any], dataset: str, process: str) -> list[tuple[str, dict[str, Any]]]:
    """``(config key, overrides)`` that make up a run's config, outermost first: ``train``, then those of the
    dataset's source (``train_by_source.<source>``), then the dataset's ``train`` overrides, then the process's
    (``processes.<name>``)."""
    source = config["datasets"][dataset].get("source")
    return [
        ("train", config.get("train", {})),
        (f"train_by_source.{source}", (config.get("train_by_source") or {}).get(source) or {}),
        (f"datasets.{dataset}.train", config["datasets"][dataset].get("train", {})),
        (f"processes.{process}", config.get("processes", {}).get(process, {})),
    ]


def run_values(config: dict[str, Any], run: Run, index: str, max_rank: Any = None) -> dict[str, Any]:
    """The unvalidated keys of one run (see :func:`run_config`)."""
    values: dict[str, Any] = {}
    for _, overrides in run_layers(config, run.dataset, run.process):
        values.update(overrides)
    values.update(
        index=index,
        process=run.process,
        objective=run.objective,
        rank_spec=run.rank_spec,
        seed=int(run.seed),
        max_rank=max_rank,
        extra={"dataset": run.dataset},
    )
    return values


def run_config(config: dict[str, Any], run: Run, index: str, max_rank: int | None = None) -> TrainConfig:
    """The resolved :class:`TrainConfig` of one run: ``train`` defaults, then the dataset's ``train``
    overrides, then the process's overrides (``processes.<name>``), then the run's own fields."""
    return TrainConfig.from_dict(run_values(config, run, index, max_rank))


def dataset_index_path(config: dict[str, Any], dataset: str) -> str:
    """The prepared index of ``dataset`` in ``config``'s resources folder (:func:`lrdm.paths.dataset_index_path`)."""
    return paths.dataset_index_path(resources_folder(config), dataset)


def train_params(config: dict[str, Any], run: Run) -> str:
    """The train rule's ``params``: the run's resolved config (defaults included; ``max_rank`` as configured,
    ``auto`` resolved by the job) in :func:`canonical` form, so that editing it reruns exactly that run."""
    values = run_values(config, run, dataset_index_path(config, run.dataset), config.get("max_rank"))
    return canonical({**TrainConfig().to_dict(), **values})


def official_params(config: dict[str, Any], dataset: str) -> str:
    """The import rule's ``params``: the dataset's ``official_weights`` entry, canonical."""
    return canonical(official_weights(config)[dataset])


DATA_KEYS = ("source", "task", "size", "patches_per_image", "test_patches_per_image", "folders", "expected_pairs")
"""Keys of ``datasets.<name>`` that decide the prepared data (the others: training and evaluation settings)."""


def dataset_params(config: dict[str, Any], dataset: str) -> str:
    """The prepare_dataset rule's ``params``: the keys of the dataset that make its files, canonical, so that
    editing its ``train`` overrides or its protocol does not rebuild the data."""
    spec = config["datasets"][dataset]
    return canonical({key: spec[key] for key in DATA_KEYS if key in spec})


def target_params(config: dict[str, Any], target: str) -> str:
    """A table or figure rule's ``params``: the target's spec and the sampling settings, canonical."""
    return canonical({"target": config["targets"][target], "sampling": config["sampling"]})


def dataset_files(config: dict[str, Any], name: str) -> list[str]:
    """The image files a ``source: folders`` dataset is indexed from (the prepare rule's inputs, so that a changed
    folder rebuilds the index); nothing for the other sources."""
    dataset = config["datasets"][name]
    if dataset["source"] != "folders":
        return []
    from lrdm.data.folders import pair_folders

    pairs = pair_folders(dataset["folders"], name)
    return sorted([*pairs["input"], *pairs["target"]])


def all_evaluations(config: dict[str, Any]) -> list[Evaluation]:
    """Every (run, steps) evaluation of the scored targets that ``all`` builds, sorted."""
    found = {e for target in all_targets(config) if target in SCORE_TARGETS
             for e in target_evaluations(config, target)}  # fmt: skip
    return sorted(found, key=astuple)


def runs_in_config_order(config: dict[str, Any]) -> list[list[str]]:
    """The ``[dataset, process, objective, rank_spec]`` of every run that ``all`` trains, in the config's order:
    datasets as listed under ``datasets``, each dataset's runs in the order the targets (as written under
    ``targets``) first name them.  The README's scores table lists its rows in this order, not by score."""
    all_scored = [name for name in all_targets(config) if name in SCORE_TARGETS]
    ordered = [name for name in config.get("targets", {}) if name in all_scored]
    keys: dict[tuple[str, str, str, str], None] = {}
    for name in ordered:
        for evaluation in target_evaluations(config, name):
            keys.setdefault((evaluation.dataset, evaluation.process, evaluation.objective, evaluation.rank_spec))
    datasets = list(config.get("datasets", {}))
    return [list(key) for key in sorted(keys, key=lambda key: datasets.index(key[0]))]


def loss_comparison_runs(config: dict[str, Any], dataset: str) -> list[Run]:
    """The runs of ``dataset`` that ``all`` trains, sorted by folder."""
    return sorted({e.trained for e in all_evaluations(config) if e.dataset == dataset}, key=lambda run: run.path)


def loss_comparison_paths(config: dict[str, Any]) -> list[str]:
    """The loss figure (PNG) of every dataset that ``all`` trains on: all its runs on one axes."""
    datasets = sorted({e.dataset for e in all_evaluations(config)})
    return [paths.figure_path(results_folder(config), LOSSES_FIGURE.format(dataset=d), "png") for d in datasets]


def benchmark_paths(
    config: dict[str, Any], evaluations: Iterable[Evaluation], already: Iterable[Evaluation] = ()
) -> dict[str, list[str]]:
    """The Snakemake benchmark files (``results/benchmarks/<rule>/...tsv``) of the train and evaluate jobs behind
    ``evaluations``, by rule (the paths the two rules' ``benchmark`` directives write), leaving out the jobs that
    ``already`` needs (e.g. ``all``'s, for what ``claims`` adds)."""
    done = set(already)
    done_runs = {e.path for e in done}
    wanted = sorted(set(evaluations) - done, key=astuple)
    results = results_folder(config)
    return {
        "train": sorted({paths.train_benchmark_path(results, e.path) for e in wanted if e.path not in done_runs}),
        "evaluate": [paths.evaluate_benchmark_path(results, e.path, e.steps) for e in wanted],
    }


def rank_grid_dataset(config: dict[str, Any]) -> str:
    """The dataset of LRDM Fig. 7: the first rank-sweep dataset (its protocol scores the figure's PSNRs)."""
    return config["targets"][RANK_SWEEP]["datasets"][0]


def rank_grid_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, model path) for LRDM Fig. 7: the full-rank run ("w.o. LR") and each fixed rank, on the
    first rank-sweep dataset and the first seed."""
    spec = config["targets"][RANK_SWEEP]
    dataset, seed = rank_grid_dataset(config), config["seeds"][0]
    labels = [f"r = {r}" for r in spec["ranks"]]
    runs = [*zip(labels, fixed_rank_specs(spec["ranks"]), strict=True), ("w.o. LR", FULL_RANK.name)]
    results = results_folder(config)
    return [
        (label, Run(dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, rank_spec, seed).model(results))
        for label, rank_spec in runs
    ]


RESTORATION_GRID_IMAGES = 3
"""Test images (rows) of each restoration grid: the first ones of the test split (all of a smaller split)."""


def restoration_grid_images(config: dict[str, Any], dataset: str) -> int:
    """Rows of ``dataset``'s restoration grid: :data:`RESTORATION_GRID_IMAGES`, or fewer under the dataset's
    ``max_test_images`` (a smoke run restores no more test images for its figure than for its scores)."""
    limit = config["datasets"][dataset].get("max_test_images")
    return RESTORATION_GRID_IMAGES if limit is None else min(RESTORATION_GRID_IMAGES, int(limit))


def restoration_grid_runs(config: dict[str, Any], dataset: str) -> list[tuple[str, str]]:
    """(label, model path) of each main-table run of ``dataset`` (first seed) for its restoration grid:
    ``RDDM (full rank)`` and ``LRDM (<rank spec>)``, or the row names of ``targets.main_table.labels``; then the
    authors' weights where ``official_weights`` has the dataset (``LRDM, official weights`` when their import sets
    a rank spec, else ``RDDM, official weights``)."""
    spec = config["targets"][MAIN_TABLE]
    labels = spec.get("labels", {})
    results = results_folder(config)
    runs = [
        (
            labels.get(rank_spec, "RDDM (full rank)" if rank_spec == FULL_RANK.name else f"LRDM ({rank_spec})"),
            Run(dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, rank_spec, int(config["seeds"][0])).model(results),
        )
        for rank_spec in spec["specs"]
    ]
    if dataset in official_datasets(config):
        rank_spec = official_weights(config)[dataset].get("set", {}).get("rank_spec", FULL_RANK.name)
        kind = "RDDM" if rank_spec == FULL_RANK.name else "LRDM"
        runs.append((f"{kind}, official weights", official_model_path(results, dataset)))
    return runs


def rank_grid_models(config: dict[str, Any]) -> list[str]:
    return [path for _, path in rank_grid_runs(config)]


def rank_grid_labels(config: dict[str, Any]) -> list[str]:
    return [label for label, _ in rank_grid_runs(config)]


def run_max_rank(config: dict[str, Any], spectrum_summaries: Iterable[str]) -> int | None:
    """``R_m`` of a run: the config's ``max_rank``, or for ``auto`` the k99 suggested by the spectrum."""
    value = config.get("max_rank")
    if value != "auto":
        return value
    import pandas as pd

    from lrdm.results.spectrum import suggest_max_rank

    paths = list(spectrum_summaries)
    if not paths:
        raise ConfigError("config key max_rank is 'auto' but no spectrum summary was given", "max_rank")
    return suggest_max_rank(pd.concat([pd.read_parquet(p) for p in paths]))


def train_options(config: dict[str, Any]) -> dict[str, Any]:
    """Fields of :class:`lrdm.training.trainer.TrainOptions` that change speed, not results: the top-level keys
    ``train_data_workers`` (DataLoader workers per process, default 0) and ``train_compile`` (default false)."""
    return {
        "data_workers": int(config.get("train_data_workers", 0)),
        "compile_model": bool(config.get("train_compile", False)),
    }


def train_gpus(config: dict[str, Any]) -> int:
    """GPUs (one process each) that every training run uses: the top-level ``train_gpus``, default 1."""
    return int(config.get("train_gpus", 1))


EVAL_GPUS = 1
"""GPUs of one evaluation job (its batches run on one device)."""
DEFAULT_EVAL_BATCH = 1


def eval_gpus(config: dict[str, Any]) -> int:
    """The evaluate rule's ``gpu`` resource: one GPU when training asks for GPUs (``train_gpus``), else none."""
    return EVAL_GPUS if train_gpus(config) > 0 else 0


def eval_batch(config: dict[str, Any]) -> int:
    """Test images of one size restored together (config key ``eval_batch``)."""
    return int(config.get("eval_batch", DEFAULT_EVAL_BATCH))


def eval_tile(config: dict[str, Any]) -> int | str | None:
    """How evaluations send large test images through the network (config key ``eval_tile``: ``auto``, a tile
    side, or None for whole images; :mod:`lrdm.evaluation.tiling`)."""
    return config.get("eval_tile", AUTO_TILE)
