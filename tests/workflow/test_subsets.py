"""Overlay files that subset config/paper.yaml (datasets, specs, targets) without editing it: each dry-runs and
plans exactly the training runs of its subset; official weights of a dataset left out are ignored with a note."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from lrdm.workflow import all_targets, check_config, official_datasets, target_evaluations, unused_official_weights

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "config" / "paper.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]

OVERLAYS = {
    "one main-table dataset": ({"targets": {"main_table": {"datasets": ["rain1400"]}}}, "main_table"),
    "two datasets, one spec, no official weights": (
        {
            "targets": {"main_table": {"datasets": ["rain1400", "realblur_j"], "specs": ["full"]}},
            "official_weights": None,
        },
        "main_table",
    ),
    "the official weights alone dropped": ({"official_weights": {"raindrop": None}}, "main_table"),
    "a rank sweep on one dataset": (
        {"targets": {"rank_sweep": {"datasets": ["istd"], "ranks": [10, 40]}}},
        "rank_sweep",
    ),
    "few sampling steps": ({"targets": {"steps": {"specs": ["full"], "steps": [1, 2]}}}, "steps"),
    "all, with most targets off": (
        {
            "targets": {
                name: {"enabled": False}
                for name in (
                    "spectrum",
                    "rank_sweep",
                    "schedulers",
                    "orders",
                    "steps",
                    "feasibility",
                    "sampling_methods",
                )
            }  # fmt: skip
            | {"main_table": {"datasets": ["gopro"]}}
        },
        "all",
    ),
}


def merged(overlay):
    """config/paper.yaml with ``overlay`` merged in as Snakemake merges ``--configfile`` files."""
    config = yaml.safe_load(PAPER.read_text())
    update_config(config, copy.deepcopy(overlay))
    return config


def job_counts(dry_run_output):
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", dry_run_output, re.MULTILINE)}


@pytest.mark.parametrize("name", list(OVERLAYS))
def test_an_overlay_subsets_the_paper_config_and_dry_runs(tmp_path, name):
    overlay, target = OVERLAYS[name]
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", target, "--configfile", str(PAPER), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    config = merged(overlay)
    targets = all_targets(config) if target == "all" else [target]
    runs = {e.path for t in targets if t not in ("spectrum", "rank_schedules") for e in target_evaluations(config, t)}
    assert job_counts(proc.stdout).get("train") == len(runs)
    officials = official_datasets(config) if "main_table" in targets else []
    assert job_counts(proc.stdout).get("import_official", 0) == len(officials)
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: config key official_weights")]
    assert len(notes) == len(unused_official_weights(config))


def test_official_weights_outside_the_main_table_are_ignored_with_a_note(capsys):
    config = merged({"targets": {"main_table": {"datasets": ["rain1400"]}}})
    check_config(config)
    assert capsys.readouterr().err.strip() == (
        "note: config key official_weights.raindrop is ignored: 'raindrop' is not in an enabled "
        "targets.main_table.datasets, the only target that evaluates official weights"
    )
    assert unused_official_weights(merged({"official_weights": None})) == []
