"""Tables rebuilt from per-image scores: averaging, paper layouts, writers and the reported numbers."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from lrdm.results import reported, tables
from lrdm.results.render import write_table
from lrdm.results.reported import LRDM_README, README_SOURCE, REPORTED_SOURCE, REPORTED_TABLES, reported_frame
from lrdm.results.scores import read_scores, select_steps, summarize
from lrdm.results.tables import (
    INPUT_ROW,
    LRDM_OFFICIAL_LABEL,
    OFFICIAL_LABEL,
    feasibility_table,
    main_table,
    orders_table,
    rank_sweep_table,
    sampling_methods_table,
    schedulers_table,
    steps_table,
)
from lrdm.targets import TABLE_TARGETS, build_target_table
from lrdm.vocab import OFFICIAL_RUN, RankSpec

IMAGES = 3
RANK_SPECS = (
    "full",
    "fixed-r8",
    "fixed-r16",
    "lin_increase",
    "lin_decrease",
    "poly_increase-p3",
    "poly_decrease-p1",
    "poly_decrease-p3",
)
"""The rank specs of :func:`make_scores`, in the order the tables list them."""


def _spec_fields(rank_spec: str) -> dict:
    spec = RankSpec.parse(rank_spec)
    return {"scheduler": spec.kind, "order": spec.order, "rank": spec.rank}


def psnr_of(dataset: str, process: str, objective: str, rank_spec: str, steps: int, seed: int, image: int) -> float:
    """A deterministic, distinct PSNR per cell so that table values can be checked exactly."""
    base = 30.0 + (len(rank_spec) % 7) * 0.37 + steps * 0.11 + (2.0 if dataset == "raindrop" else 0.0)
    base += {"pred_res_noise": 0.0, "pred_res": -0.5, "pred_noise": -3.0}[objective]
    base += 0.0 if process == "rddm" else -5.0
    return base + seed * 0.4 + image * 0.1


def make_scores(
    datasets=("raindrop", "synthetic_rain"),
    specs=RANK_SPECS[::-1],  # fed in reverse: the tables sort them
    seeds=(0, 1),
    steps=(1, 5),
    extra=(
        ("rddm", "pred_res", "poly_decrease-p3"),
        ("rddm", "pred_noise", "poly_decrease-p3"),
        ("resshift", "pred_res_noise", "full"),
        ("resshift", "pred_res_noise", "fixed-r16"),
    ),
) -> pd.DataFrame:
    runs = [("rddm", "pred_res_noise", spec) for spec in specs] + list(extra)
    rows = []
    for dataset in datasets:
        for process, objective, spec in runs:
            for seed in seeds:
                run = f"{dataset}-{process}-{objective}-{spec}-s{seed}"
                for step in steps:
                    for image in range(IMAGES):
                        psnr = psnr_of(dataset, process, objective, spec, step, seed, image)
                        rows.append(
                            {
                                "dataset": dataset,
                                "run": run,
                                "process": process,
                                "objective": objective,
                                "rank_spec": spec,
                                **_spec_fields(spec),
                                "steps": step,
                                "eta": 0.0,
                                "seed": seed,
                                "image_id": f"img{image}",
                                "psnr": psnr,
                                "ssim": psnr / 40.0,
                                "input_psnr": 20.0 + image,
                                "input_ssim": 0.5 + 0.01 * image,
                                "protocol": "derain_y",
                                "seconds": 0.1,
                            }
                        )
    frame = pd.DataFrame(rows)
    return frame.astype({"order": "Int64", "rank": "Int64"})


def expected_mean(dataset, process, objective, spec, step, seeds=(0, 1)):
    per_seed = [np.mean([psnr_of(dataset, process, objective, spec, step, s, i) for i in range(IMAGES)]) for s in seeds]
    return float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(seeds) > 1 else math.nan


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return make_scores()


# --------------------------------------------------------------------------------------------------
# read_scores / summarize
# --------------------------------------------------------------------------------------------------


def test_read_scores_concatenates_and_names_file_with_missing_column(tmp_path, scores):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    scores.iloc[:10].to_parquet(first)
    scores.iloc[10:25].to_parquet(second)
    combined = read_scores([first, second])
    assert len(combined) == 25
    assert str(combined["order"].dtype) == "Int64"
    broken = tmp_path / "broken.parquet"
    scores.drop(columns=["ssim"]).iloc[:5].to_parquet(broken)
    with pytest.raises(ValueError, match=r"broken\.parquet.*ssim"):
        read_scores([first, broken])
    with pytest.raises(ValueError):
        read_scores([])


def test_summarize_means_over_images_then_seeds():
    rows = []
    # seed 0: two images, seed 1: one image -> per-seed means 31 and 34; over seeds 32.5 ± std(31, 34)
    for seed, image, psnr, ssim in ((0, "a", 30.0, 0.90), (0, "b", 32.0, 0.92), (1, "a", 34.0, 0.96)):
        rows.append(
            {
                "dataset": "d",
                "rank_spec": "full",
                "seed": seed,
                "image_id": image,
                "psnr": psnr,
                "ssim": ssim,
                "input_psnr": 20.0,
                "input_ssim": 0.5,
            }
        )
    rows.append(
        {
            "dataset": "d",
            "rank_spec": "fixed-r4",
            "seed": 0,
            "image_id": "a",
            "psnr": 28.0,
            "ssim": 0.8,
            "input_psnr": 20.0,
            "input_ssim": 0.5,
        }
    )
    summary = summarize(pd.DataFrame(rows), ["dataset", "rank_spec"]).set_index("rank_spec")
    full = summary.loc["full"]
    assert full["psnr_mean"] == pytest.approx(32.5)
    assert full["psnr_std"] == pytest.approx(np.std([31.0, 34.0], ddof=1))
    assert full["ssim_mean"] == pytest.approx((0.91 + 0.96) / 2)
    assert full["ssim_std"] == pytest.approx(np.std([0.91, 0.96], ddof=1))
    assert full["input_psnr_mean"] == pytest.approx(20.0)
    assert (full["n_seeds"], full["n_images"]) == (2, 2)
    single = summary.loc["fixed-r4"]
    assert single["psnr_mean"] == pytest.approx(28.0)
    assert math.isnan(single["psnr_std"])  # one seed: std undefined
    assert single["n_seeds"] == 1


def test_summarize_keeps_missing_keys_and_checks_columns(scores):
    summary = summarize(scores[scores["steps"] == 5], ["dataset", "scheduler", "order", "rank"])
    assert len(summary) == 2 * 8  # 8 distinct (scheduler, order, rank) per dataset, NA keys kept
    assert summary["order"].isna().sum() == 2 * 5
    with pytest.raises(ValueError, match="missing"):
        summarize(scores.drop(columns=["psnr"]), ["dataset"])


def test_select_steps_prefers_most_runs_then_larger(scores):
    uneven = pd.concat([scores, scores[scores["steps"] == 1].assign(steps=3).iloc[:IMAGES]])
    assert set(select_steps(uneven)["steps"]) == {5}  # 1 and 5 tie on runs -> larger
    assert set(select_steps(scores, steps=1)["steps"]) == {1}
    with pytest.raises(ValueError, match="available"):
        select_steps(scores, steps=7)


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def test_schedulers_table_layout_and_values(scores):
    table = schedulers_table(scores, steps=5)
    ours = table[table["source"] == "this run"]
    assert list(ours["scheduler"]) == [
        "lin_increase",
        "lin_decrease",
        "poly_increase",
        "poly_decrease",
        "poly_decrease",
    ]
    assert list(ours["order"].astype("object").where(ours["order"].notna(), None)) == [None, None, 3, 1, 3]
    for column in ("Raindrop PSNR", "Raindrop SSIM", "synthetic_rain PSNR", "synthetic_rain SSIM", "Raindrop PSNR std"):
        assert column in table.columns
    row = ours[(ours["scheduler"] == "poly_decrease") & (ours["order"] == 3)].iloc[0]
    mean, std = expected_mean("raindrop", "rddm", "pred_res_noise", "poly_decrease-p3", 5)
    assert row["Raindrop PSNR"] == pytest.approx(mean)
    assert row["Raindrop PSNR std"] == pytest.approx(std)
    assert row["n_seeds"] == 2
    reported = table[table["source"] == REPORTED_SOURCE]
    assert len(reported) == 4  # Tab. 3 rows for Raindrop (the synthetic set has none)
    pd_row = reported[reported["scheduler"] == "poly_decrease"].iloc[0]
    assert (pd_row["order"], pd_row["Raindrop PSNR"], pd_row["Raindrop SSIM"]) == (3, 33.03, 0.9669)
    assert math.isnan(pd_row["synthetic_rain PSNR"])
    assert "Sampling steps" in table.attrs["caption"]


def test_builders_cope_with_subsets_and_raise_when_nothing_fits(scores):
    synthetic = scores[scores["dataset"] == "synthetic_rain"]
    table = schedulers_table(synthetic)
    assert set(table["source"]) == {"this run"}
    assert not any(c.startswith("Raindrop") for c in table.columns)
    assert table.attrs["steps"] == {"synthetic_rain": [5]}
    only_full = scores[scores["rank_spec"] == "full"]
    for builder in (schedulers_table, orders_table):
        with pytest.raises(ValueError, match="no runs with"):
            builder(only_full)
    only_poly = scores[scores["scheduler"] == "poly_decrease"]
    with pytest.raises(ValueError, match="fixed-rank or full-rank"):
        rank_sweep_table(only_poly)
    with pytest.raises(ValueError, match="no rows for dataset"):
        main_table(scores, ["gopro"])
    with pytest.raises(ValueError):
        sampling_methods_table(scores.assign(objective="something_else"))
    with pytest.raises(ValueError):
        feasibility_table(scores.assign(process="other"))
    with pytest.raises(ValueError):
        steps_table(scores.iloc[:0])


def test_orders_table_rows(scores):
    table = orders_table(scores, steps=1, include_reported=False)
    assert list(zip(table["scheduler"], table["order"])) == [
        ("poly_decrease", 1),
        ("poly_decrease", 3),
        ("poly_increase", 3),
    ]
    with_reported = orders_table(scores, steps=1)
    reported = with_reported[with_reported["source"] == REPORTED_SOURCE]
    assert len(reported) == 10
    p1 = reported[(reported["scheduler"] == "poly_decrease") & (reported["order"] == 1)].iloc[0]
    assert p1["Raindrop PSNR"] == 32.57
    # our row precedes the reported row of the same scheduler and order
    keys = list(zip(with_reported["scheduler"], with_reported["order"], with_reported["source"]))
    assert keys.index(("poly_decrease", 1, "this run")) + 1 == keys.index(("poly_decrease", 1, REPORTED_SOURCE))


def test_rank_sweep_table_rows(scores):
    table = rank_sweep_table(scores, steps=5)
    assert list(table["rank"]) == [8, 16, "full", "input (degraded)"]
    full = table[table["rank"] == "full"].iloc[0]
    assert full["Raindrop PSNR"] == pytest.approx(expected_mean("raindrop", "rddm", "pred_res_noise", "full", 5)[0])
    input_row = table[table["rank"] == "input (degraded)"].iloc[0]
    assert input_row["Raindrop PSNR"] == pytest.approx(21.0)
    assert math.isnan(input_row["Raindrop PSNR std"])


def test_other_processes_and_objectives_split_rows_when_not_filtered(scores):
    table = rank_sweep_table(scores, steps=5, process=None)
    assert "process" in table.columns
    assert list(zip(table["rank"], table["process"].fillna(""))) == [
        (8, "rddm"),
        (16, "rddm"),
        (16, "resshift"),
        ("full", "rddm"),
        ("full", "resshift"),
        ("input (degraded)", ""),
    ]
    schedulers = schedulers_table(scores, steps=5, objective=None, include_reported=False)
    assert list(schedulers["objective"][schedulers["scheduler"] == "poly_decrease"]) == [
        "pred_res_noise",
        "pred_noise",
        "pred_res",
        "pred_res_noise",
    ]
    with pytest.raises(ValueError, match="objective 'pred_x0'"):
        orders_table(scores, objective="pred_x0")


def test_rank_sweep_table_default_run_selection(scores):
    table = rank_sweep_table(scores)
    assert "process" not in table.columns
    r16 = table[table["rank"] == 16].iloc[0]
    mean, _ = expected_mean("synthetic_rain", "rddm", "pred_res_noise", "fixed-r16", 5)
    assert r16["synthetic_rain PSNR"] == pytest.approx(mean)


def test_steps_table_layout(scores):
    rddm = scores[(scores["process"] == "rddm") & (scores["objective"] == "pred_res_noise")]
    table = steps_table(scores, metrics=("psnr", "ssim"))
    assert table.equals(steps_table(rddm, metrics=("psnr", "ssim")))
    assert {"PSNR (1 step)", "PSNR (5 steps)", "SSIM (1 step)", "PSNR (5 steps) std"} <= set(table.columns)
    assert list(table["dataset"].unique()) == ["Raindrop", "synthetic_rain"]
    raindrop = table[table["dataset"] == "Raindrop"]
    assert list(raindrop["rank_spec"]) == list(RANK_SPECS)
    row = raindrop[raindrop["rank_spec"] == "lin_decrease"].iloc[0]
    assert row["PSNR (1 step)"] == pytest.approx(
        expected_mean("raindrop", "rddm", "pred_res_noise", "lin_decrease", 1)[0]
    )


def test_feasibility_table_rows(scores):
    scores = scores.assign(objective=scores["objective"].where(scores["process"] == "rddm", "pred_x0"))
    table = feasibility_table(scores, steps=5)
    ours = table[table["source"] == "this run"]
    assert list(ours["model"].unique()) == ["RDDM", "RDDM + Low-Rank", "ResShift", "ResShift + Low-Rank"]
    resshift_lr = ours[ours["model"] == "ResShift + Low-Rank"].iloc[0]
    assert resshift_lr["rank_spec"] == "fixed-r16"
    assert resshift_lr["Raindrop PSNR"] == pytest.approx(
        expected_mean("raindrop", "resshift", "pred_res_noise", "fixed-r16", 5)[0]
    )
    # Tab. 5 does not report Raindrop, so no reported rows for these datasets
    assert set(table["source"]) == {"this run"}
    rain1400 = scores[scores["dataset"] == "raindrop"].assign(dataset="rain1400")
    with_reported = feasibility_table(rain1400, steps=5)
    reported = with_reported[with_reported["source"] == REPORTED_SOURCE].set_index("model")
    assert reported.loc["RDDM + Low-Rank", "Rain1400 PSNR"] == 33.30
    assert reported.loc["ResShift", "Rain1400 SSIM"] == 0.713


def test_sampling_methods_table(scores):
    table = sampling_methods_table(scores, steps=5)
    ours = table[table["source"] == "this run"]
    poly = ours[ours["rank_spec"] == "poly_decrease-p3"]
    assert list(poly["sampling method"]) == ["SM-Res", "SM-N", "SM-Res-N"]
    assert "Eq. 16" in poly.iloc[0]["note"] and "approximate" in poly.iloc[0]["note"]
    assert "approximate" in table.attrs["caption"]
    assert set(ours["rank_spec"]) == {"poly_decrease-p3"}  # the rank spec trained with all three objectives
    every_spec = sampling_methods_table(
        scores, steps=5, rank_specs=["full", "poly_decrease-p3"], include_reported=False
    )
    assert list(every_spec["rank_spec"]) == ["poly_decrease-p3", "poly_decrease-p3", "full", "poly_decrease-p3"]
    sm_n = poly[poly["sampling method"] == "SM-N"].iloc[0]
    assert sm_n["Raindrop PSNR"] == pytest.approx(
        expected_mean("raindrop", "rddm", "pred_noise", "poly_decrease-p3", 5)[0]
    )
    reported = table[table["source"] == REPORTED_SOURCE].set_index("sampling method")
    assert reported.loc["SM-Res-N", "Raindrop PSNR"] == 32.51
    assert reported.loc["SM-N", "Raindrop SSIM"] == 0.7179


def test_main_table_rows_and_sources(scores):
    table = main_table(scores, ["raindrop", "synthetic_rain"], steps=5)
    assert set(table["source"]) == {"this run", REPORTED_SOURCE}
    ours = table[table["source"] == "this run"]
    methods = list(ours["method"])
    assert "LRDM (ours, poly_decrease-p3)" in methods
    assert "RDDM (ours, full)" in methods
    assert not any("SM-N" in m or "ResShift" in m for m in methods)
    assert methods.index("LRDM (ours, fixed-r8)") < methods.index("RDDM (ours, full)")
    row = ours.set_index("method").loc["LRDM (ours, poly_decrease-p3)"]
    assert row["Raindrop PSNR"] == pytest.approx(
        expected_mean("raindrop", "rddm", "pred_res_noise", "poly_decrease-p3", 5)[0]
    )
    reported = table[table["source"] == REPORTED_SOURCE].set_index("method")
    assert reported.loc["LRDM", "Raindrop PSNR"] == 33.09
    assert reported.loc["LRDM", "Raindrop SSIM"] == 0.967
    assert math.isnan(reported.loc["LRDM", "synthetic_rain PSNR"])
    # Rain1400-only methods do not appear when Rain1400 is not requested
    assert "DRSformer" not in reported.index
    # reported rows come first, in the paper's order
    assert list(table["source"][: len(reported)]) == [REPORTED_SOURCE] * len(reported)
    # then the degraded inputs, scored as our runs
    degraded = table.iloc[len(reported)]
    assert (degraded["method"], degraded["protocol"], degraded["source"]) == (INPUT_ROW, "derain_y", "this run")
    assert degraded["Raindrop PSNR"] == pytest.approx(20.0 + (IMAGES - 1) / 2)
    assert degraded["synthetic_rain SSIM"] == pytest.approx(0.5 + 0.01 * (IMAGES - 1) / 2)
    assert INPUT_ROW in table.attrs["caption"]


def test_main_table_adds_the_official_weights_row_beside_ours_and_the_papers(scores):
    """Score rows of run 'official' (the workflow's imported authors' weights) make one row, whatever their
    objective, between the paper's rows and ours, at the same steps; without them the table is unchanged."""
    official = scores[(scores["dataset"] == "raindrop") & (scores["rank_spec"] == "full") & (scores["seed"] == 0)]
    official = official[(official["process"] == "rddm") & (official["objective"] == "pred_res_noise")]
    official = official.assign(run=OFFICIAL_RUN, objective="pred_res", psnr=official["psnr"] + 1.0)
    table = main_table(pd.concat([scores, official], ignore_index=True), ["raindrop", "synthetic_rain"], steps=5)
    rows = table[table["method"] == OFFICIAL_LABEL]
    assert OFFICIAL_LABEL == "RDDM, official weights (evaluated here)" and len(rows) == 1
    row = rows.iloc[0]
    assert row["source"] == "this run" and row["protocol"] == "derain_y" and row["n_seeds"] == 1
    at_5 = official[official["steps"] == 5]
    assert row["Raindrop PSNR"] == pytest.approx(at_5["psnr"].mean())
    assert math.isnan(row["synthetic_rain PSNR"])
    sources = list(table["source"])
    position = int(rows.index[0])
    assert table["method"][position - 1] == INPUT_ROW and sources[position + 1] == "this run"
    # our full-rank RDDM row is built from our trained runs only
    ours = main_table(scores, ["raindrop", "synthetic_rain"], steps=5)
    pd.testing.assert_frame_equal(table.drop(index=position).reset_index(drop=True), ours)
    assert OFFICIAL_LABEL in table.attrs["caption"] and OFFICIAL_LABEL not in ours.attrs["caption"]


