"""The workflow: config checks at DAG-build time, and the smoke config end-to-end through Snakemake."""

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from lrdm.errors import ConfigError
from lrdm.evaluation.evaluate import RESULT_COLUMNS
from lrdm.schema import checked_config
from lrdm.targets import TARGETS
from lrdm.workflow import Run, all_targets, check_config, enabled_targets, run_config, target_evaluations

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def workflow_config(name):
    """A shipped config as the Snakefile reads it: checked against the schema, with the schema's defaults (a
    target whose schema block has a default is configured without a key in the file)."""
    config = checked_config(load(name), SCHEMA)
    validate(config, str(SCHEMA))
    return config


DISABLED_BY_DESIGN = {"paper.yaml": ("protocols",)}
"""paper.yaml restores its main-table datasets transformed (each paper's protocol), which `protocols` cannot
rescore: that check is made by check_config itself (test_protocols_target_needs_images_at_their_own_size)."""


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "smoke.yaml"])
def test_shipped_configs_pass_checks_and_enable_every_target(name):
    config = workflow_config(name)
    check_config(config)
    assert enabled_targets(config) == [t for t in TARGETS if t not in DISABLED_BY_DESIGN.get(name, ())]


def test_protocols_target_needs_images_at_their_own_size():
    config = load("paper.yaml")
    config["targets"]["protocols"] = {}
    with pytest.raises(ConfigError, match=r"datasets\.raindrop\.eval_resize: targets\.protocols rescores") as err:
        check_config(config)
    assert err.value.key == "datasets.raindrop.eval_resize"


def test_runs_are_shared_between_targets():
    config = load("config.yaml")
    runs = {
        e.path
        for t in all_targets(config)
        if t not in ("spectrum", "rank_schedules")
        for e in target_evaluations(config, t)
    }
    sweep = {e.path for e in target_evaluations(config, "rank_sweep")}
    steps = {e.path for e in target_evaluations(config, "steps")}
    assert "synthetic_rain/rddm/pred_res_noise/fixed-r4/seed0" in sweep & steps
    assert len(runs) == 17
    paper_run = Run("synthetic_blur", "rddm", "pred_res_noise", "poly_decrease-p3", 0)
    paper_cfg = run_config(config, paper_run, index="i.parquet")
    assert paper_cfg.beta2_sum == 0.0001 and paper_cfg.rank.name == "poly_decrease-p3" and paper_cfg.crop == 32
    # per-dataset overrides, then the process's: blur keeps the attention UNet, ResShift on rain the conv UNet
    resshift = run_config(config, Run("synthetic_rain", "resshift", "pred_x0", "full", 0), index="i.parquet")
    assert (paper_cfg.backbone, paper_cfg.lr, paper_cfg.steps) == ("ddpm_unet", 0.001, 400)
    assert (resshift.backbone, resshift.lr, resshift.T, resshift.loss) == ("conv_unet", 0.002, 15, "l2")


def test_own_folders_get_the_cpu_recipe_of_their_source_and_paper_scale_drops_it():
    """``train_by_source.folders`` sits between ``train`` and the dataset's own ``train`` (issue 28)."""
    config = load("config.yaml")
    folders = {"train": {"input": "a", "target": "b"}, "test": {"input": "c", "target": "d"}}
    config["datasets"]["mine"] = {"source": "folders", "task": "rain", "protocol": "derain_y", "folders": folders}
    run = Run("mine", "rddm", "pred_res_noise", "full", 0)
    recipe = config["train_by_source"]["folders"]
    own = run_config(config, run, index="i.parquet")
    assert own.network == recipe["network"] == "two_net" and own.steps == recipe["steps"]
    assert (own.dim, own.lr, own.loss) == (recipe["dim"], recipe["lr"], recipe["loss"]) != (16, 0.002, "l1")
    assert (own.beta2_sum, own.crop, own.backbone) == (0.0001, 32, "conv_unet")  # the embedded default's `train`
    synthetic = run_config(config, Run("synthetic_rain", "rddm", "pred_res_noise", "full", 0), index="i.parquet")
    assert synthetic.network == config["train"]["network"] != "two_net" and synthetic.steps == config["train"]["steps"]
    config["datasets"]["mine"]["train"] = {"steps": 7}
    assert run_config(config, run, index="i.parquet").steps == 7  # the dataset's own keys win
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert "train_by_source" in paper and paper["train_by_source"] is None
    assert run_config({**config, "train_by_source": None}, run, index="i.parquet").network == config["train"]["network"]


