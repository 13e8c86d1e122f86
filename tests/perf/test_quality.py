"""lrdm quality: the options' losses and samples next to the reference settings (schema and exact properties)."""

import math

import pandas as pd
import pytest

from lrdm.cli import main
from lrdm.perf.quality import REFERENCE, SUMMARY_COLUMNS, late_loss


def test_quality_check_compares_options_with_the_reference(tmp_path):
    out = tmp_path / "quality.parquet"
    assert main(["quality", "--steps", "3", "--device", "cpu", "--out", str(out)]) == 0
    summary = pd.read_parquet(out).set_index("variant")
    losses = pd.read_parquet(tmp_path / "quality_losses.parquet")
    assert list(pd.read_parquet(out).columns) == list(SUMMARY_COLUMNS)
    assert list(summary.index) == [REFERENCE, "gram", "data_workers"]  # no bf16 or compile rows on CPU by default
    assert sorted(losses.loc[losses["variant"] == REFERENCE, "seed"].unique()) == [0, 1]
    assert len(losses) == 4 * 3  # reference twice, two options once, 3 steps each
    # batches are a function of (seed, step): prefetching workers change nothing
    assert summary.loc["data_workers", "max_abs_loss_diff"] == 0
    assert summary.loc[REFERENCE, "late_loss_diff"] == 0
    # the Gram projection equals the SVD one to float rounding: three steps later the losses still agree
    assert summary.loc["gram", "max_abs_loss_diff"] < 1e-4
    assert summary.loc["gram", "seed_noise"] > 0
    assert math.isclose(summary.loc["gram", "late_loss"], late_loss(losses.query("variant == 'gram'")["loss"]))


def test_quality_check_rejects_too_few_steps():
    from lrdm.perf.quality import quality_check

    with pytest.raises(ValueError, match="steps"):
        quality_check(steps=1)
