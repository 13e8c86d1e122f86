"""The table of paper targets: each entry names functions that exist, the schema has a block per entry, an
entry's files are what its target rule asks for, and the table is cheap to import while Snakemake builds the DAG."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from string import Formatter

import pytest
import yaml

from lrdm import targets
from lrdm.targets import (
    ORDERS,
    PLOT_TARGETS,
    RUN_FIELDS,
    RUN_PATTERN,
    SCORE_TARGETS,
    STEPS,
    TABLE_TARGETS,
    TARGETS,
    Evaluation,
    Ref,
    Run,
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


def test_a_run_names_its_folder_and_an_evaluation_is_that_run_plus_steps():
    run = Run.from_wildcards({"dataset": "rain", "process": "rddm", "objective": "pred_res_noise",
                              "rank_spec": "poly_decrease-p3", "seed": "2"})  # fmt: skip
    assert run == Run("rain", "rddm", "pred_res_noise", "poly_decrease-p3", 2)
    assert run.path == "rain/rddm/pred_res_noise/poly_decrease-p3/seed2"
    assert run.model("results/x") == "results/x/runs/rain/rddm/pred_res_noise/poly_decrease-p3/seed2/model.pt"
    evaluation = Evaluation(*vars(run).values(), steps=5)
    assert evaluation.trained == run and evaluation.path == run.path and evaluation != run
    assert len({evaluation.trained, Evaluation(*vars(run).values(), steps=10).trained}) == 1


def test_the_rules_write_the_run_folder_pattern_only_through_common_smk():
    rules = {path.name: path.read_text() for path in (ROOT / "workflow/rules").glob("*.smk")}
    assert "RUN = P.RUN_PATTERN" in rules["common.smk"]
    assert all("{{rank_spec}}" not in text and "seed{{seed}}" not in text for text in rules.values())
    assert "model=rules.train.output.model" in rules["evaluate.smk"]
    # the pattern's placeholders, the rules' wildcards, are exactly the fields of a Run
    assert [name for _, name, _, _ in Formatter().parse(RUN_PATTERN) if name] == list(RUN_FIELDS)


def test_the_name_constants_are_the_tables_keys():
    names = [
        *(targets.SPECTRUM, targets.RANK_SCHEDULES, targets.RANK_SWEEP, targets.SCHEDULERS, ORDERS, STEPS),
        *(targets.FEASIBILITY, targets.MAIN_TABLE, targets.PROTOCOLS, targets.SAMPLING_METHODS, targets.CLAIMS),
    ]
    assert set(names) <= set(TARGETS)


READERS = [
    *(ROOT / "workflow/rules").glob("*.smk"),
    ROOT / "Snakefile",
    *(ROOT / "lrdm/workflow").glob("*.py"),
    *(ROOT / "workflow/scripts").glob("*.py"),
    ROOT / "lrdm/results/readme.py",
]
"""The rules, checks and README fragments: they read the targets' names from lrdm/targets.py."""


@pytest.mark.parametrize("path", READERS, ids=lambda p: p.name)
def test_rules_checks_and_readme_spell_no_target_name(path):
    # steps and orders are also config keys (sampling.steps, targets.rank_schedules.orders), so not looked for
    names = [*(set(TARGETS) - {STEPS, ORDERS}), targets.RANK_GRID]
    text = path.read_text()
    found = [name for name in names if re.search(rf"[\"']{name}[\"']", text)]
    assert not found, f"{path.name} spells target names {found}: use the constants of lrdm.targets"


def test_a_targets_own_properties_decide_its_score_files_and_step_keys():
    assert [name for name, t in TARGETS.items() if t.protocol_scores] == [targets.PROTOCOLS]
    assert [name for name, t in TARGETS.items() if t.official_rows] == [targets.MAIN_TABLE]
    assert TARGETS[STEPS].steps_keys == ("steps",)
    assert TARGETS[targets.CLAIMS].steps_keys == ("few_steps", "many_steps")
    assert targets.fixed_rank_specs([4, 16]) == ["fixed-r4", "fixed-r16"]


def test_the_readmes_table_of_targets_is_generated_from_the_entries():
    table = targets.targets_markdown()
    assert [line.split("|")[1].strip(" `") for line in table.splitlines()[2:]] == [*TARGETS, targets.ALL]
    assert "`results/tables/main_table.*`, `results/figures/restoration/<dataset>.*`" in table
    # the committed fragment and the README's block are that table (snakemake readme_targets, then
    # python -m lrdm.results.readme --update README.md)
    assert (ROOT / "results/readme" / f"{targets.README_BLOCK}.md").read_text() == table
    readme = (ROOT / "README.md").read_text()
    assert f"<!-- generated: {targets.README_BLOCK} -->\n{table}<!-- end generated -->" in readme