def test_lrdm_official_weights_make_their_own_row_beside_the_readmes_and_may_stand_alone(scores):
    """Official rows whose import recorded a rank spec are LRDM's weights: a row of their own (beside an RDDM
    official row), next to the LRDM README's number on Rain1400; without trained runs the table still builds."""
    base = scores[(scores["dataset"] == "raindrop") & (scores["rank_spec"] == "full") & (scores["seed"] == 0)]
    base = base[(base["process"] == "rddm") & (base["objective"] == "pred_res_noise")]
    rddm = base.assign(run=OFFICIAL_RUN)
    lrdm_rows = base.assign(run=OFFICIAL_RUN, dataset="rain1400", rank_spec="fixed-r100", psnr=base["psnr"] + 2.0)
    table = main_table(pd.concat([scores, rddm, lrdm_rows], ignore_index=True), ["raindrop", "rain1400"], steps=5)
    rows = table.set_index("method")
    assert rows.loc[OFFICIAL_LABEL, "source"] == rows.loc[LRDM_OFFICIAL_LABEL, "source"] == "this run"
    at_5 = lrdm_rows[lrdm_rows["steps"] == 5]
    assert rows.loc[LRDM_OFFICIAL_LABEL, "Rain1400 PSNR"] == pytest.approx(at_5["psnr"].mean())
    assert math.isnan(rows.loc[LRDM_OFFICIAL_LABEL, "Raindrop PSNR"])
    readme = rows.loc["LRDM, official weights (its README)"]
    assert readme["source"] == README_SOURCE and readme["Rain1400 PSNR"] == 34.40480469099684
    assert LRDM_OFFICIAL_LABEL in table.attrs["caption"] and README_SOURCE in table.attrs["caption"]
    alone = main_table(lrdm_rows, ["rain1400"], steps=5)
    assert list(alone[alone["source"] == "this run"]["method"]) == [INPUT_ROW, LRDM_OFFICIAL_LABEL]
    assert alone.set_index("method").loc[LRDM_OFFICIAL_LABEL, "Rain1400 PSNR"] == pytest.approx(at_5["psnr"].mean())


