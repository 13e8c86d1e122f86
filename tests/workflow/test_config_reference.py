"""config/README.md, the config reference: generated from the schema's descriptions and TrainConfig's comments,
equal to a fresh generation, and naming every key the shipped configs use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lrdm.errors import ConfigError
from lrdm.workflow import config_reference as ref

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / ref.SCHEMA).read_text())
SOURCE = (ROOT / ref.CONFIG_SOURCE).read_text()
CONFIGS = ("config/config.yaml", "config/paper.yaml", "config/smoke.yaml", "config/lrdm_official.yaml")


def test_committed_reference_equals_a_fresh_generation():
    done = subprocess.run(
        [sys.executable, "-m", "lrdm.workflow.config_reference", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (ROOT / ref.REFERENCE).read_text() == ref.generate(ROOT)


def test_check_fails_when_the_reference_differs(tmp_path, capsys):
    for path in (ref.SCHEMA, ref.CONFIG_SOURCE):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((ROOT / path).read_text())
    assert ref.main(["--root", str(tmp_path)]) == 0
    assert ref.main(["--check", "--root", str(tmp_path)]) == 0
    schema = tmp_path / ref.SCHEMA
    schema.write_text(schema.read_text().replace("DDIM eta (0 deterministic", "DDIM's eta (0 deterministic"))
    assert ref.main(["--check", "--root", str(tmp_path)]) == 1
    assert "config/README.md differs from workflow/schemas/config.schema.yaml" in capsys.readouterr().err
    schema.unlink()
    assert ref.main(["--root", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m lrdm.workflow.config_reference: error:"), lines


def _used_keys(value, documented, prefix=""):
    """Dotted paths of the keys of a config, a dataset's or official_weights entry's name as ``<name>``; the keys
    of a mapping whose keys the reference leaves free (``train``, ``labels``) are not descended into."""
    for key, child in value.items():
        path = f"{prefix}{ref.ENTRY if prefix in ('datasets.', 'official_weights.') else key}"
        yield path
        if isinstance(child, dict) and any(name.startswith(f"{path}.") for name in documented):
            yield from _used_keys(child, documented, f"{path}.")


@pytest.mark.parametrize("config", CONFIGS)
def test_every_key_the_shipped_configs_use_is_documented(config):
    text = yaml.safe_load((ROOT / config).read_text())
    workflow_keys = {row.key for row in ref.schema_keys(SCHEMA)}
    run_keys = {row.key for row in ref.run_config_keys(SOURCE)}
    assert set(_used_keys(text, workflow_keys)) <= workflow_keys
    sections = [text.get("train", {}), *(d.get("train", {}) for d in text.get("datasets", {}).values() if d)]
    sections += list(text.get("processes", {}).values())
    sections += [entry.get("set", {}) for entry in (text.get("official_weights") or {}).values() if entry]
    assert {key for section in sections for key in section} <= run_keys


def test_every_schema_property_and_trainconfig_field_has_a_row():
    rows = ref.schema_keys(SCHEMA)
    assert [row.key for row in rows][:3] == ["results", "resources", "downloads"]
    assert {"datasets.<name>.folders.pattern.input", "targets.claims.many_steps", "eval_tile"} <= {r.key for r in rows}
    import dataclasses

    from lrdm.config import TrainConfig

    assert [row.key for row in ref.run_config_keys(SOURCE)] == [f.name for f in dataclasses.fields(TrainConfig)]


def test_a_key_without_a_description_is_named_in_one_line():
    schema = {"type": "object", "properties": {"a": {"type": "object", "description": "x",
                                                      "properties": {"b": {"type": "integer"}}}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"config key a\.b has no description"):
        ref.schema_keys(schema)
    source = SOURCE.replace("    lr: float = 8e-5  # Adam learning rate\n", "    lr: float = 8e-5\n")
    assert source != SOURCE
    with pytest.raises(ConfigError, match="TrainConfig field lr has no comment"):
        ref.run_config_keys(source)


def test_value_kinds_read_refs_enums_and_alternatives():
    definitions = SCHEMA["definitions"]
    assert ref.value_kind({"$ref": "#/definitions/posint"}, definitions) == "integer ≥ 1"
    assert ref.value_kind({"type": "array", "items": {"$ref": "#/definitions/rank_spec"}}, definitions) == (
        "list of rank spec"
    )
    assert ref.value_kind({"oneOf": [{"type": "null"}, {"const": "auto"}]}, definitions) == "null or `auto`"
    assert ref.value_kind({"enum": ["a", "b"]}, definitions) == "`a`, `b`"
