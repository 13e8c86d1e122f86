"""The claims target: paired per-seed differences, their 95 % t-interval and the verdicts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from lrdm.results.claims import (
    CONFIRMED,
    CONTRADICTED,
    WITHIN_NOISE,
    claims_from_spec,
    claims_table,
    t_interval,
    verdict,
)
from lrdm.targets import build_target_table
from lrdm.workflow import all_targets, target_evaluations, target_score_paths

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SPEC = CONFIG["targets"]["claims"]
STEPS = CONFIG["sampling"]["steps"]
IMAGES = 4


def test_t_interval_is_scipys_one_sample_interval():
    differences = [0.3, 1.1, 0.5, -0.2]
    mean, std, low, high = t_interval(differences)
    expected = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert mean == pytest.approx(np.mean(differences)) and std == pytest.approx(np.std(differences, ddof=1))
    assert (low, high) == pytest.approx((expected.low, expected.high))
    # three seeds: t_{0.975, 2} = 4.3027
    assert t_interval([1.0, 2.0, 3.0])[2:] == pytest.approx((2 - 4.302653 / 3**0.5, 2 + 4.302653 / 3**0.5))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        t_interval([1.0])


@pytest.mark.parametrize(
    "low, high, expected", [(0.1, 2.0, CONFIRMED), (-2.0, -0.1, CONTRADICTED), (-1.0, 1.0, WITHIN_NOISE)]
)
def test_verdict_reads_the_interval(low, high, expected):
    assert verdict(low, high) == expected


def fake_scores(evaluations, psnr_of):
    """Per-image scores of ``evaluations``; ``psnr_of(evaluation, image)`` gives each PSNR."""
    rows = [
        {
            "dataset": e.dataset, "run": e.path, "process": e.process, "objective": e.objective,
            "rank_spec": e.rank_spec, "seed": e.seed, "steps": e.steps, "image_id": f"img{i}",
            "psnr": psnr_of(e, i), "ssim": 0.8, "input_psnr": 25.0, "input_ssim": 0.7,
        }
        for e in evaluations
        for i in range(IMAGES)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_claims_target_trains_what_the_claims_table_reads():
    evaluations = target_evaluations(CONFIG, "claims")
    assert {e.seed for e in evaluations} == set(SPEC["seeds"]) and len(SPEC["seeds"]) >= 3
    assert "claims" not in all_targets(CONFIG)  # too costly for `all`: a separate target
    assert len(target_score_paths(CONFIG, "claims")) == len(evaluations)
    scores = fake_scores(evaluations, lambda e, i: 26.0 + i)
    frame, caption = build_target_table("claims", scores, SPEC, STEPS)
    assert len(frame) == len(claims_from_spec(SPEC, STEPS)) * len(SPEC["datasets"])
    assert set(frame["n_seeds"]) == {len(SPEC["seeds"])} and "95 %" in caption
    # every side exists and is identical: each difference is 0 with no spread, which is no evidence either way
    assert (frame["difference_psnr_mean"] == 0).all() and set(frame["verdict"]) == {WITHIN_NOISE}
    missing = scores[~((scores["rank_spec"] == SPEC["medium_rank"]) & (scores["seed"] == SPEC["seeds"][0]))]
    common = claims_table(missing, SPEC, STEPS)
    assert common.loc[common["claim"].str.contains("medium fixed rank"), "n_seeds"].item() == len(SPEC["seeds"]) - 1


def test_the_verdicts_follow_a_planted_effect():
    """A +1 dB effect of the medium rank with a small seed-to-seed spread is confirmed; the scheduler rows see
    an effect that flips sign between seeds (within noise); SM-N beats SM-Res by 2 dB (contradicted)."""
    rng = np.random.default_rng(0)
    seed_noise = {(s, spec): rng.normal(0, 0.1) for s in SPEC["seeds"] for spec in ("a", "b")}

    def psnr(e, image):
        value = 26.0 + 0.01 * image
        if e.rank_spec == SPEC["medium_rank"]:
            value += 1.0 + seed_noise[(e.seed, "a")]
        if e.rank_spec in SPEC["schedulers"]:
            value += (1.0 if e.seed % 2 else -1.0) + seed_noise[(e.seed, "b")]
        if e.objective == "pred_noise":
            value += 2.0
        return value

    frame = claims_table(fake_scores(target_evaluations(CONFIG, "claims"), psnr), SPEC, STEPS)
    by_claim = frame.set_index("claim")["verdict"]
    assert by_claim[f"a medium fixed rank ({SPEC['medium_rank']}) beats full rank"] == CONFIRMED
    for other in SPEC["schedulers"]:
        assert by_claim[f"{SPEC['low_rank']} beats {other}"] == WITHIN_NOISE
    assert by_claim["SM-Res beats SM-N"] == CONTRADICTED
    medium = frame.set_index("claim").loc[f"a medium fixed rank ({SPEC['medium_rank']}) beats full rank"]
    assert medium["difference_psnr_mean"] == pytest.approx(1.0, abs=0.3)
    assert medium["ci95_low_psnr"] > 0 and medium["better_psnr_mean"] > medium["worse_psnr_mean"]