def test_main_table_names_the_protocol_of_every_row(scores):
    protocol = scores["dataset"].map({"raindrop": "lrdm_y@lrdm256", "synthetic_rain": "derain_y"})
    table = main_table(scores.assign(protocol=protocol), ["raindrop", "synthetic_rain"], steps=5)
    assert list(table.columns[:3]) == ["method", "protocol", "source"]
    reported = table[table["source"] == REPORTED_SOURCE]
    assert set(reported["protocol"]) == {"lrdm_y@lrdm256"}  # every LRDM Tab. 1 number, as the LRDM code scored it
    ours = table[table["source"] == "this run"].set_index("method")
    assert ours.loc["RDDM (ours, full)", "protocol"] == "derain_y, lrdm_y@lrdm256"
    inputs = table[table["method"] == INPUT_ROW].set_index("protocol")  # one degraded-input row per protocol
    assert list(inputs.index) == ["derain_y", "lrdm_y@lrdm256"]
    assert math.isnan(inputs.loc["derain_y", "Raindrop PSNR"]) and math.isnan(
        inputs.loc["lrdm_y@lrdm256", "synthetic_rain PSNR"]
    )
    only_raindrop = main_table(scores.assign(protocol=protocol), ["raindrop"], steps=5)
    assert set(only_raindrop.loc[only_raindrop["source"] == "this run", "protocol"]) == {"lrdm_y@lrdm256"}
    # RDDM's own numbers carry RDDM's protocol
    rddm = reported_frame("RDDM Tab. 1").set_index("dataset")["protocol"]
    assert rddm["raindrop"].unique().tolist() == ["derain_y@256"] and rddm["istd"].unique().tolist() == ["istd@256"]


