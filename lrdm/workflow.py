"""The workflow's logic, kept out of the Snakefile: the paths of runs and scores, the resolved config of every
run, and checks of the workflow config that name the bad key.  Which evaluations each paper artefact needs is
in the table of paper targets, :mod:`lrdm.targets`.

A training run is identified by ``(dataset, process, objective, rank_spec, seed)``; an evaluation by a
run and a number of sampling steps (:class:`lrdm.targets.Evaluation`).  Targets that need the same run share it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import astuple
from typing import Any

from lrdm.config import TrainConfig
from lrdm.errors import ConfigError
from lrdm.joblog import log_to_file  # noqa: F401 - the workflow scripts import it from here
from lrdm.layout import resources_folder, results_folder
from lrdm.targets import (
    SCORE_TARGETS,
    Evaluation,
    all_targets,
    enabled_targets,
    sampling_steps,
    target_evaluations,
)
from lrdm.vocab import (
    DEFAULT_OBJECTIVE,
    DEFAULT_PROCESS,
    FULL_RANK,
    OFFICIAL_RUN,
    PROCESS_OBJECTIVES,
    PROCESSES,
    RankSpec,
)

LRDM_SCORING = "lrdm_y@lrdm256"
"""How the LRDM paper scores (its test transform, then ``lrdm_y``); see ``lrdm.evaluation.evaluate``."""
RDDM_RESIZE = 256
"""The size RDDM resizes test images to (its issue #7)."""
RUN_KEYS = ("index", "process", "objective", "rank_spec", "seed", "max_rank", "extra")
"""TrainConfig keys that every run sets itself (from its wildcards and the top-level config)."""


def run_dir(results: str, dataset: str, process: str, objective: str, rank_spec: str, seed: int | str) -> str:
    return f"{results}/runs/{dataset}/{process}/{objective}/{rank_spec}/seed{seed}"


def score_path(results: str, evaluation: Evaluation) -> str:
    return f"{results}/scores/{evaluation.run}/steps{evaluation.steps}.parquet"


def protocols_path(results: str, evaluation: Evaluation) -> str:
    """The evaluation's further scorings (:func:`protocol_scorings`), beside its score file."""
    return f"{results}/scores/{evaluation.run}/steps{evaluation.steps}.protocols.parquet"


def protocol_scorings(config: dict[str, Any], dataset: str) -> list[str]:
    """Protocol labels under which ``dataset``'s restored images are scored once more for the ``protocols``
    target: the dataset's protocol at the images' own size, under RDDM's resize policy, and under the LRDM
    transform with ``lrdm_y``.  Empty unless the target is enabled and ``dataset`` is a main-table dataset."""
    if "protocols" not in enabled_targets(config) or dataset not in config["targets"]["main_table"]["datasets"]:
        return []
    protocol = config["datasets"][dataset]["protocol"]
    resize = config["targets"]["protocols"].get("resize", RDDM_RESIZE)
    return list(dict.fromkeys([protocol, f"{protocol}@{resize}", LRDM_SCORING]))


def target_score_paths(config: dict[str, Any], target: str) -> list[str]:
    """The score files a scored target reads; the main table's include those of the authors' weights."""
    path = protocols_path if target == "protocols" else score_path
    paths = {path(results_folder(config), e) for e in target_evaluations(config, target)}
    if target == "main_table":
        steps = sampling_steps(config)
        paths |= {official_score_path(results_folder(config), d, steps) for d in official_datasets(config)}
    return sorted(paths)


# The authors' weights (top-level config key ``official_weights``): official RDDM checkpoints placed by hand,
# imported as ``runs/<dataset>/official`` and evaluated like a trained run for the main table.

OFFICIAL_EXPECTED = "an official RDDM Trainer checkpoint: a model-N.pt holding step, model, opt, ema, scaler"
"""What a placed official file must be (the missing-file message says so)."""
OFFICIAL_REASON = "the authors publish their weights behind links on their page, not at a download URL"


def official_weights(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``official_weights``: per dataset, the placed ``file``, the ``page`` it comes from and the ``set``
    overrides of its import (:func:`lrdm.training.official.import_checkpoint`)."""
    entries = config.get("official_weights") or {}
    return {name: entry for name, entry in entries.items() if entry is not None}


def official_datasets(config: dict[str, Any]) -> list[str]:
    """Main-table datasets with official weights configured (the main table's official rows)."""
    if "main_table" not in enabled_targets(config):
        return []
    return [name for name in config["targets"]["main_table"]["datasets"] if name in official_weights(config)]


def unused_official_weights(config: dict[str, Any]) -> list[str]:
    """One note per ``official_weights`` entry that no enabled target evaluates (its dataset is not in an enabled
    ``targets.main_table.datasets``): such entries are ignored, so an overlay can subset the main table."""
    used = set(official_datasets(config))
    return [
        f"note: config key official_weights.{name} is ignored: {name!r} is not in an enabled "
        "targets.main_table.datasets, the only target that evaluates official weights"
        for name in official_weights(config)
        if name not in used
    ]


def official_run_dir(results: str, dataset: str) -> str:
    return f"{results}/runs/{dataset}/{OFFICIAL_RUN}"


def official_score_path(results: str, dataset: str, steps: int | str) -> str:
    return f"{results}/scores/{dataset}/{OFFICIAL_RUN}/steps{steps}.parquet"


def official_params(config: dict[str, Any], dataset: str) -> str:
    """The import rule's ``params``: the dataset's ``official_weights`` entry, canonical."""
    return canonical(official_weights(config)[dataset])


def official_overrides(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The import's config overrides: the entry's ``set``, and the dataset its score rows name."""
    return {**official_weights(config)[dataset].get("set", {}), "extra": {"dataset": dataset}}


def placed_official_file(config: dict[str, Any], dataset: str) -> str:
    """The dataset's placed official checkpoint; :class:`lrdm.errors.ManualDownloadRequired` naming the file,
    its page and where to put it when it is not there (as a missing manual dataset archive)."""
    from pathlib import Path

    from lrdm.data.download import manual_file_message
    from lrdm.errors import ManualDownloadRequired

    entry = official_weights(config)[dataset]
    path = Path(entry["file"])
    if not path.is_file():
        raise ManualDownloadRequired(
            f"official_weights.{dataset}: "
            + manual_file_message(path.name, OFFICIAL_REASON, entry["page"], path, OFFICIAL_EXPECTED)
        )
    return str(path)


def canonical(value: Any) -> str:
    """One text per content (mapping keys sorted): a rule's ``params`` that changes only when the content does,
    so Snakemake reruns a job whose settings changed and never one whose config file was merely reordered."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def run_layers(config: dict[str, Any], dataset: str, process: str) -> list[tuple[str, dict[str, Any]]]:
    """``(config key, overrides)`` that make up a run's config, outermost first: ``train``, then the dataset's
    ``train`` overrides, then the process's (``processes.<name>``)."""
    return [
        ("train", config.get("train", {})),
        (f"datasets.{dataset}.train", config["datasets"][dataset].get("train", {})),
        (f"processes.{process}", config.get("processes", {}).get(process, {})),
    ]


def run_values(
    config: dict[str, Any],
    dataset: str,
    process: str,
    objective: str,
    rank_spec: str,
    seed: int,
    index: str,
    max_rank: Any = None,
) -> dict[str, Any]:
    """The unvalidated keys of one run (see :func:`run_config`)."""
    values: dict[str, Any] = {}
    for _, overrides in run_layers(config, dataset, process):
        values.update(overrides)
    values.update(
        index=index,
        process=process,
        objective=objective,
        rank_spec=rank_spec,
        seed=int(seed),
        max_rank=max_rank,
        extra={"dataset": dataset},
    )
    return values


def run_config(
    config: dict[str, Any],
    dataset: str,
    process: str,
    objective: str,
    rank_spec: str,
    seed: int,
    index: str,
    max_rank: int | None = None,
) -> TrainConfig:
    """The resolved :class:`TrainConfig` of one run: ``train`` defaults, then the dataset's ``train``
    overrides, then the process's overrides (``processes.<name>``), then the run's wildcards."""
    return TrainConfig.from_dict(run_values(config, dataset, process, objective, rank_spec, seed, index, max_rank))


def dataset_index_path(config: dict[str, Any], dataset: str) -> str:
    return f"{resources_folder(config)}/data/{dataset}/index.parquet"


def train_params(
    config: dict[str, Any], dataset: str, process: str, objective: str, rank_spec: str, seed: int | str
) -> str:
    """The train rule's ``params``: the run's resolved config (defaults included; ``max_rank`` as configured,
    ``auto`` resolved by the job) in :func:`canonical` form, so that editing it reruns exactly that run."""
    values = run_values(
        config, dataset, process, objective, rank_spec, int(seed), dataset_index_path(config, dataset),
        config.get("max_rank"),
    )  # fmt: skip
    return canonical({**TrainConfig().to_dict(), **values})


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


def check_config(config: dict[str, Any]) -> None:
    """Checks what the JSON schema cannot: rank specs parse, targets name configured datasets, the
    resolved run configs are valid and ``train_gpus`` divides their batch.  Raises ``ValueError`` naming the key."""
    datasets = config["datasets"]
    overrides = [("train", config.get("train", {}))]
    overrides += [(f"datasets.{name}.train", d.get("train", {})) for name, d in datasets.items()]
    overrides += [(f"processes.{name}", p) for name, p in config.get("processes", {}).items()]
    for where, values in overrides:
        for key in RUN_KEYS:
            if key in values:
                raise ValueError(
                    f"config key {where}.{key} cannot be set there: each run takes it from its target "
                    f"(rank specs, objectives, seeds) or from the top-level config"
                )
    for target in enabled_targets(config):
        spec = config["targets"][target]
        for name in spec.get("datasets", []):
            if name not in datasets:
                raise ValueError(
                    f"config key targets.{target}.datasets names {name!r}, which is not under 'datasets' "
                    f"(configured: {', '.join(datasets)})"
                )
        for key in ("specs", "spec"):
            values = spec.get(key)
            for text in [values] if isinstance(values, str) else values or []:
                try:
                    RankSpec.parse(text)
                except ValueError as err:
                    raise ValueError(f"config key targets.{target}.{key}: {err}") from None
    if "protocols" in enabled_targets(config):
        if "main_table" not in config["targets"]:
            raise ValueError("config key targets.protocols scores the main_table runs: configure targets.main_table")
        for name in config["targets"]["main_table"]["datasets"]:
            if datasets[name].get("eval_resize") is not None:
                raise ValueError(
                    f"config key datasets.{name}.eval_resize: targets.protocols rescores the images restored at "
                    f"their own size; remove eval_resize or disable targets.protocols"
                )
    for name in official_weights(config):
        if name not in datasets:
            raise ValueError(
                f"config key official_weights.{name} names a dataset that is not under 'datasets' "
                f"(configured: {', '.join(datasets)})"
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
                raise ValueError(
                    f"config key datasets.{name}: source 'registry' but {name!r} is not in the dataset registry "
                    f"({', '.join(REGISTRY)})"
                )
    check_train_gpus(config)
    check_sampling_steps(config)


def check_sampling_steps(config: dict[str, Any]) -> None:
    """Every evaluation samples at most ``T`` steps of its run's process (``sampling.steps``, or the target's
    own step list: ``targets.steps.steps``, ``targets.claims.few_steps`` / ``many_steps``)."""
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
    """The config key that asked ``target`` for an evaluation at ``steps`` sampling steps."""
    if target == "steps":
        return "targets.steps.steps"
    if target == "claims":
        for name in ("few_steps", "many_steps"):
            if steps in config["targets"]["claims"][name]:
                return f"targets.claims.{name}"
    return "sampling.steps"


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


def loss_comparison_runs(config: dict[str, Any], dataset: str) -> list[str]:
    """The run folders (relative to ``results/runs``) of ``dataset`` that ``all`` trains, sorted."""
    return sorted({e.run for e in all_evaluations(config) if e.dataset == dataset})


def loss_comparison_paths(config: dict[str, Any]) -> list[str]:
    """The loss figure (PNG) of every dataset that ``all`` trains on: all its runs on one axes."""
    datasets = sorted({e.dataset for e in all_evaluations(config)})
    return [f"{results_folder(config)}/figures/losses/{dataset}.png" for dataset in datasets]


def benchmark_paths(
    config: dict[str, Any], evaluations: Iterable[Evaluation], already: Iterable[Evaluation] = ()
) -> dict[str, list[str]]:
    """The Snakemake benchmark files (``results/benchmarks/<rule>/...tsv``) of the train and evaluate jobs behind
    ``evaluations``, by rule (the paths the two rules' ``benchmark`` directives write), leaving out the jobs that
    ``already`` needs (e.g. ``all``'s, for what ``claims`` adds)."""
    done = set(already)
    done_runs = {e.run for e in done}
    wanted = sorted(set(evaluations) - done, key=astuple)
    root = f"{results_folder(config)}/benchmarks"
    return {
        "train": sorted({f"{root}/train/{e.run}.tsv" for e in wanted if e.run not in done_runs}),
        "evaluate": [f"{root}/evaluate/{e.run}/steps{e.steps}.tsv" for e in wanted],
    }


def rank_grid_dataset(config: dict[str, Any]) -> str:
    """The dataset of LRDM Fig. 7: the first rank-sweep dataset (its protocol scores the figure's PSNRs)."""
    return config["targets"]["rank_sweep"]["datasets"][0]


def rank_grid_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, model path) for LRDM Fig. 7: the full-rank run ("w.o. LR") and each fixed rank, on the
    first rank-sweep dataset and the first seed."""
    spec = config["targets"]["rank_sweep"]
    dataset, seed = rank_grid_dataset(config), config["seeds"][0]
    runs = [(f"r = {r}", f"fixed-r{r}") for r in spec["ranks"]] + [("w.o. LR", "full")]
    results = results_folder(config)
    return [
        (label, f"{run_dir(results, dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, rank_spec, seed)}/model.pt")
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
    ``RDDM (full rank)`` and ``LRDM (<rank spec>)``, or the row names of ``targets.main_table.labels``."""
    spec = config["targets"]["main_table"]
    labels = spec.get("labels", {})
    results = results_folder(config)
    return [
        (
            labels.get(rank_spec, "RDDM (full rank)" if rank_spec == FULL_RANK.name else f"LRDM ({rank_spec})"),
            f"{run_dir(results, dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, rank_spec, config['seeds'][0])}/model.pt",
        )
        for rank_spec in spec["specs"]
    ]


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
        raise ValueError("config key max_rank is 'auto' but no spectrum summary was given")
    return suggest_max_rank(pd.concat([pd.read_parquet(p) for p in paths]))


# Several GPUs for one run (top-level config key ``train_gpus``).

GPU_ENVIRONMENT = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")
"""Variables a training job logs (``gpu environment: {...}``) so a log shows which GPUs it was given."""


def train_options(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`lrdm.training.trainer.train` that change speed, not results: the top-level keys
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


def dataset_runs(config: dict[str, Any]) -> Iterable[tuple[str, str, TrainConfig]]:
    """``(dataset, process, resolved TrainConfig)`` of a full-rank run per dataset and process: what every run
    of that dataset shares.  An invalid resolved config raises :class:`ConfigError` naming the config key
    that set the bad value (e.g. ``train.steps``), then the dataset and process."""
    for name in config["datasets"]:
        for process in PROCESSES:
            try:
                yield name, process, run_config(config, name, process, PROCESS_OBJECTIVES[process][0], "full", 0,
                                                index="<index>")  # fmt: skip
            except ConfigError as err:
                where = key_origin(config, name, process, err.key)
                raise ConfigError(f"config key {where} is invalid: {err} (dataset {name!r}, process {process})",
                                  where) from None  # fmt: skip
            except ValueError as err:
                raise ValueError(f"config for dataset {name!r} (process {process}): {err}") from None


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
        raise ValueError(f"config key train_gpus must be a positive integer, got {gpus}")
    for name, process, run in dataset_runs(config):
        if run.batch_size % gpus:
            raise ValueError(
                f"config key train_gpus ({gpus}) must divide the global batch_size ({run.batch_size}) of dataset "
                f"{name!r} (process {process}): each of the {gpus} processes trains on batch_size / train_gpus "
                "samples of every global batch"
            )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for the rendezvous of one multi-process run)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def launch_command(
    config_path: str,
    run_dir: str,
    num_processes: int,
    *,
    cpu: bool = False,
    port: int | None = None,
    python: str | None = None,
    data_workers: int = 0,
    compile_model: bool = False,
    restart_on_change: bool = False,
) -> list[str]:
    """Command that trains one run on ``num_processes`` processes of this machine.

    GPUs: ``accelerate launch --multi_gpu`` (one process per visible GPU, NCCL).  ``cpu``: torchrun
    (``torch.distributed.run``; processes on CPU, gloo), because ``accelerate launch --cpu`` starts several
    CPU processes only through MPI.  Either way every process runs ``lrdm train --config --run-dir`` on the
    same config; ``lrdm.training.trainer`` splits each global batch between them.  ``data_workers`` and
    ``compile_model`` and ``restart_on_change``: as in :func:`lrdm.training.trainer.train`, per process.
    """
    import sys

    python = python or sys.executable
    port = port or free_port()
    if cpu:
        launcher = [python, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(num_processes)]
        launcher += ["--master_addr", "127.0.0.1", "--master_port", str(port), "-m"]
    else:
        launcher = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes)]
        # launcher defaults only; the run's own mixed_precision (lrdm.training.trainer) is passed to
        # Accelerator explicitly
        launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        launcher += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "-m"]
    command = ["lrdm.cli", "train", "--config", str(config_path), "--run-dir", str(run_dir)]
    command += ["--data-workers", str(data_workers), *(["--compile"] if compile_model else [])]
    command += ["--restart-on-change"] if restart_on_change else []
    return [*launcher, *command]


def gpu_environment() -> dict[str, str | None]:
    """The GPU-related environment of this process (see :data:`GPU_ENVIRONMENT`)."""
    import os

    return {name: os.environ.get(name) for name in GPU_ENVIRONMENT}
