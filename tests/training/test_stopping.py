"""A signal stops training cleanly (lrdm.training.stopping): the step in flight finishes, a checkpoint is written
there, one line says where, ``lrdm train`` exits with STOPPED_EXIT, and the next run resumes bit-exactly; a writer
killed mid-write leaves a temporary file that the next start removes."""

import csv
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest
import torch

import lrdm.training.trainer as trainer
from lrdm.config import save_config
from lrdm.errors import STOPPED_EXIT, TrainingStopped
from lrdm.files import TEMPORARY_NAME
from lrdm.training.rundir import list_checkpoints
from lrdm.training.stopping import STOP_SIGNALS, StopRequest, agreed_stop, stop_on_signals
from lrdm.training.trainer import train

STOP_LINE = re.compile(
    r"^stopped by (?P<signal>SIG\w+) at step (?P<step>\d+) of (?P<run>\S+); checkpoint (?P<checkpoint>\S+); "
    r"the next run resumes there$"
)
EXIT_SECONDS = 30  # the bound between SIGTERM and the exit (measured here: well under 5 s)


def logged_steps(run):
    with open(run / "losses.csv", newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def stop_lines(text):
    return [match for line in text.splitlines() if (match := STOP_LINE.match(line))]


def test_a_signal_only_sets_the_flag_and_a_second_sigint_interrupts():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with stop_on_signals() as request:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGUSR1)
        assert request.signum == signal.SIGTERM, "the first signal is kept"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # after a stop signal: a hard stop
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before, "the previous handlers are back"


def test_processes_agree_on_the_largest_signal_any_of_them_got():
    def accelerator(flags):
        return types.SimpleNamespace(num_processes=len(flags), device="cpu", gather=lambda t: torch.tensor(flags))

    assert agreed_stop(StopRequest(None), accelerator([0])) is None
    assert agreed_stop(StopRequest(None), accelerator([0, 0])) is None
    assert agreed_stop(StopRequest(None), accelerator([0, int(signal.SIGTERM)])) == signal.SIGTERM  # rank 1 only
    both = accelerator([int(signal.SIGUSR1), int(signal.SIGTERM)])
    assert agreed_stop(StopRequest(signal.SIGUSR1), both) == signal.SIGTERM


def test_a_signal_mid_run_checkpoints_that_step_and_the_resume_is_bit_exact(
    tiny_config, tmp_path, monkeypatch, capsys, assert_same_weights
):
    full = train(tiny_config, tmp_path / "full", progress=False)
    original = trainer._log_loss

    def log_then_signal(run, done, *args):
        original(run, done, *args)
        if done == 3:  # not a multiple of checkpoint_every (2): the stop writes its own checkpoint
            signal.raise_signal(signal.SIGUSR1)

    monkeypatch.setattr(trainer, "_log_loss", log_then_signal)
    run = tmp_path / "stopped"
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(TrainingStopped, match="stopped by SIGUSR1 at step 3"):
        train(tiny_config, run, progress=False)
    assert signal.getsignal(signal.SIGUSR1) == before
    [line] = stop_lines(capsys.readouterr().err)
    assert line["step"] == "3" and line["run"] == str(run)
    assert line["checkpoint"] == str(run / "checkpoints" / "step-00000003.pt")
    assert [s for s, _ in list_checkpoints(run)] == [2, 3] and not (run / "model.pt").exists()
    assert logged_steps(run) == [1, 2, 3]

    monkeypatch.setattr(trainer, "_log_loss", original)
    assert_same_weights(full, train(tiny_config, run, progress=False))
    assert logged_steps(run) == list(range(1, tiny_config.steps + 1))


@pytest.mark.slow
def test_sigterm_stops_lrdm_train_within_seconds_and_the_rerun_resumes_there(
    tiny_config, tmp_path, assert_same_weights
):
    """SIGTERM from outside, as SLURM sends it: exit STOPPED_EXIT within seconds, one line, a checkpoint at the step
    reached; the rerun (to a few steps more) equals an uninterrupted run of as many steps."""
    config_path = tmp_path / "run.yaml"
    save_config(tiny_config.replace(steps=100_000), config_path)  # far more than the test lets it train
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic as the reference
    command = [sys.executable, "-m", "lrdm.cli", "train", "--config", str(config_path), "--run-dir", str(run)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        deadline = time.monotonic() + 300
        while not (run / "losses.csv").exists() or len((run / "losses.csv").read_text().splitlines()) < 4:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - sent
    print(f"SIGTERM to exit: {seconds:.2f} s")
    assert proc.returncode == STOPPED_EXIT, err[-2000:]
    assert seconds < EXIT_SECONDS
    [line] = stop_lines(err)
    assert line["signal"] == "SIGTERM" and line["run"] == str(run)
    step = int(line["step"])
    assert step >= 3 and out == "", "nothing on stdout: no model.pt was written"
    assert list_checkpoints(run)[-1] == (step, run / "checkpoints" / f"step-{step:08d}.pt")
    assert str(list_checkpoints(run)[-1][1]) == line["checkpoint"] and logged_steps(run)[-1] == step

    rerun = subprocess.run([*command, "--set", f"steps={step + 2}"], capture_output=True, text=True, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert logged_steps(run) == list(range(1, step + 3))
    reference = train(tiny_config.replace(steps=step + 2), tmp_path / "reference", progress=False)
    assert_same_weights(reference, run / "model.pt")


KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import lrdm.files as files
    import lrdm.training.trainer as tr
    from lrdm.config import load_config
    original = files.write_payload
    def write_half_then_die(handle, payload):
        if "step-00000004" in handle.name:
            original(handle, payload[: len(payload) // 2])
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        original(handle, payload)
    files.write_payload = write_half_then_die
    tr.train(load_config(sys.argv[1]), sys.argv[2], progress=False)
    """
)


@pytest.mark.slow
def test_the_next_start_removes_the_temporaries_of_a_writer_killed_mid_write(
    tiny_config, tmp_path, caplog, assert_same_weights
):
    config_path = tmp_path / "run.yaml"
    save_config(tiny_config, config_path)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(config_path), str(run)], capture_output=True, env=env
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    [left] = [p for p in (run / "checkpoints").iterdir() if TEMPORARY_NAME.match(p.name)]
    assert left.name.startswith(".step-00000004.pt.")
    mine = run / ".model.pt.12345.0123456789abcdef0123456789abcdef.tmp"  # another killed writer's, in the run folder
    mine.write_bytes(b"x" * 1000)
    kept = run / "checkpoints" / ".notes.tmp"  # not an atomic writer's name: not ours to remove
    kept.write_bytes(b"keep")
    expected = left.stat().st_size + 1000

    with caplog.at_level(logging.WARNING, logger="lrdm.training.rundir"):
        model = train(tiny_config, run, progress=False)
    assert not left.exists() and not mine.exists() and kept.exists()
    [record] = [r.getMessage() for r in caplog.records if "stale temporary" in r.getMessage()]
    assert f"removed 2 stale temporary file(s) of killed writers, {expected} bytes freed" in record, record
    reference = train(tiny_config, tmp_path / "reference", progress=False)
    assert_same_weights(reference, model)
