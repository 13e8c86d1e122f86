"""The registry of real benchmarks: ``registry.yaml`` (data), validated at import, into :class:`DatasetEntry`.

Every dataset of the papers (Raindrop, Rain1400, GoPro, RealBlur-J/R, ISTD, CelebA-HQ) is an entry: where its
files come from (:class:`lrdm.data.download.Source`), under which terms, which layout parser pairs its images
(:data:`lrdm.data.layouts.PARSERS`), how it is evaluated (``protocol``) and the RDDM noise budget it is
trained with (``beta2_sum``). The YAML file is checked against ``registry.schema.yaml`` (JSON Schema) when
this module is imported, so a typo there fails at once and names the entry and the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from lrdm.data.download import Source
from lrdm.data.layouts import PARSERS
from lrdm.errors import TOP_LEVEL_KEY, ConfigError
from lrdm.vocab import PROTOCOLS, TASKS, check_choice

REGISTRY_FILE = "registry.yaml"
SCHEMA_FILE = "registry.schema.yaml"
UNVERIFIED_NOTE = (
    "NOT VERIFIED: written without internet access; URLs, archive names, checksums, licence "
    "and layout follow the dataset papers and must be checked on first download."
)
"""Appended to the notes of every entry whose ``verified`` is false."""


@dataclass(frozen=True)
class DatasetEntry:
    """One real benchmark: sources, terms, layout parser and evaluation protocol.

    Attributes:
        name: Registry key (also the wildcard value in the workflow).
        task: ``rain`` | ``blur`` | ``shadow`` | ``inpainting``.
        sources: Files :func:`prepare` fetches (all of them); archives are extracted.
        licence: Licence / terms of use, as far as known (see ``verified``).
        protocol: Evaluation protocol (``derain_y`` | ``rgb`` | ``istd`` | ``realblur``).
        beta2_sum: RDDM's ``sum(beta_t^2)`` for this task (RDDM Tab. 4).
        parse: Layout parser: extracted root -> rows ``image_id, split, input, target, mask``.
        eval_split: Split the paper's numbers are computed on.
        notes: What is assumed about the data and what was (not) verified.
        expected_counts: Pairs per split of the official release, where known.
        verified: Whether URLs, file names, checksums and layout were checked on the
            real files (False for every entry: written without internet access).
        mirrors: Alternative places to get the data (informational, never fetched).
        citation: Paper introducing the dataset.
        homepage: Official page.
        raw_dir: Folder under ``resources/raw`` (default: ``name``); entries sharing an
            archive share it.
    """

    name: str
    task: str
    sources: tuple[Source, ...]
    licence: str
    protocol: str
    beta2_sum: float
    parse: Callable[[Path], pd.DataFrame]
    eval_split: str = "test"
    notes: str = ""
    expected_counts: Mapping[str, int] = field(default_factory=dict)
    verified: bool = False
    mirrors: tuple[Source, ...] = ()
    citation: str = ""
    homepage: str | None = None
    raw_dir: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(
                f"dataset {self.name!r}: task must be one of {TASKS}, got {self.task!r}", f"{self.name}.task"
            )
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"dataset {self.name!r}: protocol must be one of {PROTOCOLS}, got {self.protocol!r}",
                f"{self.name}.protocol",
            )
        if not self.beta2_sum > 0:
            raise ConfigError(
                f"dataset {self.name!r}: beta2_sum must be > 0, got {self.beta2_sum}", f"{self.name}.beta2_sum"
            )
        names = [s.filename for s in self.sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"dataset {self.name!r}: source file names repeat: {names}", f"{self.name}.sources")

    @property
    def raw_folder(self) -> str:
        return self.raw_dir or self.name


def _entry(name: str, values: Mapping[str, Any]) -> DatasetEntry:
    parser = values["parser"]
    if parser not in PARSERS:
        known = ", ".join(PARSERS)
        raise ConfigError(
            f"{REGISTRY_FILE}: dataset {name!r}: unknown parser {parser!r}; parsers: {known}", f"{name}.parser"
        )
    verified = bool(values.get("verified", False))
    notes = values.get("notes", "")
    if not verified:
        notes = f"{notes} {UNVERIFIED_NOTE}".strip()
    return DatasetEntry(
        name=name,
        task=values["task"],
        protocol=values["protocol"],
        beta2_sum=float(values["beta2_sum"]),
        parse=functools.partial(PARSERS[parser], **values.get("parser_args", {})),
        sources=tuple(Source(**s) for s in values["sources"]),
        mirrors=tuple(Source(**s) for s in values.get("mirrors", [])),
        licence=values["licence"],
        eval_split=values.get("eval_split", "test"),
        expected_counts=dict(values.get("expected_counts", {})),
        verified=verified,
        citation=values.get("citation", ""),
        homepage=values.get("homepage"),
        raw_dir=values.get("raw_dir"),
        notes=notes,
    )


def load_registry(path: str | Path | None = None) -> dict[str, DatasetEntry]:
    """Read and validate a registry file (default: the package's ``registry.yaml``)."""
    package = resources.files("lrdm.data")
    text = Path(path).read_text(encoding="utf-8") if path is not None else (package / REGISTRY_FILE).read_text("utf-8")
    where = str(path) if path is not None else REGISTRY_FILE
    data = yaml.safe_load(text)
    schema = yaml.safe_load((package / SCHEMA_FILE).read_text("utf-8"))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as err:
        key = "/".join(str(part) for part in err.absolute_path) or TOP_LEVEL_KEY
        raise ConfigError(f"{where}: {key}: {err.message}", key) from None
    entries = {}
    for name, values in data.items():
        try:
            entries[name] = _entry(name, values)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}", err.key) from None
        except (TypeError, ValueError) as err:  # a source's own checks (lrdm.data.download.Source)
            raise ConfigError(f"{where}: dataset {name!r}: {err}", name) from None
    return entries


REGISTRY: dict[str, DatasetEntry] = load_registry()
"""The real benchmarks, by name."""


def get_entry(name: str, registry: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry:
    """Registry entry ``name``; ValueError listing the known names otherwise."""
    registry = REGISTRY if registry is None else registry
    check_choice(name, sorted(registry), "dataset")
    return registry[name]


def _source_json(s: Source) -> dict[str, Any]:
    return {
        "filename": s.filename,
        "url": s.url,
        "sha256": s.sha256,
        "size": s.size,
        "manual": s.manual,
        "page": s.page,
    }


def registry_json(registry: Mapping[str, DatasetEntry] | None = None) -> list[dict[str, Any]]:
    """JSON-serialisable description of every entry (for ``lrdm datasets --json``)."""
    registry = REGISTRY if registry is None else registry
    return [
        {
            "name": e.name,
            "task": e.task,
            "protocol": e.protocol,
            "beta2_sum": e.beta2_sum,
            "eval_split": e.eval_split,
            "licence": e.licence,
            "sources": [_source_json(s) for s in e.sources],
            "mirrors": [_source_json(s) for s in e.mirrors],
            "expected_counts": dict(e.expected_counts),
            "verified": e.verified,
            "citation": e.citation,
            "homepage": e.homepage,
            "raw_dir": e.raw_folder,
            "notes": e.notes,
        }
        for e in registry.values()
    ]


# --------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------
