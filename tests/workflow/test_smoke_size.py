"""config/smoke.yaml is small everywhere: every training run it plans, through Snakemake's own dry run, trains a few
steps and writes a few checkpoints, whether Snakemake merges it into config/config.yaml (run from the repository
root, as the README says) or reads it alone (`-d` elsewhere: the Snakefile's `configfile:` is not found there)."""

import shutil
from pathlib import Path

import pytest

from lrdm.plan import dry_run, merged_config
from lrdm.workflow import Run, dataset_index_path, run_config

REPO = Path(__file__).resolve().parents[2]
SMOKE_STEPS = 3  # config/smoke.yaml's train.steps
SMOKE_CHECKPOINTS = 2  # checkpoint_every 2: steps 2 and 3 (the last step always)


def checkpoints_written(steps: int, every: int) -> int:
    """Checkpoints a run from step 0 writes: one every ``every`` steps and one at its last step
    (lrdm.training.trainer)."""
    return len({step for step in range(1, steps + 1) if step % every == 0 or step == steps})


@pytest.mark.parametrize("target", ["all", "claims"])
@pytest.mark.parametrize("embedded_default", [True, False], ids=["merged-into-config.yaml", "alone"])
def test_every_run_smoke_plans_trains_a_few_steps_and_writes_a_few_checkpoints(
    target, embedded_default, tmp_path, monkeypatch
):
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "smoke.yaml", tmp_path / "config" / "smoke.yaml")
    base = tmp_path / "config" / "config.yaml"
    if embedded_default:  # as in the repository root, where the Snakefile's configfile: exists
        shutil.copy(REPO / "config" / "config.yaml", base)
        defaults = base
    else:
        defaults = tmp_path / "nothing.yaml"
        defaults.write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    planned = dry_run(["config/smoke.yaml"], target, REPO / "Snakefile")
    config = merged_config(["config/smoke.yaml"], defaults)
    runs = [Run.from_wildcards(job.wildcards) for job in planned.jobs if job.rule == "train"]
    assert len(runs) == planned.counts["train"] > 0
    resolved = {
        str(run): (
            (c := run_config(config, run, dataset_index_path(config, run.dataset))).steps,
            checkpoints_written(c.steps, c.checkpoint_every),
        )
        for run in runs
    }
    assert {run.dataset for run in runs} >= ({"synthetic_rain", "synthetic_blur"} if target == "all" else set())
    assert resolved == dict.fromkeys(resolved, (SMOKE_STEPS, SMOKE_CHECKPOINTS))