def dry_run(tmp_path, config, *targets):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(path), "-n", *targets],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["targets"]["schedulers"].update(specs=["cosine"]), "targets.*schedulers.*specs"),
        (lambda c: c["targets"]["rank_sweep"].update(ranks=[0]), "ranks"),
        (lambda c: c["sampling"].update(steps=0), "steps"),
        (
            lambda c: c["targets"]["main_table"].update(datasets=["raindrop"]),
            "targets.main_table.datasets names 'raindrop'",
        ),
        (lambda c: c["train"].update(objective="pred_res"), "train.objective cannot be set there"),
        (lambda c: c["train"].update(loss="huber"), "'loss'.*valid choices: l1, l2"),
        (lambda c: c["train"].update(steps=-5), "'steps' must be a positive integer"),
        (lambda c: c["datasets"]["synthetic_blur"].update(source="registry"), "not in the dataset registry"),
    ],
)
def test_invalid_config_fails_at_dag_build_naming_the_key(tmp_path, edit, message):
    config = copy.deepcopy(load("smoke.yaml"))
    edit(config)
    proc = dry_run(tmp_path, config)
    assert proc.returncode != 0
    assert pytest.importorskip("re").search(message, proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.slow
def test_smoke_workflow_end_to_end(tmp_path):
    """config/smoke.yaml through Snakemake itself: every target, Parquet schema, tables and figures, and the
    README's fragments (readme_tables)."""
    proc = subprocess.run(
        [
            *SNAKEMAKE,
            "-d",
            str(tmp_path),
            "--configfile",
            str(REPO / "config/smoke.yaml"),
            "--cores",
            "2",
            "all",
            "readme_tables",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    config = load("smoke.yaml")
    results = tmp_path / "results" / "smoke"  # config/smoke.yaml's own folder (lrdm/paths.py)
    scores = pd.read_parquet(results / "scores")
    assert set(RESULT_COLUMNS) <= set(scores.columns)
    expected = {
        (e.dataset, e.process, e.objective, e.rank_spec, e.steps)
        for t in all_targets(config)  # `claims` is a separate target
        if t not in ("spectrum", "rank_schedules")
        for e in target_evaluations(config, t)
    }
    got = set(scores[["dataset", "process", "objective", "rank_spec", "steps"]].itertuples(index=False, name=None))
    assert got == expected
    assert scores["psnr"].notna().all() and (scores["ssim"] <= 1).all()
    for name in ("rank_sweep", "schedulers", "orders", "steps", "feasibility", "main_table", "sampling_methods"):
        for ext in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert "poly_decrease" in (results / "tables" / "schedulers.md").read_text()
    for name in (
        "rank_schedules",
        "rank_sweep",
        "rank_grid",
        "steps",
        "spectrum/synthetic_rain_fig2",
        "spectrum/synthetic_rain_fig3",
        "restoration/synthetic_rain",
        "restoration/synthetic_blur",
    ):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{name}.{ext}").stat().st_size > 0
    for name in ("setup", "scores", "gains", "timing", "protocols", "restorations", "losses"):
        assert (results / "readme" / f"{name}.md").stat().st_size > 0
    for name in ("restoration_synthetic_rain", "losses_synthetic_blur"):
        assert (results / "readme" / f"{name}.png").stat().st_size > 0
    summary = pd.read_parquet(results / "spectrum" / "synthetic_rain" / "summary.parquet")
    assert {"k90", "k99"} <= set(summary.columns)
    run = results / "runs" / "synthetic_rain" / "rddm" / "pred_res_noise" / "full" / "seed0"
    assert yaml.safe_load((run / "config.yaml").read_text())["max_rank"] >= 1  # max_rank: auto resolved
    # the train rule's log follows the training: one progress line every log_every steps
    log = tmp_path / "logs" / "smoke" / "train" / "synthetic_rain" / "rddm" / "pred_res_noise" / "full" / "seed0.log"
    progress = [line for line in log.read_text().splitlines() if " steps/s " in line]
    steps, every = config["train"]["steps"], config["train"]["log_every"]
    assert len(progress) == steps // every and f"step {steps}/{steps} (100%)" in progress[-1], log.read_text()
    assert all(" loss " in line and " ETA " in line for line in progress)
    # the README's report command, naming the config that built the results
    report = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(REPO / "config/smoke.yaml"), "--report", "report.html"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, (report.stdout + report.stderr)[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 0
    # a second run has nothing to do
    again = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(REPO / "config/smoke.yaml"), "--cores", "2", "-n", "all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Nothing to be done" in again.stdout + again.stderr
