"""Your own paired folders as a dataset: pairing by stem or pattern, errors listing every offending file at DAG
build, the Parquet index with sha256, and a `source: folders` dataset through the whole DAG."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lrdm.data.folders import pair_folders
from lrdm.data.index import read_index, verify_index
from lrdm.data.prepare import prepare_folders
from lrdm.errors import ConfigError, DataError
from lrdm.files import write_png
from lrdm.workflow import check_config

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PATTERN = {"input": "{id}_rain", "target": "{id}_clean"}
SIZES = {"train": [(24, 32), (24, 32), (20, 28)], "test": [(24, 32), (17, 21)]}
"""(height, width) of each split's pairs."""


def make_folders(root: Path, pattern: dict[str, str] | None = PATTERN) -> dict:
    """Paired folders under ``root`` (clean images and a noisier copy); returns the ``folders`` config."""
    rng = np.random.default_rng(0)
    spec: dict = {}
    for split, sizes in SIZES.items():
        spec[split] = {"input": str(root / split / "rainy"), "target": str(root / split / "clean")}
        for number, (height, width) in enumerate(sizes):
            clean = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            rainy = np.clip(clean.astype(int) + rng.integers(0, 60, clean.shape), 0, 255).astype(np.uint8)
            stems = {role: (pattern or {"input": "{id}", "target": "{id}"})[role].replace("{id}", str(number))
                     for role in ("input", "target")}
            write_png(root / split / "rainy" / f"{stems['input']}.png", rainy)
            write_png(root / split / "clean" / f"{stems['target']}.png", clean)
    if pattern:
        spec["pattern"] = pattern
    return spec


def test_pairs_by_pattern_and_by_stem(tmp_path):
    pairs = pair_folders(make_folders(tmp_path / "p"), "mine")
    assert list(pairs["image_id"]) == ["train-0", "train-1", "train-2", "test-0", "test-1"]
    assert all(Path(i).name == f"{n[-1]}_rain.png" for i, n in zip(pairs["input"], pairs["image_id"]))
    assert (pairs.loc[pairs["image_id"] == "test-1", ["height", "width"]].values == [[17, 21]]).all()
    plain = pair_folders(make_folders(tmp_path / "s", pattern=None), "mine")
    assert len(plain) == len(pairs)


