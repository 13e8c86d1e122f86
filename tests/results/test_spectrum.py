"""Tests of the residual-spectrum analysis (LRDM Figs. 2 and 3)."""

import math

import numpy as np
import pandas as pd
import pytest

from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
from lrdm.files import write_png
from lrdm.results.spectrum import (
    CURVE_COLUMNS,
    SUMMARY_COLUMNS,
    analyse_residuals,
    mean_curves,
    plot_residual_grid,
    plot_spectrum_curves,
    suggest_max_rank,
)

MODEL_SCALE = 127.5  # uint8 -> [-1, 1] divides by this, so residuals are (in - target) / 127.5
ATOL = 1e-5


def _write_pair(root, image_id, inp, target):
    write_png(root / "train" / "input" / f"{image_id}.png", inp)
    write_png(root / "train" / "target" / f"{image_id}.png", target)
    return {
        "image_id": image_id,
        "split": "train",
        "input": f"train/input/{image_id}.png",
        "target": f"train/target/{image_id}.png",
    }


@pytest.fixture(scope="module")
def known_rank_index(tmp_path_factory):
    """Three hand-made pairs of different sizes whose residual rank per channel is known:
    ``rank1`` (12×20, rank 1), ``rank2`` (16×16, two equal singular values), ``zero`` (16×16)."""
    root = tmp_path_factory.mktemp("known_rank")
    rng = np.random.default_rng(0)
    residuals = {}
    rows = []

    target = rng.integers(0, 120, size=(12, 20, 3), dtype=np.uint8)
    res = np.stack([np.outer(rng.integers(1, 6, 12), rng.integers(1, 6, 20)) for _ in range(3)], axis=-1).astype(
        np.uint8
    )  # entries <= 25: no overflow of target + res
    rows.append(_write_pair(root, "rank1", target + res, target))
    residuals["rank1"] = res

    target = rng.integers(0, 120, size=(16, 16, 3), dtype=np.uint8)
    res = np.zeros_like(target)
    res[:8, :8] = 10  # two disjoint equal blocks: singular values 80, 80, 0, ...
    res[8:, 8:] = 10
    rows.append(_write_pair(root, "rank2", target + res, target))
    residuals["rank2"] = res

    target = rng.integers(0, 120, size=(16, 16, 3), dtype=np.uint8)
    rows.append(_write_pair(root, "zero", target, target))
    residuals["zero"] = np.zeros_like(target)

    pd.DataFrame(rows).to_parquet(root / "index.parquet", index=False)
    return root / "index.parquet", residuals


@pytest.fixture(scope="module")
def known_rank_analysis(known_rank_index):
    index, _ = known_rank_index
    return analyse_residuals(index)


@pytest.fixture(scope="module")
def rain_32(tmp_path_factory):
    root = tmp_path_factory.mktemp("rain32")
    make_synthetic_dataset(root, "rain", SynthesisOptions(size=32, patches_per_image=2, test_patches_per_image=1))
    index = root / "index.parquet"
    return index, analyse_residuals(index)


def _numpy_spectra(residual_uint8):
    """Per-channel singular values of the model-space residual, (C, min(H, W)) float64."""
    res = residual_uint8.astype(np.float64) / MODEL_SCALE
    return np.stack([np.linalg.svd(res[..., c], compute_uv=False) for c in range(res.shape[-1])])


def test_known_rank_energy_ranks(known_rank_analysis):
    _, summary = known_rank_analysis
    by_id = summary.set_index(["image_id", "channel"])
    assert (by_id.loc["rank1", "k99"] == 1).all()
    assert (by_id.loc["rank1", "k90"] == 1).all()
    assert (by_id.loc["rank2", "k90"] == 2).all()
    assert (by_id.loc["rank2", "k99"] == 2).all()
    assert (by_id.loc["zero", ["k90", "k99"]] == 0).all().all()
    np.testing.assert_allclose(by_id.loc["rank1", "top10_magnitude_ratio"], 1.0, atol=ATOL)
    assert (by_id.loc["rank1", "max_rank"] == 12).all()
    assert (by_id.loc["rank1", "height"] == 12).all() and (by_id.loc["rank1", "width"] == 20).all()
    assert (by_id.loc["rank2", "max_rank"] == 16).all()