def test_main_table_all_runs_are_labelled(scores):
    scores = scores.assign(objective=scores["objective"].where(scores["process"] == "rddm", "pred_x0"))
    table = main_table(scores, steps=5, process=None, objective=None)
    methods = list(table.loc[(table["source"] == "this run") & (table["method"] != INPUT_ROW), "method"])
    assert "LRDM (ours, poly_decrease-p3, SM-N)" in methods
    assert "ResShift + Low-Rank (ours, fixed-r16)" in methods
    assert len(methods) == len(set(methods)) == 12


def test_main_table_requested_dataset_without_scores_gets_reported_columns(scores):
    table = main_table(scores, ["synthetic_rain", "realblur_j"], steps=5)
    assert "RealBlur-J PSNR" in table.columns
    reported = table[table["source"] == REPORTED_SOURCE].set_index("method")
    assert reported.loc["LRDM", "RealBlur-J PSNR"] == 30.21
    assert reported.loc["AdaRevD", "RealBlur-J SSIM"] == 0.894
    synthetic_only = main_table(scores[scores["dataset"] == "synthetic_rain"])
    assert set(synthetic_only["source"]) == {"this run"}


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_write_table_with_several_seeds(tmp_path, scores):
    table = schedulers_table(scores, steps=5)
    paths = write_table(table, tmp_path / "out" / "schedulers", "Rank schedulers & orders_50%")
    assert [p.name for p in paths] == ["schedulers.csv", "schedulers.md", "schedulers.tex"]
    assert all(p.stat().st_size > 0 for p in paths)
    csv = pd.read_csv(paths[0])
    assert list(csv.columns) == list(table.columns)
    mean, std = expected_mean("raindrop", "rddm", "pred_res_noise", "poly_decrease-p3", 5)
    assert np.isclose(csv["Raindrop PSNR"], mean).any()  # raw numbers, not rounded
    markdown = paths[1].read_text()
    rows = _markdown_rows(markdown)
    assert all(re.fullmatch(r":?-{3}:?", cell) for cell in rows[1])
    assert all(len(row) == len(rows[0]) for row in rows)
    assert "Raindrop PSNR std" not in rows[0]
    assert f"{mean:.2f} ± {std:.2f}" in markdown
    assert "33.03" in markdown and "0.9669" in markdown  # reported row, no ± there
    assert "33.03 ±" not in markdown
    latex = paths[2].read_text()
    assert r"\begin{tabular}" in latex and r"\toprule" in latex and r"\bottomrule" in latex
    assert r"\caption{Rank schedulers \& orders\_50\%}" in latex
    assert r"$\pm$" in latex and f"{mean:.2f}" in latex