def test_every_problem_is_listed_by_name(tmp_path):
    spec = make_folders(tmp_path)
    rng = np.random.default_rng(1)
    write_png(tmp_path / "train" / "rainy" / "7_rain.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_png(tmp_path / "train" / "clean" / "9_clean.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_png(tmp_path / "test" / "rainy" / "0_rain.jpg", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_png(tmp_path / "test" / "clean" / "1_clean.png", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    with pytest.raises(DataError) as err:
        pair_folders(spec, "mine")
    message = str(err.value)
    assert message.startswith("datasets.mine.folders: 4 problem(s)")
    for name in ("7_rain.png has no target", "9_clean.png has no input", "0_rain.jpg and 0_rain.png", "size mismatch"):
        assert name in message, message
    with pytest.raises(ConfigError, match=r"datasets.mine.folders.test.target") as info:
        pair_folders({**spec, "test": {"input": spec["test"]["input"], "target": str(tmp_path / "nowhere")}}, "mine")
    assert info.value.key == "datasets.mine.folders.test.target"
    with pytest.raises(ConfigError, match=r"pattern.input") as info:
        pair_folders({**spec, "pattern": {"input": "rain", "target": "{id}"}}, "mine")
    assert info.value.key == "datasets.mine.folders.pattern.input"
    with pytest.raises(ConfigError, match=r"datasets.mine.folders.train is missing") as info:
        pair_folders({"test": spec["test"]}, "mine")
    assert info.value.key == "datasets.mine.folders.train"


def test_index_has_sha256_and_the_splits(tmp_path):
    spec = {"source": "folders", "task": "rain", "protocol": "derain_y", "folders": make_folders(tmp_path / "d")}
    path = prepare_folders("mine", spec, tmp_path / "resources" / "data" / "mine")
    index = read_index(path)
    assert index["split"].value_counts().to_dict() == {"train": 3, "test": 2}
    assert index["input_sha256"].str.len().eq(64).all() and verify_index(index) == 2 * len(index)
    assert set(index["task"]) == {"rain"}


def folders_config(root: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["datasets"] = {
        "mine": {"source": "folders", "task": "rain", "protocol": "derain_y", "folders": make_folders(root)}
    }
    config["max_rank"] = None
    config["train_data_workers"] = 0
    config["targets"] = {"main_table": {"datasets": ["mine"], "specs": ["full"]}}
    return config


def test_config_check_names_the_files(tmp_path):
    config = folders_config(tmp_path / "mine")
    check_config(config)
    (tmp_path / "mine" / "test" / "clean" / "1_clean.png").unlink()
    with pytest.raises(DataError, match="1_rain.png has no target"):
        check_config(copy.deepcopy(config))


@pytest.mark.slow
def test_folders_dataset_through_the_dag(tmp_path):
    config = folders_config(tmp_path / "mine")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    base = [*SNAKEMAKE, "-d", str(tmp_path), "--cores", "2", "main_table", "--configfile", str(path)]
    dry = subprocess.run([*base, "-n"], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0 and "prepare_dataset" in dry.stdout, (dry.stdout + dry.stderr)[-3000:]
    run = subprocess.run(base, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    index = read_index(tmp_path / "resources" / "config" / "data" / "mine" / "index.parquet")  # config.yaml's own
    assert len(index) == sum(map(len, SIZES.values()))
    scores = pd.read_parquet(tmp_path / "results" / "config" / "scores" / "mine")
    assert sorted(scores["image_id"]) == ["test-0", "test-1"] and scores["psnr"].notna().all()
    assert "mine" in (tmp_path / "results" / "config" / "tables" / "main_table.md").read_text()
    # an unmatched file fails the DAG build, naming it
    (tmp_path / "mine" / "train" / "clean" / "0_clean.png").unlink()
    broken = subprocess.run([*base, "-n"], capture_output=True, text=True, timeout=300)
    assert broken.returncode != 0 and "0_rain.png has no target" in broken.stdout + broken.stderr


def break_dangling_link(folder: Path) -> Path:
    link = folder / "5_rain.png"
    link.symlink_to(folder / "gone.png")
    return link


def break_folder_with_image_suffix(folder: Path) -> Path:
    (folder / "5_rain.png").mkdir()
    return folder / "5_rain.png"


def break_undecodable_file(folder: Path) -> Path:
    """A pair whose input is not a decodable image (its target exists, so only its content is wrong)."""
    (folder / "0_rain.png").write_bytes(b"not a png at all")
    return folder / "0_rain.png"


def break_file_without_image_suffix(folder: Path) -> Path:
    (folder / "notes.txt").write_text("shot on a rainy day\n")
    return folder / "notes.txt"


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (break_dangling_link, "is a dangling symbolic link"),
        (break_folder_with_image_suffix, "is a folder, not an image file"),
        (break_undecodable_file, "cannot read image"),
        (break_file_without_image_suffix, "is not an image file"),
    ],
)
def test_every_entry_that_is_not_an_image_file_is_named(tmp_path, damage, says):
    config = folders_config(tmp_path / "mine")
    bad = damage(tmp_path / "mine" / "test" / "rainy")
    with pytest.raises(DataError) as err:
        check_config(config)
    message = str(err.value)
    assert f"{bad} {says}" in message or (says in message and str(bad) in message), message


def test_hidden_entries_are_skipped(tmp_path):
    config = folders_config(tmp_path / "mine")
    rainy = tmp_path / "mine" / "test" / "rainy"
    (rainy / ".DS_Store").write_bytes(b"\0\1")
    (rainy / ".ipynb_checkpoints").mkdir()
    check_config(config)
    assert len(pair_folders(config["datasets"]["mine"]["folders"], "mine")) == sum(map(len, SIZES.values()))


def test_unreadable_image_is_named(tmp_path):
    import os

    config = folders_config(tmp_path / "mine")
    locked = tmp_path / "mine" / "train" / "clean" / "1_clean.png"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        with pytest.raises(DataError, match=re.escape(f"cannot read image {locked}")):
            check_config(config)
    finally:
        locked.chmod(0o644)


def test_dangling_link_fails_the_dag_check_naming_it(tmp_path):
    config = folders_config(tmp_path / "mine")
    link = break_dangling_link(tmp_path / "mine" / "train" / "rainy")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    dry = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "main_table", "--configfile", str(path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = dry.stderr.strip().splitlines()
    assert dry.returncode != 0 and f"{link} is a dangling symbolic link" in lines[-1], dry.stderr[-3000:]


def test_pattern_without_id_fails_the_dag_check_in_one_line(tmp_path):
    config = folders_config(tmp_path / "mine")
    config["datasets"]["mine"]["folders"]["pattern"]["input"] = "rain"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    dry = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "main_table", "--configfile", str(path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = (dry.stdout + dry.stderr).strip().splitlines()
    assert dry.returncode != 0 and len(lines) < 30, lines[-5:]
    assert lines[-1].startswith("config key datasets.mine.folders.pattern.input: 'rain' does not match"), lines[-1]
    assert "{id}" in lines[-1]
