"""Numbers in configs: ``1e-3`` (text to PyYAML) is a float wherever a float is expected, in ``lrdm train --config``,
``--set`` and the workflow's config; any other type error names the key and the expected type."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from lrdm.cli import main
from lrdm.config import TrainConfig, load_config
from lrdm.errors import TOP_LEVEL_KEY, ConfigError
from lrdm.schema import load_schema, numbers_from_text

REPO = Path(__file__).resolve().parents[1]
TINY = {"crop": 16, "dim": 8, "dim_mults": [1, 2], "batch_size": 2, "T": 10, "steps": 1, "checkpoint_every": 1}


def test_lr_written_1e_3_trains_from_a_config_file(tmp_path, rain_index):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, "index": str(rain_index)}) + "lr: 1e-3\nadam_betas: [9e-1, 0.99]\n")
    assert yaml.safe_load(path.read_text())["lr"] == "1e-3", "PyYAML reads it as text"
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.lr == pytest.approx(1e-3) and saved.adam_betas == (0.9, 0.99)


def test_lr_set_as_1e_4_on_the_command_line(tmp_path, rain_index):
    sets = [f"{key}={value}" for key, value in {**TINY, "index": rain_index, "lr": "1e-4"}.items()]
    assert main(["train", "--run-dir", str(tmp_path / "run"), *(a for s in sets for a in ("--set", s))]) == 0
    assert load_config(tmp_path / "run" / "config.yaml").lr == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("lr=fast", "config key 'lr' must be a number, got 'fast'"),
        ("steps=many", "config key 'steps' must be an integer, got 'many'"),
        ("seed=one", "config key 'seed' must be an integer, got 'one'"),
        ("flip=maybe", "config key 'flip' must be true or false, got 'maybe'"),
        ("dim_mults=[1, x]", "config key 'dim_mults' must be a list of integers"),
        ("lrr=1e-3", "unknown config key(s) ['lrr'] (did you mean lr?)"),
    ],
)
def test_a_value_of_the_wrong_type_names_key_and_type(tmp_path, capsys, pair, says):
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--set", pair])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lrdm train: error:") and says in err and len(err.splitlines()) == 1, err


def test_from_dict_does_not_change_its_input():
    values = {"lr": "1e-3", "dim_mults": [1, 2]}
    config = TrainConfig.from_dict(values)
    assert values == {"lr": "1e-3", "dim_mults": [1, 2]} and config.lr == 1e-3 and config.dim_mults == (1, 2)
    with pytest.raises(ConfigError, match="config key 'lr' must be a number"):
        TrainConfig(lr="1e-3")  # direct construction judges types, converting nothing


def test_workflow_numbers_become_floats_where_numbers_are_expected():
    schema = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    text = """
    train: {lr: 1e-4}
    sampling: {eta: 1e-1}
    seeds: ['1']
    results: '1e3'
    datasets: {mine: {train: {lr: 2e-4, index: '5e1'}}}
    processes: {resshift: {kappa: 2e0}}
    """
    config = yaml.safe_load(textwrap.dedent(text))
    out = numbers_from_text(config, schema)
    assert out["train"]["lr"] == 1e-4 and out["sampling"]["eta"] == 0.1 and out["processes"]["resshift"]["kappa"] == 2
    assert out["datasets"]["mine"]["train"] == {"lr": 2e-4, "index": "5e1"}, "only where a number is expected"
    assert out["seeds"] == ["1"] and out["results"] == "1e3"
    assert config["train"]["lr"] == "1e-4", "the input is not changed"


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "smoke.yaml"])
def test_shipped_configs_are_unchanged_so_no_run_reruns(name):
    schema = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((REPO / "config" / name).read_text())
    out = numbers_from_text(config, schema)
    assert out == config and yaml.safe_dump(out) == yaml.safe_dump(config), "ints stay ints, lists stay lists"


def test_network_widths_and_a_file_that_is_no_mapping_are_config_errors_naming_the_key(tmp_path):
    from lrdm.core.process import build_network, build_process

    with pytest.raises(ConfigError, match="dim_mults") as info:
        TrainConfig(dim_mults=())
    assert info.value.key == "dim_mults"
    config = TrainConfig(backbone="rddm_unetres", dim=12, dim_mults=(1, 2), crop=16)
    with pytest.raises(ConfigError, match=r"config key 'dim' \(12\).*'rddm_unetres'.*multiple of 8") as info:
        build_network(config, build_process(config))
    assert info.value.key == "dim"
    listed = tmp_path / "run.yaml"
    listed.write_text("- lr\n")
    with pytest.raises(ConfigError, match="expected a mapping") as info:
        load_config(listed)
    assert info.value.key == TOP_LEVEL_KEY
    listed.write_text("lr: -1\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: config key 'lr'") as info:
        load_config(listed)
    assert info.value.key == "lr"
