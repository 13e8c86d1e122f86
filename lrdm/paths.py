"""Where a workflow config's files land, so that no config overwrites another's runs, data, tables or logs.

The embedded default (``config/config.yaml`` alone) writes ``results/``, ``resources/`` and ``logs/``. A run with
``--configfile NAME.yaml [OVERLAY.yaml ...]`` (the first one given names it: ``config/smoke.yaml`` -> ``smoke``;
an overlay shares its base config's runs, so a subset run is never trained twice) writes
``results/NAME/``, ``resources/NAME/`` and ``logs/NAME/``. A config that sets ``results`` or ``resources`` itself
gets exactly that folder (``logs/NAME/`` still follows the file's name). The real datasets' archives stay in one
place for every config: ``resources/downloads/`` unless the config sets ``downloads`` (or ``resources``, whose
``downloads/`` it then is), so an archive placed by hand is found by the paper config and every overlay of it.

Below those folders, this module also owns the path of every file that more than one place names (the rules'
outputs and the Python that finds them): a run's folder and model, its score and further-protocol files, the
train and evaluate jobs' benchmarks and logs, the prepared data index, the authors' weights' run, tables and
figures. Each function takes the folder and the parts of the name; a part may be a Snakemake wildcard
(``"{steps}"``, :data:`RUN_PATTERN`), so a rule's pattern and a job's file come from the same function.
Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrdm.errors import ConfigError
from lrdm.vocab import OFFICIAL_RUN

DEFAULT_RESULTS = "results"
DEFAULT_RESOURCES = "resources"
DEFAULT_LOGS = "logs"
DOWNLOADS_FOLDER = "downloads"
"""Sub-folder of the resources folder holding the real datasets' archives (lrdm.data.prepare)."""

RESERVED_NAMES = frozenset(
    {"runs", "scores", "tables", "figures", "spectrum", "benchmarks", "readme"}  # results/
    | {"data", "raw", "official", DOWNLOADS_FOLDER}  # resources/
    | {"train", "evaluate"}  # logs/ (beside data, official, tables, figures, spectrum)
)
"""Folders the embedded default writes inside ``results/``, ``resources/`` and ``logs/``: a config file of one
of these names would mix its files into the default's."""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class OutputFolders:
    """The folders one workflow run writes: ``results``, ``resources`` and ``logs``, and the shared
    ``downloads`` folder the real datasets' archives are read from (lrdm.data.prepare)."""

    results: str
    resources: str
    logs: str
    downloads: str


def config_name(configfiles: Sequence[str | os.PathLike[str]], embedded: str | os.PathLike[str]) -> str | None:
    """Name of a run's folders: the stem of the first of ``configfiles`` (those given with ``--configfile``; the
    later ones are overlays of it), or None for the embedded default (no file given, or the first is ``embedded``).

    Raises:
        ConfigError: The stem cannot name a folder (characters other than letters, digits, ``_.-``) or is one
            of :data:`RESERVED_NAMES`; the message names the file and the keys that avoid the rule.
    """
    if not configfiles:
        return None
    first = Path(configfiles[0])
    if Path(embedded).exists() and first.exists() and os.path.samefile(first, embedded):
        return None
    name = first.name.split(".")[0] if first.name.endswith((".yaml", ".yml", ".json")) else first.name
    if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        raise ConfigError(
            f"config file {str(first)!r}: its name {name!r} cannot name its results folder (letters, digits, _.- "
            f"and none of {', '.join(sorted(RESERVED_NAMES))}); rename it or set the keys results and resources",
            key="results",
        )
    return name


def output_folders(config: Mapping[str, Any], name: str | None) -> OutputFolders:
    """The folders of a run of ``config`` named ``name`` (:func:`config_name`): the config's own ``results``,
    ``resources`` and ``downloads`` where it sets them, else the defaults, under ``NAME/`` where named."""
    sub = "" if name is None else f"/{name}"
    results = config.get("results") or f"{DEFAULT_RESULTS}{sub}"
    resources = config.get("resources") or f"{DEFAULT_RESOURCES}{sub}"
    shared = config.get("resources") or DEFAULT_RESOURCES
    downloads = config.get("downloads") or f"{shared}/{DOWNLOADS_FOLDER}"
    return OutputFolders(results=results, resources=resources, logs=f"{DEFAULT_LOGS}{sub}", downloads=downloads)


def results_folder(config: Mapping[str, Any]) -> str:
    """``config``'s results folder: under the workflow the run's own (the Snakefile fills ``results``), for a
    config read by hand its ``results`` key or the embedded default's ``results``."""
    return output_folders(config, None).results


def resources_folder(config: Mapping[str, Any]) -> str:
    """``config``'s resources folder, as :func:`results_folder`."""
    return output_folders(config, None).resources


# --------------------------------------------------------------------------------------------------
# The files inside those folders
# --------------------------------------------------------------------------------------------------

