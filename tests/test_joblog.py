"""A workflow job's output: its log follows the work (training progress), and a failure reaches the console as
the project's one-line message, through Snakemake's own workflow profile (profiles/default, found without a flag)."""

import subprocess
import sys
import textwrap
from pathlib import Path

from lrdm.config import save_config
from lrdm.errors import DataError
from lrdm.joblog import CONSOLE_PREFIX, error_line

REPO = Path(__file__).resolve().parents[1]


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_error_line_is_the_message_and_the_log():
    assert error_line(DataError("a.png:\n  unreadable"), "logs/x.log") == (
        f"{CONSOLE_PREFIX}: a.png: unreadable (traceback in logs/x.log)"
    )
    assert error_line(KeyError("k"), "l.log") == f"{CONSOLE_PREFIX}: KeyError: 'k' (traceback in l.log)"


def test_a_failing_script_writes_one_line_to_the_console_and_the_traceback_to_its_log(tmp_path):
    proc = run_script(
        """
        from lrdm.errors import DataError
        from lrdm.joblog import log_to_file
        log_to_file(["job.log"])
        print("started")
        raise DataError("in/3.png cannot be decoded")
        """,
        tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"{CONSOLE_PREFIX}: in/3.png cannot be decoded (traceback in job.log)\n"
    log = (tmp_path / "job.log").read_text()
    assert log.startswith("started\nTraceback") and "lrdm.errors.DataError: in/3.png cannot be decoded" in log


def test_a_training_log_shows_progress_every_log_every_steps(tmp_path, tiny_config):
    save_config(tiny_config.replace(steps=4, log_every=2), tmp_path / "run.yaml")
    proc = run_script(
        """
        from lrdm.config import load_config
        from lrdm.joblog import log_to_file
        from lrdm.training.trainer import train
        log_to_file(["train.log"])
        train(load_config("run.yaml"), "run", progress=False)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in (tmp_path / "train.log").read_text().splitlines() if " steps/s " in line]
    assert [line.split("step ")[1].split(" ")[0] for line in lines] == ["2/4", "4/4"]
    assert all(" loss " in line and " ETA " in line for line in lines), lines


def test_a_failing_prepare_dataset_shows_its_instructions_on_the_console(tmp_path):
    overlay = tmp_path / "real.yaml"
    overlay.write_text("datasets:\n  raindrop: {source: registry, task: rain, protocol: lrdm_y, eval_resize: lrdm}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
        + ["resources/smoke/data/raindrop/index.parquet"]
        + ["--configfile", str(REPO / "config/smoke.yaml"), str(overlay)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "workflow specific profile" in console and "profiles/default" in console, console[-3000:]
    line = next((line for line in console.splitlines() if line.startswith(CONSOLE_PREFIX)), None)
    assert line is not None, console[-3000:]
    assert line.startswith(f"{CONSOLE_PREFIX}: raindrop: train.zip must be downloaded by hand"), line
    assert f"place it at {tmp_path.resolve() / 'resources' / 'downloads' / 'train.zip'}" in line, line
    assert line.endswith("(traceback in logs/smoke/data/raindrop.log)"), line
