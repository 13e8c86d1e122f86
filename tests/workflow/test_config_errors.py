"""Config errors stay visible: a bad workflow config makes ``snakemake -n`` end with one short line that names the
key and what is wrong (not Snakemake's dump of the whole schema and config); numbers written ``1e-4`` pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHORT = 30
"""Lines of output a config error may take at most (Snakemake's dump took 575)."""


def dry_run(workdir: Path, extra: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` on config/smoke.yaml with ``extra`` (raw YAML text, as a user writes it) merged over it."""
    path = workdir / "extra.yaml"
    path.write_text(extra)
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n",
               "--configfile", str(REPO / "config" / "smoke.yaml"), str(path)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("extra", "last_line"),
    [
        ("trian: {lr: 1e-4}\n", "config key trian: unknown key (did you mean train?)"),
        ("train: {lr: fast}\n", "config key train.lr is invalid: config key 'lr' must be a number, got 'fast'"),
        ("sampling: {eta: lots}\n", "config key sampling.eta: 'lots' is not of type 'number'"),
        ("sampling: {sampler: euler}\n", "config key sampling.sampler: unknown sampler 'euler'; valid: default"),
        ("sampling: {sampler: resshift}\n", "config key sampling.sampler: sampler 'resshift' samples process"),
        ("seeds: [0, two]\n", "config key seeds.1: 'two' is not of type 'integer'"),
    ],
)
def test_schema_violation_ends_with_one_line_naming_the_key(tmp_path, extra, last_line):
    dry = dry_run(tmp_path, extra)
    lines = (dry.stdout + dry.stderr).strip().splitlines()
    assert dry.returncode != 0 and lines[-1].startswith(last_line), lines[-5:]
    assert len(lines) < SHORT, f"{len(lines)} lines"


def test_numbers_written_as_text_pass_the_workflow(tmp_path):
    dry = dry_run(tmp_path, "train: {lr: 1e-4, adam_betas: [9e-1, 9.9e-1]}\nsampling: {eta: 0e0}\n")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    assert "train" in dry.stdout
