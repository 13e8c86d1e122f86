"""``benchmarks/gpu-check.sh`` (issue 16): its syntax, its dry run on the CPU, and the one Parquet file and
Markdown summary it ends with."""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lrdm.cli import build_parser
from lrdm.config import TrainConfig
from lrdm.perf.bench import BENCH_COLUMNS
from lrdm.perf.gpu_check import LOSS_OPERATION, combine, main, markdown_summary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu-check.sh"
CLI = f"{sys.executable} -m lrdm.cli"


def test_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> list[list[str]]:
    """The commands of a dry run, each as its argument list."""
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "LRDM": CLI, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert not list(out.iterdir())  # a dry run writes nothing, and says so
    assert done.stdout.splitlines()[-1].endswith("none ran; nothing was written") and "Parquet file" not in done.stdout
    return [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith("+ ")]


def lrdm_commands(commands: list[list[str]], name: str) -> list:
    prefix = shlex.split(CLI)
    found = [c[len(prefix) :] for c in commands if c[: len(prefix)] == prefix and c[len(prefix)] == name]
    return [build_parser().parse_args(args) for args in found]  # every command parses


def test_dry_run_benches_both_backbones_and_precisions_eager_and_compiled(dry_run):
    benches = lrdm_commands(dry_run, "bench")
    assert {(b.backbone, b.precision) for b in benches} == set(
        itertools.product(("ddpm_unet", "rddm_unetres"), ("fp32", "bf16"))
    )
    assert all(b.preset == "gpu" and b.compile and b.device == "cuda" for b in benches)


def test_dry_run_trains_300_steps_at_the_paper_size_in_fp32_and_bf16(dry_run):
    trainings = lrdm_commands(dry_run, "train")
    configs = [
        TrainConfig.from_dict({k: yaml.safe_load(v) for k, _, v in (pair.partition("=") for pair in t.set)})
        for t in trainings
    ]
    assert sorted(c.mixed_precision for c in configs) == ["bf16", "no"]
    for config in configs:
        assert (config.steps, config.crop, config.dim, config.dim_mults) == (300, 256, 64, (1, 2, 4, 8))
        assert (config.backbone, config.batch_size, config.grad_accum) == ("rddm_unetres", 1, 2)
    assert dry_run[-1][1:3] == ["-m", "lrdm.perf.gpu_check"]


def test_one_parquet_file_and_a_markdown_summary(tmp_path):
    base = dict.fromkeys(BENCH_COLUMNS) | {"case": "batch 1, 256px", "backbone": "ddpm_unet", "precision": "bf16"}
    rows = [base | {"operation": "train_step", "mode": mode, "images_per_s": speed, "batch": 1}
            for mode, speed in (("per_sample_svd_b1", 2.0), ("official_recipe", 1.5), ("optimised", 9.0))]
    rows += [base | {"operation": "sampling", "mode": "optimised", "steps": steps, "images_per_s": 10.0 / steps,
                     "mfu": 0.1} for steps in range(1, 11)]  # fmt: skip
    bench = tmp_path / "bench.parquet"
    pd.DataFrame(rows, columns=list(BENCH_COLUMNS)).to_parquet(bench)
    for label, offset in (("fp32", 0.0), ("bf16", 0.01)):
        steps = range(1, 301)
        pd.DataFrame({"step": steps, "loss": [1 / s + offset for s in steps], "seconds": steps}).to_csv(
            tmp_path / f"{label}.csv", index=False
        )
    out = tmp_path / "check.parquet"
    argv = ["--out", str(out), "--summary", str(tmp_path / "check.md"), "--bench", str(bench),
            "--losses", f"fp32={tmp_path / 'fp32.csv'}", f"bf16={tmp_path / 'bf16.csv'}"]  # fmt: skip
    assert main(argv) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == len(rows) + 600
    assert set(frame.loc[frame["operation"] == LOSS_OPERATION, "mode"]) == {"fp32", "bf16"}
    summary = (tmp_path / "check.md").read_text()
    assert summary == markdown_summary(combine([bench], {"fp32": tmp_path / "fp32.csv", "bf16": tmp_path / "bf16.csv"}))
    for text in ("official_recipe", "per_sample_svd_b1", "Sampling MFU", "| 300 |", "Mean loss of the last 50"):
        assert text in summary
    pd.DataFrame({"step": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="losses.csv"):
        combine([bench], {"x": tmp_path / "bad.csv"})
