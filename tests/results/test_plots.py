"""Figures: they are built with labelled axes and saved as non-empty PNG and PDF files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from test_tables import make_scores

from lrdm.core.lowrank import rank_schedule
from lrdm.results import plots


@pytest.fixture(scope="module")
def scores():
    return make_scores(steps=(1, 2, 5))


def assert_labelled(fig, titled: bool = True) -> None:
    axes = fig.get_axes()
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax
        if titled:
            assert ax.get_title()


def assert_written(paths) -> None:
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not list(png.parent.glob(".*.tmp"))


def test_save_figure_writes_both_and_closes(tmp_path):
    before = plt.get_fignums()
    fig = plots.build_rank_schedules(100, 16, (1, 3))
    assert plt.get_fignums() == before  # built without pyplot
    assert_written(plots.save_figure(fig, tmp_path / "sub" / "fig"))
    managed = plt.figure()
    plots.save_figure(managed, tmp_path / "managed")
    assert not plt.fignum_exists(managed.number)


def test_rank_schedules_figure_uses_the_library_schedules(tmp_path):
    T, max_rank = 200, 64
    fig = plots.build_rank_schedules(T, max_rank, (1, 2, 3))
    assert_labelled(fig)
    ax_a, ax_b = fig.get_axes()
    labels_a = [line.get_label() for line in ax_a.get_lines()]
    assert labels_a == ["lin_increase", "lin_decrease", "poly_increase (p=3)", "poly_decrease (p=3)"]
    expected = rank_schedule("poly_decrease", np.arange(T), T, max_rank, order=3).numpy()
    np.testing.assert_array_equal(ax_a.get_lines()[3].get_ydata(), expected)
    assert len(ax_b.get_lines()) == 2 * 3
    assert ax_a.get_legend() is not None and ax_b.get_legend() is not None
    assert_written(plots.plot_rank_schedules(T, max_rank, (1, 2, 3), tmp_path / "fig4"))


def test_rank_sweep_figure(tmp_path, scores):
    fig = plots.build_rank_sweep(scores, steps=5)
    assert_labelled(fig)
    axes = fig.get_axes()
    assert len(axes) == 2 * 2  # two datasets x (PSNR, SSIM)
    top_left = axes[0]
    assert "Raindrop" in top_left.get_title() and top_left.get_ylabel() == "PSNR (dB)"
    assert axes[2].get_ylabel() == "SSIM"
    styles = {line.get_linestyle() for line in top_left.get_lines()}
    assert {"--", ":"} <= styles  # full-rank and degraded-input levels
    legend_texts = [t.get_text() for t in top_left.get_legend().get_texts()]
    assert plots.FULL_RANK_LABEL in legend_texts and plots.INPUT_LABEL in legend_texts
    assert_written(plots.plot_rank_sweep(scores, tmp_path / "fig6"))
    with pytest.raises(ValueError):
        plots.build_rank_sweep(scores[scores["scheduler"] == "lin_increase"])


def test_rank_grid_figure(tmp_path):
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for name in ("GT", "Input", "r=20", "w.o. LR")}
    psnrs = {"Input": 24.5, "r=20": 31.234, "w.o. LR": 30.9}
    fig = plots.build_rank_grid(images, psnrs)
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert titles == ["GT", "Input\nPSNR 24.50 dB", "r=20\nPSNR 31.23 dB", "w.o. LR\nPSNR 30.90 dB"]
    assert_written(plots.plot_rank_grid(images, tmp_path / "fig7", psnrs))
    scored = plots.build_rank_grid(images, psnrs, "lrdm_y@lrdm256")
    assert scored.get_suptitle() == "Restorations under different fixed ranks (PSNR: lrdm_y@lrdm256)"
    with pytest.raises(ValueError, match="uint8"):
        plots.build_rank_grid({"GT": np.zeros((8, 8, 3), dtype=np.float32)})
    with pytest.raises(ValueError):
        plots.build_rank_grid({})


def test_restoration_grid_has_one_row_per_image(tmp_path):
    rng = np.random.default_rng(0)
    names = ("GT", "Input", "RDDM", "LRDM")
    rows = [{name: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for name in names} for _ in range(3)]
    psnrs = [{"Input": 20.0 + i, "RDDM": 25.0 + i, "LRDM": 26.0 + i} for i in range(3)]
    fig = plots.build_image_grid(rows, psnrs, "Restorations on synthetic_rain")
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert len(titles) == 12 and titles[4:8] == [
        "GT",
        "Input\nPSNR 21.00 dB",
        "RDDM\nPSNR 26.00 dB",
        "LRDM\nPSNR 27.00 dB",
    ]
    assert_written(plots.plot_restoration_grid(rows, psnrs, "synthetic_rain", tmp_path / "grid"))
    with pytest.raises(ValueError, match="every row"):
        plots.build_image_grid([rows[0], {"GT": rows[1]["GT"]}], None, "mixed")


def test_steps_figure(tmp_path, scores):
    fig = plots.build_steps(scores)
    assert_labelled(fig)
    ax = fig.get_axes()[0]
    assert ax.get_xlabel() == "sampling steps" and ax.get_ylabel() == "PSNR (dB)"
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "full" and "poly_decrease-p3" in labels and len(labels) == 8
    assert list(ax.get_xticks()) == [1, 2, 5]
    assert_written(plots.plot_steps(scores, tmp_path / "fig8"))
    with pytest.raises(ValueError):
        plots.build_steps(scores, metric="lpips")


def test_smoothing_keeps_the_first_value_and_a_constant():
    assert plots.smooth([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])
    smoothed = plots.smooth([1.0, 0.0, 0.0, 0.0], weight=0.5)
    assert smoothed[0] == pytest.approx(1.0) and smoothed[-1] < smoothed[1] < smoothed[0]
    assert plots.smooth([3.0, 1.0], weight=0.0).tolist() == [3.0, 1.0]
    with pytest.raises(ValueError, match="smoothing weight"):
        plots.smooth([1.0], weight=1.0)


def test_loss_comparison_draws_every_run_of_a_dataset_on_one_log_axes(tmp_path):
    from lrdm.workflow import loss_comparison_paths, loss_comparison_runs

    files = {}
    for name, scale in (("rddm/pred_res_noise/full/seed0", 1.0), ("rddm/pred_res_noise/poly_decrease-p3/seed0", 2.0)):
        csv = tmp_path / name / "losses.csv"
        csv.parent.mkdir(parents=True)
        csv.write_text("step,loss,seconds\n" + "".join(f"{s},{scale / s},{0.1 * s}\n" for s in range(1, 6)))
        files[name] = csv
    fig = plots.build_loss_comparison({name: pd.read_csv(path) for name, path in files.items()}, "rain")
    (ax,) = fig.get_axes()
    assert ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_title() == "rain"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(files)
    assert len(ax.get_lines()) == 2 * len(files)  # raw (faint) and smoothed per run
    assert_written(plots.plot_loss_comparison(files, tmp_path / "fig" / "synthetic_rain", "rain"))
    (tmp_path / "empty.csv").write_text("step,loss,seconds\n")
    with pytest.raises(ValueError, match="empty.csv: no losses logged"):
        plots.plot_loss_comparison({"x": tmp_path / "empty.csv"}, tmp_path / "fig" / "x", "x")
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "smoke.yaml").read_text())
    assert loss_comparison_paths(config) == [
        f"results/figures/losses/{dataset}.png" for dataset in ("synthetic_blur", "synthetic_rain")
    ]
    runs = loss_comparison_runs(config, "synthetic_rain")
    assert "synthetic_rain/rddm/pred_res_noise/full/seed0" in [run.path for run in runs] and len(runs) == len(set(runs))
    assert all(run.dataset == "synthetic_rain" for run in runs)