RUN_TAIL = "{process}/{objective}/{rank_spec}/seed{seed}"
"""A run's folder below its dataset's (``runs/<dataset>/``): what tells two runs of one dataset apart, hence the
``run`` column of its score rows (:func:`lrdm.evaluation.evaluate.run_identity`)."""
RUN_PATTERN = "{dataset}/" + RUN_TAIL
"""A run's folder relative to ``results/runs`` and ``results/scores``; with its fields as Snakemake wildcards
(``common.smk``'s ``RUN``), the pattern of every rule's run paths."""
RUN_FIELDS = ("dataset", "process", "objective", "rank_spec", "seed")
"""The fields that identify a training run (the wildcards of :data:`RUN_PATTERN`)."""
MODEL_FILE = "model.pt"
"""A run folder's trained model (final EMA weights and config; :mod:`lrdm.training.rundir`)."""
INDEX_FILE = "index.parquet"
"""A prepared dataset folder's index of image pairs (:mod:`lrdm.data.index`)."""
TABLE_FORMATS = ("csv", "md", "tex")
"""The files of one table under ``results/tables`` (:func:`lrdm.results.render.write_table`)."""
FIGURE_FORMATS = ("png", "pdf")
"""The files of one figure under ``results/figures`` (:func:`lrdm.results.plots.save_figure`)."""

Steps = int | str
"""A number of sampling steps, or the wildcard ``"{steps}"``."""


def run_tail(process: str, objective: str, rank_spec: str, seed: int | str) -> str:
    """:data:`RUN_TAIL` of one run."""
    return RUN_TAIL.format(process=process, objective=objective, rank_spec=rank_spec, seed=seed)


def official_run(dataset: str) -> str:
    """The run (relative to ``results/runs``) imported from the authors' weights of ``dataset``."""
    return f"{dataset}/{OFFICIAL_RUN}"


def run_folder(results: str, run: str) -> str:
    """The folder of ``run`` (a path as :data:`RUN_PATTERN` or :func:`official_run`) under ``results``."""
    return f"{results}/runs/{run}"


def model_path(results: str, run: str) -> str:
    """The trained (or imported) model of ``run`` (the train and import_official rules' output)."""
    return f"{run_folder(results, run)}/{MODEL_FILE}"


def _evaluation_file(folder: str, run: str, steps: Steps, suffix: str) -> str:
    """``folder/<run>/steps<steps>.<suffix>``: where each file about one evaluation sits in its folder."""
    return f"{folder}/{run}/steps{steps}.{suffix}"


def score_path(results: str, run: str, steps: Steps) -> str:
    """The per-image scores of ``run`` sampled with ``steps`` steps (the evaluate rule's output)."""
    return _evaluation_file(f"{results}/scores", run, steps, "parquet")


def protocols_path(results: str, run: str, steps: Steps) -> str:
    """The same restored images scored under the ``protocols`` target's further protocols, beside the scores."""
    return _evaluation_file(f"{results}/scores", run, steps, "protocols.parquet")


def train_benchmark_path(results: str, run: str) -> str:
    """Snakemake's benchmark (wall time, peak RSS) of the job that trains ``run``."""
    return f"{results}/benchmarks/train/{run}.tsv"


def evaluate_benchmark_path(results: str, run: str, steps: Steps) -> str:
    """Snakemake's benchmark of the job that evaluates ``run`` at ``steps`` steps."""
    return _evaluation_file(f"{results}/benchmarks/evaluate", run, steps, "tsv")


def train_log_path(logs: str, run: str) -> str:
    """The log of the job that trains ``run``."""
    return f"{logs}/train/{run}.log"


def evaluate_log_path(logs: str, run: str, steps: Steps) -> str:
    """The log of the job that evaluates ``run`` at ``steps`` steps."""
    return _evaluation_file(f"{logs}/evaluate", run, steps, "log")


def dataset_index_path(resources: str, dataset: str) -> str:
    """The prepared dataset's index (the prepare_dataset rule's output)."""
    return f"{resources}/data/{dataset}/{INDEX_FILE}"


def official_folder(resources: str, dataset: str) -> str:
    """Where the workflow keeps what it downloads of the authors' weights of ``dataset``."""
    return f"{resources}/official/{dataset}"


def spectrum_file(dataset: str, name: str) -> str:
    """A file of ``dataset``'s residual spectrum analysis (``curves`` or ``summary``), relative to ``results``."""
    return f"spectrum/{dataset}/{name}.parquet"


def spectrum_path(results: str, dataset: str, name: str) -> str:
    """:func:`spectrum_file` under ``results``."""
    return f"{results}/{spectrum_file(dataset, name)}"


README_FOLDER = "readme"
"""The folder of the README's generated fragments below ``results`` (:mod:`lrdm.results.readme`)."""


def readme_folder(results: str) -> str:
    """Where the readme rules write the README's and docs' generated fragments."""
    return f"{results}/{README_FOLDER}"


def table_path(results: str, name: str, ext: str) -> str:
    """One file (:data:`TABLE_FORMATS`) of table ``name``."""
    return f"{results}/tables/{name}.{ext}"


def figure_path(results: str, stem: str, ext: str) -> str:
    """One file (:data:`FIGURE_FORMATS`) of figure ``stem`` (which may hold a folder, e.g. ``restoration/x``)."""
    return f"{results}/figures/{stem}.{ext}"