def test_write_table_single_seed_has_no_plus_minus(tmp_path):
    one_seed = make_scores(seeds=(0,), steps=(5,))
    table = rank_sweep_table(one_seed[one_seed["process"] == "rddm"])
    paths = write_table(table, tmp_path / "sweep", "Rank sweep")
    markdown, latex = paths[1].read_text(), paths[2].read_text()
    assert "±" not in markdown and r"\pm" not in latex
    mean, _ = expected_mean("raindrop", "rddm", "pred_res_noise", "fixed-r8", 5, seeds=(0,))
    assert f"{mean:.2f}" in markdown
    assert f"{mean / 40:.4f}" in markdown  # SSIM with 4 decimals
    assert "–" in markdown and "--" in latex  # missing std / input-row cells
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------------
# Reported numbers
# --------------------------------------------------------------------------------------------------


def _reported(table: str, dataset: str, method: str) -> tuple[float, float]:
    frame = reported_frame(table)
    row = frame[(frame["dataset"] == dataset) & (frame["method"] == method)]
    assert len(row) == 1, (table, dataset, method)
    return float(row["psnr"].iloc[0]), float(row["ssim"].iloc[0])


def test_reported_numbers_match_the_prose():
    assert _reported("LRDM Tab. 1", "raindrop", "LRDM") == (33.09, 0.967)
    assert _reported("LRDM Tab. 1", "rain1400", "LRDM") == (34.39, 0.954)
    assert _reported("LRDM Tab. 2", "realblur_j", "LRDM") == (30.21, 0.933)
    assert _reported("LRDM Tab. 2", "realblur_r", "LRDM") == (37.92, 0.976)
    # §4.4: PD (p=3) 33.03 / 0.9669 on Raindrop and 33.39 / 0.9540 on Rain1400 (Tab. 3 and Tab. 4 agree)
    assert _reported("LRDM Tab. 3", "raindrop", "poly_decrease") == (33.03, 0.9669)
    assert _reported("LRDM Tab. 3", "rain1400", "poly_decrease") == (33.39, 0.9540)
    assert _reported("LRDM Tab. 4", "rain1400", "poly_decrease (p=3)") == (33.39, 0.9540)
    # RDDM: SM-N gives PSNR 11.34 for shadow removal
    assert _reported("RDDM Tab. 1", "istd", "SM-N")[0] == 11.34


