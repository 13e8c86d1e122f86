"""Where a workflow config's files land, so that no config overwrites another's runs, data, tables or logs.

The embedded default (``config/config.yaml`` alone) writes ``results/``, ``resources/`` and ``logs/``. A run with
``--configfile NAME.yaml [OVERLAY.yaml ...]`` (the first one given names it: ``config/smoke.yaml`` -> ``smoke``;
an overlay shares its base config's runs, so a subset run is never trained twice) writes
``results/NAME/``, ``resources/NAME/`` and ``logs/NAME/``. A config that sets ``results`` or ``resources`` itself
gets exactly that folder (``logs/NAME/`` still follows the file's name). The real datasets' archives stay in one
place for every config: ``resources/downloads/`` unless the config sets ``downloads`` (or ``resources``, whose
``downloads/`` it then is), so an archive placed by hand is found by the paper config and every overlay of it.
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
