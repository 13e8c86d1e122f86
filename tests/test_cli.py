"""The `lrdm` command line: help without torch, defaults and choices shown, --version, --output, and every error
one line `lrdm <command>: error: …` naming the file, key or value (Ctrl-C included)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lrdm
from lrdm import cli
from lrdm.cli import ERROR_EXIT, INTERRUPTED_EXIT, build_parser, main


def one_error_line(text: str, command: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith(f"lrdm {command}: error: "), text
    return lines[0]


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from lrdm.cli import main\n"
        "for argv in (['--help'], ['restore', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert f"lrdm {lrdm.__version__}" in result.stdout


def test_help_shows_defaults_choices_and_the_index(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one help text per line
    for argv, expected in (
        (["restore", "--help"], ("(default: 4G)", "(default: auto)", "--out OUT, --output OUT", "(default: 5)")),
        (["make-data", "--help"], ("{rain,blur,shadow}", "(default: 64)")),
        (["evaluate", "--help"], ("index.parquet", "one row per image pair")),
        (["import-checkpoint", "--help"], ("--force",)),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert all(text in out for text in expected), (argv, out)
        assert "(default: None)" not in out


def test_output_is_an_alias_of_out():
    for command in (
        "restore --model m.pt --input x",
        "make-data --task rain",
        "evaluate --model m --index i --steps 1",
    ):
        args = build_parser().parse_args([*command.split(), "--output", "somewhere"])
        assert args.out == "somewhere"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["restore", "--model", "m.pt", "--input", "x", "--device", "gpu"], "'gpu'"),
        (["restore", "--model", "m.pt", "--input", "x", "--max-memory", "lots"], "--max-memory"),
        (["restore", "--model", "m.pt", "--input", "x", "--tile", "0"], "--tile"),
        (["restore", "--model", "m.pt", "--input", "x", "--sampler", "euler"], "--sampler"),
    ],
)
def test_usage_errors_are_one_line(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == ERROR_EXIT
    assert named in one_error_line(capsys.readouterr().err, argv[0])


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["restore", "--model", str(tmp_path / "m.pt"), "--input", str(tmp_path), "--device", "cuda"]) == 2
    line = one_error_line(capsys.readouterr().err, "restore")
    assert "--device cuda" in line and "no CUDA GPU" in line


def test_yaml_syntax_error_names_file_line_and_column(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("lr: 0.001\nsteps: [1, 2\ndim: 8\n")
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == ERROR_EXIT
    line = one_error_line(capsys.readouterr().err, "train")
    assert str(config) in line and "line 3, column" in line and "YAML" in line
    assert not (tmp_path / "run").exists()


def test_config_value_errors_name_the_key(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--run-dir", run, "--set", "backbone=resnet"]) == ERROR_EXIT
    assert "resnet" in one_error_line(capsys.readouterr().err, "train")
    assert main(["train", "--run-dir", run, "--set", "steps=[1"]) == ERROR_EXIT
    assert "--set steps=[1" in one_error_line(capsys.readouterr().err, "train")
    assert main(["train", "--run-dir", run, "--set", "steps"]) == ERROR_EXIT
    assert "KEY=VALUE" in one_error_line(capsys.readouterr().err, "train")


def test_ctrl_c_is_one_line_with_status_130(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_make_data", interrupted)
    assert main(["make-data", "--task", "rain", "--out", str(tmp_path)]) == INTERRUPTED_EXIT
    assert "interrupted" in one_error_line(capsys.readouterr().err, "make-data")