def test_reported_frame_shape_and_labels():
    frame = reported_frame()
    assert set(frame["table"]) == set(REPORTED_TABLES)
    names = [name for name in dir(reported) if name.startswith(("LRDM_TAB", "LRDM_FIG", "RDDM_TAB", "LRDM_README"))]
    assert len(names) == len(REPORTED_TABLES) and {getattr(reported, name) for name in names} == set(REPORTED_TABLES)
    assert set(frame["source"]) == {REPORTED_SOURCE, README_SOURCE}
    readme = frame[frame["source"] == README_SOURCE]  # the LRDM README's released checkpoint, not a paper table
    assert list(readme["table"]) == [LRDM_README] and list(readme["dataset"]) == ["rain1400"]
    assert (readme.iloc[0]["psnr"], readme.iloc[0]["ssim"]) == (34.40480469099684, 0.9542205011891243)
    assert readme.iloc[0]["protocol"] == "lrdm_y@lrdm256" and readme.iloc[0]["rank"] == 100
    assert len(reported_frame("LRDM Tab. 1")) == 22
    assert len(reported_frame("LRDM Tab. 2")) == 20
    assert len(reported_frame("LRDM Tab. 4")) == 20
    assert len(reported_frame("LRDM Tab. 5")) == 12
    assert set(reported_frame("LRDM Tab. 5")["dataset"]) == {"rain1400", "gopro", "istd"}
    scores = frame.dropna(subset=["psnr"])
    assert scores["psnr"].between(5, 50).all()
    assert frame.dropna(subset=["ssim"])["ssim"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown reported table"):
        reported_frame("Tab. 9")


def test_build_target_table_for_every_workflow_target(scores):
    rddm_default = scores[(scores["process"] == "rddm") & (scores["objective"] == "pred_res_noise")]
    for name in [name for name in TABLE_TARGETS if name != "claims"]:  # claims: tests/results/test_claims.py
        spec = {"datasets": ["synthetic_rain"], "spec": "poly_decrease-p3"}
        frame, caption = build_target_table(name, scores, spec)
        assert not frame.empty and caption == frame.attrs["caption"]
    frame, _ = build_target_table("main_table", rddm_default, {"datasets": ["synthetic_rain"]})
    assert not any(column.startswith("Raindrop") for column in frame.columns)
    with pytest.raises(ValueError, match="no table for target 'spectrum'"):
        build_target_table("spectrum", scores, {})


def test_protocols_table_lays_each_label_side_by_side_with_differences():
    base = make_scores(datasets=("synthetic_rain",), specs=("full", "poly_decrease-p3"), steps=(5,), extra=())
    shifts = {"derain_y": 0.0, "derain_y@256": 1.5, "lrdm_y@lrdm256": 4.0}
    scores = pd.concat(
        [
            base.assign(protocol=label, psnr=base["psnr"] + shift, input_psnr=20.0 + shift)
            for label, shift in shifts.items()
        ],
        ignore_index=True,
    )
    table = tables.protocols_table(scores)
    assert list(table["method"]) == ["input (degraded)", "LRDM (ours, poly_decrease-p3)", "RDDM (ours, full)"]
    full = table.set_index("method").loc["RDDM (ours, full)"]
    own = expected_mean("synthetic_rain", "rddm", "pred_res_noise", "full", 5)[0]
    assert full["derain_y PSNR"] == pytest.approx(own)
    assert full["lrdm_y@lrdm256 PSNR"] == pytest.approx(own + 4.0)
    assert full["Δ PSNR (@256 − own size)"] == pytest.approx(1.5)
    assert full["Δ PSNR (@lrdm256 − own size)"] == pytest.approx(4.0)
    degraded = table.set_index("method").loc["input (degraded)"]
    assert degraded["lrdm_y@lrdm256 PSNR"] == pytest.approx(24.0) and degraded["derain_y PSNR"] == pytest.approx(20.0)
    assert "lrdm_y@lrdm256" in table.attrs["caption"]
    with pytest.raises(ValueError, match="protocol"):
        tables.protocols_table(base.drop(columns=["protocol"], errors="ignore"))
