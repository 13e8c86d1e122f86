"""config/paper.yaml end to end through Snakemake (`main_table`), as a researcher's first subset run: fake archives
laid out like the registry's Raindrop and Rain1400 (tiny images of odd sizes, far fewer pairs than the registry
expects, accepted with `expected_pairs: any`), placed in resources/downloads, and an overlay that keeps the paper's
network (`rddm_unetres`, two networks), protocol and sampling but makes the network tiny and trains 2 steps."""

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from lrdm.results.reported import README_SOURCE, REPORTED_SOURCE, reported_frame
from lrdm.results.scores import THIS_RUN, dataset_label
from lrdm.results.tables import INPUT_ROW, MAIN_REPORTED_TABLES
from lrdm.workflow import RESTORATION_GRID_IMAGES, restoration_grid_images

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
DATASETS = ["raindrop", "rain1400"]
SPECS = ["full", "poly_decrease-p3"]
RAIN1400_TEST_LIMIT = 1
PAPER_SCORING = "lrdm_y@lrdm256"
OVERLAY = {
    "targets": {"main_table": {"datasets": DATASETS, "specs": SPECS}},
    "sampling": {"steps": 1},  # each network call of the paper's test transform is a 256 x 256 image
    "official_weights": {"raindrop": None, "rain1400": None},  # no authors' checkpoints here: their rows dropped
    "datasets": {
        "raindrop": {"expected_pairs": "any"},
        "rain1400": {"expected_pairs": "any", "max_test_images": RAIN1400_TEST_LIMIT},
    },
    # the official architecture, tiny: five levels so that its softmax attention (the coarsest level) stays
    # small at the LRDM test transform's 256 x 256
    "train": {
        "dim": 8,
        "dim_mults": [1, 1, 1, 1, 1],
        "steps": 2,
        "resize": 32,
        "crop": 32,
        "ema_start": 0,
        "checkpoint_every": 1,
        "log_every": 1,
    },  # fmt: skip
    "train_threads": 1,
    "train_data_workers": 0,
    "eval_batch": 2,
}


def image(path, size, seed):
    """A random RGB image of ``size`` (width, height) in the format of ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def zip_folder(folder, archive):
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())


def fake_downloads(tmp_path):
    """resources/downloads as a researcher places the manual archives (registry file names and layouts)."""
    downloads, trees = tmp_path / "resources" / "downloads", tmp_path / "trees"
    for split, pairs, ext in (("train", 3, "png"), ("test_a", 1, "png"), ("test_b", 1, "jpg")):
        for i in range(pairs):  # Raindrop: {split}/data/N_rain <-> {split}/gt/N_clean
            image(trees / split / split / "data" / f"{i}_rain.{ext}", (37, 29), i)
            image(trees / split / split / "gt" / f"{i}_clean.{ext}", (37, 29), 100 + i)
        zip_folder(trees / split, downloads / f"{split}.zip")
    root = trees / "rain1400" / "rainy_image_dataset"
    for split, clean in (("training", (1, 2)), ("testing", (901,))):  # 3 test pairs, 1 scored
        for cid in clean:  # Rain1400: {split}/rainy_image/{id}_{k} <-> {split}/ground_truth/{id}, 3 versions here
            image(root / split / "ground_truth" / f"{cid}.jpg", (41, 23), cid)
            for k in range(1, 4):
                image(root / split / "rainy_image" / f"{cid}_{k}.jpg", (41, 23), cid * 10 + k)
    zip_folder(trees / "rain1400", downloads / "Rain1400.zip")


@pytest.mark.slow
def test_paper_config_main_table_end_to_end_on_fake_archives(tmp_path):
    fake_downloads(tmp_path)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "--cores", "2", "main_table"]
        + ["--configfile", str(REPO / "config" / "paper.yaml"), str(overlay)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    results = tmp_path / "results" / "paper"  # the first config file names the folders (lrdm.paths)
    table = pd.read_csv(results / "tables" / "main_table.csv")
    scores = pd.read_parquet(results / "scores")
    # the paper's reported rows of these datasets, each with its protocol
    reported = pd.concat([reported_frame(name) for name in MAIN_REPORTED_TABLES])
    reported = reported[reported["dataset"].isin(DATASETS)]
    quoted = table[table["source"].isin([REPORTED_SOURCE, README_SOURCE])]  # the papers' and the LRDM README's
    assert set(quoted["method"]) == set(reported["method"])
    assert set(zip(quoted["method"], quoted["protocol"])) == set(zip(reported["method"], reported["protocol"]))
    # our rows: one per spec, scored under the paper's protocol, and the degraded input under it
    ours = table[table["source"] == THIS_RUN].set_index("method")
    assert len(ours) == len(SPECS) + 1 and set(ours["protocol"]) == {PAPER_SCORING}
    assert "RDDM, official weights (evaluated here)" not in ours.index
    for dataset in DATASETS:
        column = f"{dataset_label(dataset)} PSNR"
        inputs = scores[scores["dataset"] == dataset].drop_duplicates("image_id")["input_psnr"]
        assert ours.loc[INPUT_ROW, column] == pytest.approx(inputs.mean(), abs=0.01)  # the table rounds
        assert ours[column].notna().all()
    # the smoke limit on the test images, recorded in the scores
    assert set(scores["protocol"]) == {PAPER_SCORING}
    limited = scores[scores["dataset"] == "rain1400"]
    assert limited.groupby("rank_spec")["image_id"].nunique().tolist() == [RAIN1400_TEST_LIMIT] * len(SPECS)
    assert (limited["max_test_images"] == RAIN1400_TEST_LIMIT).all()
    assert scores.loc[scores["dataset"] == "raindrop", "max_test_images"].isna().all()
    for dataset in DATASETS:
        assert (results / "figures" / "restoration" / f"{dataset}.png").stat().st_size > 0


def test_a_smoke_limit_on_the_test_images_also_limits_the_restoration_grid():
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config["datasets"]["rain1400"]["max_test_images"] = RAIN1400_TEST_LIMIT
    assert restoration_grid_images(config, "rain1400") == RAIN1400_TEST_LIMIT
    assert restoration_grid_images(config, "raindrop") == RESTORATION_GRID_IMAGES
