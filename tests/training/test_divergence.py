"""Divergence is judged from the first step: an exploding loss stops `lrdm train` at any step (the second, a later
one, the first after a resume) with one line naming the run directory, the step and the loss, and no model.pt."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
import torch

from lrdm.cli import main
from lrdm.core.process import RDDMProcess
from lrdm.training.trainer import EARLY_DIVERGENCE_FACTOR, divergence

JUMP = 1e7  # a loss multiplied by this has jumped by more than 10^6 in one step


def train_cli(run_dir: Path, index: Path, *sets: str) -> int:
    """`lrdm train` on a tiny network (a few CPU steps per second) with extra ``--set`` pairs."""
    pairs = [f"index={index}", "crop=16", "dim=8", "dim_mults=[1, 2]", "batch_size=2", "T=10", "log_every=1",
             "checkpoint_every=100", *sets]  # fmt: skip
    return main(["train", "--run-dir", str(run_dir), *(arg for pair in pairs for arg in ("--set", pair))])


def explode_from_call(monkeypatch, first: int) -> None:
    """Multiplies the training loss by :data:`JUMP` from its ``first`` call on (one call per step)."""
    original = RDDMProcess.loss
    calls = {"n": 0}

    def exploding(self, *args):
        calls["n"] += 1
        value = original(self, *args)
        return value * JUMP if calls["n"] >= first else value

    monkeypatch.setattr(RDDMProcess, "loss", exploding)


def last_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]  # above it: the progress bar


def test_lr_10_stops_training_at_step_2_without_model(tmp_path, rain_index, capsys):
    run = tmp_path / "lr10"
    code = train_cli(run, rain_index, "lr=10", "steps=40")
    last = last_error_line(capsys)
    assert code == 2 and last.startswith("lrdm train: error: loss exploded to ")
    assert "at step 2 of " + str(run) in last
    assert not (run / "model.pt").exists()


def test_jump_at_a_later_step_stops_there(tmp_path, rain_index, capsys, monkeypatch):
    explode_from_call(monkeypatch, first=3)
    run = tmp_path / "later"
    code = train_cli(run, rain_index, "steps=6")
    last = last_error_line(capsys)
    assert code == 2 and "loss exploded to" in last and f"at step 3 of {run}" in last
    assert not (run / "model.pt").exists()


def test_jump_at_first_step_after_resume_is_judged_against_logged_losses(tmp_path, rain_index, capsys, monkeypatch):
    run = tmp_path / "resumed"
    assert train_cli(run, rain_index, "steps=2", "checkpoint_every=2") == 0
    finished = torch.load(run / "model.pt", weights_only=True)["step"]
    explode_from_call(monkeypatch, first=1)
    code = train_cli(run, rain_index, "steps=4", "checkpoint_every=2")
    last = last_error_line(capsys)
    assert code == 2 and "loss exploded to" in last and f"at step 3 of {run}" in last
    assert torch.load(run / "model.pt", weights_only=True)["step"] == finished, "the 2-step model stays as it was"


def test_early_steps_tolerate_jumps_below_the_early_factor():
    factor = 1000.0
    assert divergence(EARLY_DIVERGENCE_FACTOR / 10, deque([1.0, 1.2]), factor) is None
    assert divergence(EARLY_DIVERGENCE_FACTOR * 2, deque([1.0]), factor) is not None
    assert divergence(factor * 2, deque([1.0] * 4), factor) is not None, "a full history uses divergence_factor"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_is_divergence_with_no_history(value):
    assert divergence(value, deque(), 1000.0) == f"loss became {value}"