def test_sigma_matches_numpy_svd(known_rank_index, known_rank_analysis):
    _, residuals = known_rank_index
    curves, summary = known_rank_analysis
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    for image_id, res in residuals.items():
        expected = _numpy_spectra(res)
        part = curves[curves["image_id"] == image_id].sort_values(["channel", "i"])
        got = part["sigma"].to_numpy().reshape(expected.shape)
        np.testing.assert_allclose(got, expected, atol=ATOL)
        energy = summary[summary["image_id"] == image_id].sort_values("channel")["energy"].to_numpy()
        np.testing.assert_allclose(energy, (expected**2).sum(axis=-1), rtol=ATOL, atol=ATOL)


def test_dataset_label_defaults_to_folder_and_can_be_set(known_rank_index):
    index, _ = known_rank_index
    curves, summary = analyse_residuals(index, limit=1)
    assert set(curves["dataset"]) == {index.parent.name}
    assert set(summary["image_id"]) == {"rank1"}
    curves, summary = analyse_residuals(index, limit=1, dataset="hand")
    assert set(curves["dataset"]) == set(summary["dataset"]) == {"hand"}
    with pytest.raises(ValueError):
        analyse_residuals(index, limit=0)


def _check_curve_invariants(curves):
    for (_, _), part in curves.groupby(["image_id", "channel"]):
        part = part.sort_values("i")
        assert part["i"].tolist() == list(range(1, len(part) + 1))
        assert np.all(np.diff(part["sigma"]) <= 0)
        cumulative = part["cumulative_magnitude_ratio"].to_numpy()
        assert np.all(np.diff(cumulative) >= -1e-12)
        assert math.isclose(cumulative[-1], 1.0, abs_tol=ATOL)
        derivative = part["derivative"].to_numpy()
        assert math.isnan(derivative[0])
        assert np.all(derivative[1:] <= 0)
        if part["sigma"].iloc[0] > 0:
            assert math.isclose(part["normalized_magnitude"].iloc[0], 1.0)
            np.testing.assert_allclose(derivative[1:], np.diff(part["normalized_magnitude"].to_numpy()), atol=1e-12)


def test_curve_invariants_known_rank(known_rank_analysis):
    curves, _ = known_rank_analysis
    _check_curve_invariants(curves)
    zero = curves[curves["image_id"] == "zero"]
    assert (zero["normalized_magnitude"] == 0).all() and (zero["cumulative_magnitude_ratio"] == 1).all()


def test_synthetic_rain_analysis(rain_32):
    index, (curves, summary) = rain_32
    n_train = 12  # 6 training photographs x 2 patches
    assert summary["image_id"].nunique() == n_train
    assert len(summary) == n_train * 3
    assert len(curves) == n_train * 3 * 32
    assert set(curves["dataset"]) == {"rain"}
    _check_curve_invariants(curves)
    # at 32 px a few patches receive no streak at all: their residual is exactly zero
    zero = summary["energy"] == 0
    assert (summary.loc[zero, ["k90", "k99"]] == 0).all().all()
    live = summary[~zero]
    assert len(live) > 0
    assert ((1 <= live["k90"]) & (live["k90"] <= live["k99"]) & (live["k99"] <= 32)).all()
    assert summary["top10_magnitude_ratio"].between(0, 1 + 1e-12).all()  # cumsum rounding
    at_ten = curves[curves["i"] == 10].set_index(["image_id", "channel"])["cumulative_magnitude_ratio"]
    np.testing.assert_allclose(
        summary.set_index(["image_id", "channel"])["top10_magnitude_ratio"].loc[at_ten.index], at_ten
    )
    _, test_summary = analyse_residuals(index, split="test")
    assert test_summary["image_id"].nunique() == 2  # 2 test photographs x 1 patch


