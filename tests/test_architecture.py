"""The package's structure: one home per vocabulary, no private names across modules (the layers are checked
against docs/package.md by tests/test_docs.py), a torch-free DAG build, the registry as validated data, and one
set of environment pins."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lrdm
from lrdm import vocab
from lrdm.data import registry
from lrdm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lrdm"
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_no_private_names_cross_modules():
    bad = [
        f"{module} imports {alias.name} from {node.module}"
        for module, tree in _modules().items()
        for node in _imports(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lrdm")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not bad, bad


def test_no_relative_imports():
    bad = [m for m, tree in _modules().items() for node in _imports(tree) if getattr(node, "level", 0)]
    assert not bad, bad


DAG_SIDE = [
    "lrdm.targets",
    "lrdm.workflow",
    "lrdm.workflow.jobs",
    "lrdm.workflow.checks",
    "lrdm.workflow.official_weights",
    "lrdm.schema",
    "lrdm.paths",
    "lrdm.config",
    "lrdm.vocab",
    "lrdm.data.registry",
    "lrdm",
]
"""Modules the Snakefile imports while it builds the DAG: they must not import torch."""


@pytest.mark.parametrize("module", DAG_SIDE)
def test_dag_side_imports_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_top_level_api_is_the_modules_own_objects():
    import importlib

    for name, module in lrdm.PUBLIC_API.items():
        assert getattr(lrdm, name) is getattr(importlib.import_module(module), name)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        lrdm.nonexistent  # noqa: B018


# --------------------------------------------------------------------------------------------------
# vocabularies: the schema's copies equal lrdm.vocab
# --------------------------------------------------------------------------------------------------


def test_schema_vocabularies_equal_lrdm_vocab():
    dataset = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]
    assert tuple(dataset["task"]["enum"]) == vocab.TASKS
    assert tuple(dataset["protocol"]["enum"]) == vocab.PROTOCOLS
    assert tuple(dataset["source"]["enum"]) == vocab.DATASET_SOURCES
    assert SCHEMA["definitions"]["rank_spec"]["pattern"] == f"^({vocab.RANK_SPEC_PATTERN})$"


@pytest.mark.parametrize(
    "text",
    [
        "full",
        "fixed-r1",
        "fixed-r16",
        "lin_increase",
        "lin_decrease",
        "poly_increase-p3",
        "poly_decrease-p12",
        "fixed",
        "fixed-r0",
        "fixed-r016",
        "poly_decrease",
        "poly_decrease-p0",
        "full-p3",
        "lin_increase-r4",
        "constant",
        "fixed-r16-p3",
        "Full",
        "",
    ],
)
def test_rank_spec_parser_and_pattern_agree(text):
    matches = re.fullmatch(vocab.RANK_SPEC_PATTERN, text) is not None
    try:
        parsed = vocab.RankSpec.parse(text)
    except ValueError:
        parsed = None
    assert (parsed is not None) == matches
    if parsed is not None:
        assert parsed.name == text


def test_snakefile_takes_its_wildcards_from_lrdm_vocab():
    text = (ROOT / "Snakefile").read_text()
    assert "rank_spec=V.RANK_SPEC_PATTERN" in text
    assert 'process="|".join(V.PROCESSES)' in text


# --------------------------------------------------------------------------------------------------
# the registry as data
# --------------------------------------------------------------------------------------------------


def test_registry_entries_use_known_names():
    for entry in registry.REGISTRY.values():
        assert entry.task in vocab.TASKS and entry.protocol in vocab.PROTOCOLS


def test_registry_file_errors_name_the_entry_and_key(tmp_path):
    text = (PACKAGE / "data" / registry.REGISTRY_FILE).read_text()
    bad = tmp_path / "registry.yaml"
    bad.write_text(text.replace("beta2_sum: 0.01\n  parser: gopro", "beta2_sum: -1\n  parser: gopro"))
    with pytest.raises(ConfigError, match=r"registry\.yaml: gopro/beta2_sum: -1") as info:
        registry.load_registry(bad)
    assert info.value.key == "gopro/beta2_sum"
    bad.write_text(text.replace("parser: istd", "parser: ISTD"))
    with pytest.raises(ConfigError, match=r"dataset 'istd': unknown parser 'ISTD'") as info:
        registry.load_registry(bad)
    assert info.value.key == "istd.parser"
    bad.write_text(text.replace("{filename: train.zip,", "{filename: raindrop/train.zip,"))
    with pytest.raises(ConfigError, match=r"dataset 'raindrop': Source\.filename must be a plain file name") as info:
        registry.load_registry(bad)
    assert info.value.key == "raindrop"
    bad.write_text(text.replace("  task: shadow\n", "  task: shadow\n  colour: red\n"))
    with pytest.raises(ConfigError, match=r"istd: Additional properties are not allowed \('colour'"):
        registry.load_registry(bad)


# --------------------------------------------------------------------------------------------------
# one set of environment pins
# --------------------------------------------------------------------------------------------------


def _pip_lines(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [line for line in pip if not line.startswith("-e ")]


def test_environment_files_agree():
    root_env = yaml.safe_load((ROOT / "environment.yml").read_text())
    rule_env = yaml.safe_load((ROOT / "workflow/envs/lrdm.yaml").read_text())
    assert root_env["channels"] == rule_env["channels"]
    conda_packages = [[d for d in env["dependencies"] if not isinstance(d, dict)] for env in (root_env, rule_env)]
    assert conda_packages[0] == conda_packages[1]
    assert _pip_lines(ROOT / "environment.yml") == _pip_lines(ROOT / "workflow/envs/lrdm.yaml")


def test_torch_pins_agree_everywhere():
    pins = set(_pip_lines(ROOT / "environment.yml"))
    command = "pip install " + " ".join(sorted(p for p in pins if p.startswith("torch")))
    assert command in (ROOT / ".ci/run").read_text().replace("python -m pip install --quiet", "pip install")
    assert command in (ROOT / "README.md").read_text()
