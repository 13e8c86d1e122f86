"""Packaging and the docs, verbatim: every third-party import is a declared dependency, every module imports,
every `snakemake` command of the code blocks of the README and of docs/*.md builds its DAG as written, and
`snakemake --lint` is clean."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

from lrdm.files import write_png

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lrdm"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = "\n".join(path.read_text() for path in DOCUMENTS)
"""The README and the docs/ pages: their commands run from the repository root as written."""
WORKFLOW_FILES = ("Snakefile", "config", "profiles", "workflow")
"""What a README command needs in its working directory (the package itself comes from the environment)."""
DRY_RUN_TIMEOUT_S = 300
SHELL_FENCES = ("bash", "sh", "console", "")
"""Info strings of the README's fenced blocks that hold shell commands."""
REPORT_NEEDS_OUTPUTS = "marked for report but does not exist"
"""`snakemake --report` on a tree where nothing is built yet fails with this, after building the DAG."""


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level name of every non-stdlib, non-lrdm import under lrdm/ -> the modules importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "lrdm" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_imports():
    for name in _module_names():
        importlib.import_module(name)


def test_every_third_party_import_is_a_declared_dependency():
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for top, users in sorted(_third_party_imports().items()):
        candidates = {d.lower().replace("_", "-") for d in distributions.get(top, [])}
        assert candidates, f"import {top} ({', '.join(sorted(users))}) comes from no installed distribution"
        if not candidates & declared:
            missing.append(f"{top} ({'/'.join(sorted(candidates))}) imported by {', '.join(sorted(users))}")
    assert not missing, f"not in [project] dependencies of pyproject.toml: {missing}"


def test_cv2_is_declared_headless():
    """A plain install must be able to import lrdm.evaluation.metrics (cv2) on a machine without a display."""
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert "opencv-python-headless" in declared


def readme_snakemake_commands() -> list[str]:
    """Every `snakemake ...` command of the README's fenced code blocks, as written (comments and the
    commands before `&&` dropped)."""
    commands, fence = [], None
    for line in README.replace("\\\n", " ").splitlines():  # continued lines joined
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence not in SHELL_FENCES:
            continue
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "snakemake":
                commands.append(shlex.join(words))
    return commands


def test_readme_has_the_documented_commands():
    commands = readme_snakemake_commands()
    assert "snakemake --cores all" in commands
    assert any("--workflow-profile profiles/slurm" in c for c in commands)
    # --configfile takes several values: a target after it would be read as a config file
    for command in commands:
        words = shlex.split(command)
        if "--configfile" in words:
            after = words[words.index("--configfile") + 1 :]
            files = after[: next((i for i, word in enumerate(after) if word.startswith("-")), len(after))]
            assert all(w.endswith((".yaml", ".yml")) for w in files), f"a target follows --configfile in {command!r}"


def readme_user_configs() -> dict[str, str]:
    """The README's YAML blocks that it saves as a config file of the user's (``(here `NAME.yaml`...``)."""
    found = {}
    for name, block in re.findall(r"\(here `([\w.-]+\.yaml)`[^\n]*\n(?:[^\n]*\n)*?\n```yaml\n(.*?)```", README, re.S):
        found[name] = block
    # a block that names its file in its first line: ```yaml\n# first.yaml\n...
    for name, block in re.findall(r"```yaml\n# ([\w.-]+\.yaml)\n(.*?)```", README, re.S):
        found[name] = block
    return found


def make_user_folders(root: Path, config: dict) -> None:
    """Two pairs per split in every ``source: folders`` dataset of ``config``, named by its pattern."""
    rng = np.random.default_rng(0)
    for dataset in config.get("datasets", {}).values():
        folders = dataset.get("folders")
        if not folders:
            continue
        pattern = folders.get("pattern", {"input": "{id}", "target": "{id}"})
        for split in ("train", "test"):
            for number in range(2):
                for role in ("input", "target"):
                    stem = pattern[role].replace("{id}", str(number))
                    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                    write_png(root / folders[split][role] / f"{stem}.png", image)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A fresh copy of the workflow (nothing built), where the README's commands run as written; the config
    files the README has the user write, and their image folders, are made as the README shows them."""
    root = tmp_path_factory.mktemp("readme")
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    for name, text in readme_user_configs().items():
        (root / name).write_text(text)
        make_user_folders(root, yaml.safe_load(text))
    return root


def test_readme_user_config_is_found():
    configs = readme_user_configs()
    assert "my_rain.yaml" in configs and "source: folders" in configs["my_rain.yaml"]


def _snakemake(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *words],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DRY_RUN_TIMEOUT_S,
    )


@pytest.mark.parametrize("command", readme_snakemake_commands())
def test_readme_snakemake_command_dry_runs_as_written(command, workdir):
    words = shlex.split(command)
    if "profiles/slurm" in command and importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("needs snakemake-executor-plugin-slurm (pip install -e '.[slurm]'), not installed here")
    result = _snakemake([*words[1:], "-n"], workdir)
    output = result.stdout + result.stderr
    if "--report" in words:
        # a report collects built outputs; on a fresh tree the DAG builds and then the first missing output is named
        assert result.returncode == 0 or REPORT_NEEDS_OUTPUTS in output, output[-3000:]
        assert "FileNotFoundError" not in output and "Error in" not in output, output[-3000:]
        return
    assert result.returncode == 0, f"{command} -n failed:\n{output[-3000:]}"
    assert "This was a dry-run" in output or "Nothing to be done" in output, output[-3000:]


def test_snakemake_lint_is_clean(workdir):
    result = _snakemake(["--lint"], workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in output, output[-3000:]