def test_mean_curves_equal_sizes_match_hand_mean(rain_32):
    _, (curves, _) = rain_32
    mean = mean_curves(curves)
    assert mean["i"].tolist() == list(range(1, 33))
    live = [g.sort_values("i") for _, g in curves.groupby(["image_id", "channel"]) if g["sigma"].max() > 0]
    assert (mean["n"] == len(live)).all()
    stacked = {
        metric: np.stack([g[metric].to_numpy() for g in live])
        for metric in ("sigma", "normalized_magnitude", "cumulative_magnitude_ratio")
    }
    for metric, values in stacked.items():
        np.testing.assert_allclose(mean[f"{metric}_mean"], values.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(mean[f"{metric}_std"], values.std(axis=0), atol=1e-12)
    assert math.isclose(mean["normalized_magnitude_mean"].iloc[0], 1.0)
    assert math.isclose(mean["cumulative_magnitude_ratio_mean"].iloc[-1], 1.0)
    assert math.isnan(mean["derivative_mean"].iloc[0])


def test_mean_curves_mixed_sizes_truncate_to_smallest_rank(known_rank_index, known_rank_analysis):
    _, residuals = known_rank_index
    curves, _ = known_rank_analysis
    mean = mean_curves(curves)
    smallest = 12  # the 12x20 pair
    assert mean["i"].tolist() == list(range(1, smallest + 1))
    assert (mean["n"] == 6).all()  # 2 non-zero images x 3 channels; the zero residual is left out
    normalized, cumulative = [], []
    for image_id, res in residuals.items():
        if image_id == "zero":
            continue
        for sv in _numpy_spectra(res):
            normalized.append(sv[:smallest] / sv[0])
            cumulative.append(np.cumsum(sv)[:smallest] / sv.sum())
    np.testing.assert_allclose(mean["normalized_magnitude_mean"], np.mean(normalized, axis=0), atol=ATOL)
    np.testing.assert_allclose(mean["normalized_magnitude_std"], np.std(normalized, axis=0), atol=ATOL)
    np.testing.assert_allclose(mean["cumulative_magnitude_ratio_mean"], np.mean(cumulative, axis=0), atol=ATOL)


def test_mean_curves_one_row_set_per_dataset(known_rank_analysis, rain_32):
    _, (rain_curves, _) = rain_32
    hand_curves, _ = known_rank_analysis
    mean = mean_curves(pd.concat([rain_curves, hand_curves.assign(dataset="hand")]))
    assert mean.groupby("dataset")["i"].max().to_dict() == {"hand": 12, "rain": 32}


def test_mean_curves_all_zero_dataset_gives_no_rows(known_rank_analysis):
    curves, _ = known_rank_analysis
    zero = curves[curves["image_id"] == "zero"]
    assert mean_curves(zero).empty
    assert "normalized_magnitude_mean" in mean_curves(zero).columns


def _crafted_summary(k99, energy=None):
    k99 = np.asarray(k99)
    return pd.DataFrame(
        {
            "image_id": [f"im{n}" for n in range(len(k99))],
            "channel": 0,
            "k90": np.maximum(k99 // 2, np.minimum(k99, 1)),
            "k99": k99,
            "energy": np.ones(len(k99)) if energy is None else energy,
        }
    )


def test_suggest_max_rank_quantiles():
    summary = _crafted_summary(np.arange(1, 11))
    assert suggest_max_rank(summary) == 10  # 90th percentile, 'higher': an observed value
    assert suggest_max_rank(summary, quantile=0.5) == 6
    assert suggest_max_rank(summary, quantile=0.0) == 1
    assert suggest_max_rank(summary, energy=0.9) == 5  # k90 = k99 // 2 -> 0..5, p90 -> 5
    # zero-residual rows (energy 0, k99 0) are ignored
    with_zeros = pd.concat([summary, _crafted_summary([0] * 30, energy=np.zeros(30))], ignore_index=True)
    assert suggest_max_rank(with_zeros) == 10
    assert suggest_max_rank(_crafted_summary([0, 0], energy=np.zeros(2))) == 1
    with pytest.raises(ValueError):
        suggest_max_rank(summary, energy=0.95)
    with pytest.raises(ValueError):
        suggest_max_rank(summary.iloc[:0])
    with pytest.raises(ValueError):
        suggest_max_rank(summary, quantile=1.5)


def test_suggest_max_rank_on_analysis(known_rank_analysis):
    _, summary = known_rank_analysis
    assert suggest_max_rank(summary) == 2


def test_plot_spectrum_curves_writes_png_and_pdf(rain_32, tmp_path):
    _, (curves, _) = rain_32
    paths = plot_spectrum_curves(curves, tmp_path / "fig3" / "spectrum")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0


def test_plot_residual_grid_writes_png_and_pdf(rain_32, tmp_path):
    index, (_, summary) = rain_32
    image_id = summary["image_id"].iloc[0]
    paths = plot_residual_grid(index, image_id, [1, 4, 64], tmp_path / "fig2")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    with pytest.raises(KeyError):
        plot_residual_grid(index, "no-such-image", [1], tmp_path / "missing")
    with pytest.raises(ValueError):
        plot_residual_grid(index, image_id, [], tmp_path / "empty")
    with pytest.raises(ValueError):
        plot_residual_grid(index, image_id, [0], tmp_path / "zero")
