"""The table of paper targets: each entry names functions that exist, the schema has a block per entry, an
entry's files are what its target rule asks for, and the table is cheap to import while Snakemake builds the DAG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lrdm.targets import (
    PLOT_TARGETS,
    SCORE_TARGETS,
    TABLE_TARGETS,
    TARGETS,
    Ref,
    Target,
    all_targets,
    build_target_table,
    enabled_targets,
    target_evaluations,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def test_every_builder_and_plotter_named_by_the_table_exists():
    refs = [ref for target in TARGETS.values() for ref in (target.builder, target.plot) if ref is not None]
    assert refs and all(callable(ref.resolve()) for ref in refs)
    with pytest.raises(AttributeError, match="no_such_builder"):
        Ref("lrdm.results.tables", "no_such_builder").resolve()


def test_each_entry_has_a_schema_block_and_each_block_an_entry():
    assert set(SCHEMA["properties"]["targets"]["properties"]) == set(TARGETS)
    assert all(name == target.name for name, target in TARGETS.items())


def test_importing_the_table_imports_neither_pandas_nor_matplotlib():
    code = "import sys, lrdm.targets; print(*(m in sys.modules for m in ('pandas', 'matplotlib', 'torch')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False", "False"]


def test_outputs_list_tables_then_shared_figures_then_each_datasets_files():
    target = Target(
        "toy",
        "a toy",
        "Toy",
        builder=Ref("lrdm.results.tables", "orders_table"),
        figures=("toy", "toy/{dataset}"),
        files=("toy/{dataset}/summary.parquet",),
    )
    assert target.outputs("res", {"datasets": ["a", "b"]}) == [
        "res/tables/toy.csv",
        "res/tables/toy.md",
        "res/tables/toy.tex",
        "res/figures/toy.png",
        "res/figures/toy.pdf",
        "res/toy/a/summary.parquet",
        "res/figures/toy/a.png",
        "res/figures/toy/a.pdf",
        "res/toy/b/summary.parquet",
        "res/figures/toy/b.png",
        "res/figures/toy/b.pdf",
    ]
    with pytest.raises(KeyError, match="datasets"):  # a per-dataset file needs the target's datasets
        target.outputs("res", {})


def test_the_derived_name_lists_follow_the_entries():
    assert set(SCORE_TARGETS) == {name for name, t in TARGETS.items() if t.evaluations is not None}
    assert set(TABLE_TARGETS) <= set(SCORE_TARGETS)  # every table is built from scores
    assert set(PLOT_TARGETS) <= set(TABLE_TARGETS)
    assert {"spectrum", "rank_schedules"}.isdisjoint(SCORE_TARGETS)  # figure-only targets


def test_separate_targets_are_enabled_but_left_out_of_all():
    config = {"targets": {"claims": {}, "schedulers": {}, "orders": {"enabled": False}}}
    assert enabled_targets(config) == ["schedulers", "claims"]
    assert all_targets(config) == ["schedulers"]


def test_a_target_without_evaluations_or_table_is_refused_by_name():
    with pytest.raises(ValueError, match="target 'rank_schedules' has no evaluations; scored targets: rank_sweep"):
        target_evaluations({"targets": {"rank_schedules": {}}}, "rank_schedules")
    with pytest.raises(ValueError, match="no table for target 'nonexistent'; tables: rank_sweep, schedulers"):
        build_target_table("nonexistent", None, {})
    with pytest.raises(ValueError, match="config key sampling.steps"):
        build_target_table("claims", None, {})
