"""Figures of the LRDM paper (PNG + PDF), drawn with matplotlib's Agg backend.

Each figure has a ``build_*`` function returning the :class:`~matplotlib.figure.Figure` (so tests and
notebooks can inspect it) and a ``plot_*`` function that builds it and writes ``out_stem.png`` (150 dpi)
and ``out_stem.pdf`` with :func:`save_figure`, returning both paths.  Figures are created without pyplot
(plain :class:`~matplotlib.figure.Figure` objects, rendered by the Agg canvas for PNG and the PDF backend),
so importing this module neither changes the session's backend nor opens windows.

* Fig. 4 — rank schedules ``k(t)`` (:func:`plot_rank_schedules`), from :func:`lrdm.core.lowrank.rank_schedule`.
* Fig. 6 — PSNR/SSIM versus fixed rank with the full-rank and degraded-input levels (:func:`plot_rank_sweep`).
* Fig. 7 — restorations at several ranks side by side with their PSNR (:func:`plot_rank_grid`), and one
  restoration grid per main-table dataset (:func:`plot_restoration_grid`).
* Fig. 8 — PSNR versus sampling steps, one line per rank spec (:func:`plot_steps`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lrdm.core.lowrank import rank_schedule
from lrdm.files import atomic_path
from lrdm.results.scores import METRIC_LABELS, dataset_label, dataset_order, select_runs, summarize
from lrdm.vocab import DEFAULT_OBJECTIVE, DEFAULT_PROCESS, RANK_KINDS

#: Resolution of the PNG files.
FIGURE_DPI = 150
#: Size of one subplot panel, inches (width, height).
PANEL_SIZE = (4.2, 3.0)
#: Size of one image panel of :func:`build_rank_grid`, and room for its two-line title, inches.
IMAGE_PANEL_INCHES = 2.4
TITLE_INCHES = 0.6
#: Extra width for the figure legend of :func:`build_steps`, inches.
LEGEND_INCHES = 1.6
#: Schedulers of Fig. 4 (a); the polynomial ones use :data:`FIG4_ORDER`.
FIG4_SCHEDULERS = ("lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
FIG4_ORDER = 3
#: Polynomial orders of Fig. 4 (b) in the paper.
PAPER_ORDERS = (1, 2, 3, 4, 5)
#: Axis labels per metric.
METRIC_AXIS_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM"}
FULL_RANK_LABEL = "full rank (w.o. LR)"
INPUT_LABEL = "degraded input"
#: Marker size and error-bar cap size of the measured points.
MARKER_SIZE = 4
CAP_SIZE = 3


def new_figure(**kwargs: object) -> Figure:
    """A pyplot-free figure with constrained layout on an Agg canvas (``kwargs`` go to ``Figure``)."""
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_stem: str | os.PathLike[str]) -> list[Path]:
    """Writes ``out_stem.png`` (:data:`FIGURE_DPI`) and ``out_stem.pdf`` atomically (temporary file in the
    same folder, then rename), closes ``fig`` (also on error; a no-op for figures pyplot does not manage)
    and returns both paths."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    try:
        for path in paths:
            with atomic_path(path) as temporary:
                fig.savefig(temporary, format=path.suffix[1:], dpi=FIGURE_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return paths


# --------------------------------------------------------------------------------------------------
# Fig. 4: rank schedules
# --------------------------------------------------------------------------------------------------


def _schedule_curve(kind: str, T: int, max_rank: int, order: int) -> np.ndarray:
    t = torch.arange(T)
    return rank_schedule(kind, t, T, max_rank, order=order).numpy()


def build_rank_schedules(T: int, max_rank: int, orders: Sequence[int] = PAPER_ORDERS) -> Figure:
    """LRDM Fig. 4: (a) ``k(t)`` of lin_increase, lin_decrease, poly_increase-p3 and poly_decrease-p3;
    (b) poly_decrease (solid) and poly_increase (dashed) for each order in ``orders``."""
    if not orders:
        raise ValueError("build_rank_schedules needs at least one polynomial order")
    t = np.arange(T)
    fig = new_figure(figsize=(2 * PANEL_SIZE[0], PANEL_SIZE[1]))
    ax_a, ax_b = fig.subplots(1, 2)
    for kind in FIG4_SCHEDULERS:
        label = f"{kind} (p={FIG4_ORDER})" if kind.startswith("poly") else kind
        ax_a.plot(t, _schedule_curve(kind, T, max_rank, FIG4_ORDER), label=label)
    ax_a.set_title(f"(a) rank schedulers (R_m = {max_rank})")
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(orders)))
    for colour, order in zip(colours, orders):
        ax_b.plot(
            t,
            _schedule_curve("poly_decrease", T, max_rank, order),
            color=colour,
            linestyle="-",
            label=f"poly_decrease p={order}",
        )
        ax_b.plot(
            t,
            _schedule_curve("poly_increase", T, max_rank, order),
            color=colour,
            linestyle="--",
            label=f"poly_increase p={order}",
        )
    ax_b.set_title("(b) polynomial envelopes by order p")
    for ax in (ax_a, ax_b):
        ax.set_xlabel("timestep t")
        ax.set_ylabel("rank k(t)")
        ax.set_xlim(0, T - 1)
        ax.set_ylim(0, max_rank * 1.05)
        ax.grid(alpha=0.3)
    ax_a.legend(fontsize="small")
    ax_b.legend(fontsize="x-small", ncol=2)
    return fig


def plot_rank_schedules(T: int, max_rank: int, orders: Sequence[int], out_stem: str | os.PathLike[str]) -> list[Path]:
    """Builds :func:`build_rank_schedules` and saves it; returns the PNG and PDF paths."""
    return save_figure(build_rank_schedules(T, max_rank, orders), out_stem)


# --------------------------------------------------------------------------------------------------
# Fig. 6: rank sweep
# --------------------------------------------------------------------------------------------------


def _yerr(std: pd.Series) -> np.ndarray | None:
    values = std.to_numpy(dtype=float)
    return None if np.isnan(values).all() else np.nan_to_num(values)


def build_rank_sweep(
    scores: pd.DataFrame,
    steps: int | None = None,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> Figure:
    """LRDM Fig. 6: one column per dataset, PSNR (top) and SSIM (bottom) versus fixed rank (mean ± std over
    seeds), a dashed line at the full-rank run and a dotted line at the degraded input.

    Raises ValueError when there is no fixed-rank or full-rank run.
    """
    frame = select_runs(scores, ("fixed", "full"), process, objective, steps)
    summary = summarize(frame, ["dataset", "scheduler", "rank"])
    inputs = summarize(frame, ["dataset"]).set_index("dataset")
    datasets = dataset_order(summary["dataset"].unique())
    fig = new_figure(figsize=(PANEL_SIZE[0] * len(datasets), 2 * PANEL_SIZE[1]))
    axes = fig.subplots(2, len(datasets), squeeze=False)
    for column, dataset in enumerate(datasets):
        part = summary[summary["dataset"] == dataset]
        fixed = part[part["scheduler"] == "fixed"].sort_values("rank")
        full = part[part["scheduler"] == "full"]
        used_steps = sorted(int(s) for s in frame.loc[frame["dataset"] == dataset, "steps"].unique())
        for row, metric in enumerate(METRIC_LABELS):
            ax = axes[row, column]
            if not fixed.empty:
                ax.errorbar(
                    fixed["rank"].astype(float),
                    fixed[f"{metric}_mean"],
                    yerr=_yerr(fixed[f"{metric}_std"]),
                    marker="o",
                    markersize=MARKER_SIZE,
                    capsize=CAP_SIZE,
                    label="fixed rank r",
                )
            if not full.empty:
                ax.axhline(
                    float(full[f"{metric}_mean"].iloc[0]), color="tab:red", linestyle="--", label=FULL_RANK_LABEL
                )
            ax.axhline(
                float(inputs.loc[dataset, f"input_{metric}_mean"]), color="tab:gray", linestyle=":", label=INPUT_LABEL
            )
            ax.set_xlabel("fixed rank r")
            ax.set_ylabel(METRIC_AXIS_LABELS[metric])
            ax.set_title(
                f"{dataset_label(dataset)}: {METRIC_LABELS[metric]} vs rank ({', '.join(map(str, used_steps))} steps)"
            )
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    return fig


def plot_rank_sweep(
    scores: pd.DataFrame,
    out_stem: str | os.PathLike[str],
    steps: int | None = None,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> list[Path]:
    """Builds :func:`build_rank_sweep` and saves it; returns the PNG and PDF paths."""
    return save_figure(build_rank_sweep(scores, steps, process, objective), out_stem)


# --------------------------------------------------------------------------------------------------
# Fig. 7: restorations at several ranks
# --------------------------------------------------------------------------------------------------


def build_image_grid(
    rows: Sequence[Mapping[str, np.ndarray]], psnrs: Sequence[Mapping[str, float]] | None, title: str
) -> Figure:
    """Rows of images side by side (each row in its mapping's order, e.g. GT, Input, RDDM, LRDM), each panel
    titled with its key and, where the row's ``psnrs`` has it, its PSNR.

    Raises ValueError for no rows, rows with different keys, or an image that is not ``uint8`` ``H×W×3``.
    """
    if not rows or not rows[0]:
        raise ValueError("an image grid needs at least one image")
    names = list(rows[0])
    for row in rows:
        if list(row) != names:
            raise ValueError(f"every row of an image grid needs the panels {names}, got {list(row)}")
        for name, image in row.items():
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"image {name!r} must be a uint8 H×W×3 array, got {array.dtype} {array.shape}")
    psnrs = psnrs or [{} for _ in rows]
    fig = new_figure(figsize=(IMAGE_PANEL_INCHES * len(names), (IMAGE_PANEL_INCHES + TITLE_INCHES) * len(rows)))
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for row_axes, row, row_psnrs in zip(axes, rows, psnrs):
        for ax, (name, image) in zip(row_axes, row.items()):
            ax.imshow(np.asarray(image))
            ax.set_title(name if name not in row_psnrs else f"{name}\nPSNR {row_psnrs[name]:.2f} dB")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return fig


def build_rank_grid(
    images: Mapping[str, np.ndarray], psnrs: Mapping[str, float] | None = None, scoring: str | None = None
) -> Figure:
    """LRDM Fig. 7: the images in a row (in ``images``' order, e.g. GT, Input, r=20, r=40, w.o. LR), each
    titled with its key and, where ``psnrs`` has it, its PSNR (:func:`build_image_grid`); the title names the
    ``scoring`` of the PSNRs (a protocol label)."""
    title = "Restorations under different fixed ranks" + (f" (PSNR: {scoring})" if scoring else "")
    return build_image_grid([images], [psnrs or {}], title)


def plot_rank_grid(
    images: Mapping[str, np.ndarray],
    out_stem: str | os.PathLike[str],
    psnrs: Mapping[str, float] | None = None,
    scoring: str | None = None,
) -> list[Path]:
    """Builds :func:`build_rank_grid` and saves it; returns the PNG and PDF paths."""
    return save_figure(build_rank_grid(images, psnrs, scoring), out_stem)


def plot_restoration_grid(
    rows: Sequence[Mapping[str, np.ndarray]],
    psnrs: Sequence[Mapping[str, float]],
    dataset: str,
    out_stem: str | os.PathLike[str],
    scoring: str | None = None,
) -> list[Path]:
    """The restoration grid of one dataset (GT, input and each method, one test image per row), its title
    naming the ``scoring`` of its PSNRs (a protocol label, e.g. ``lrdm_y@lrdm256``); returns the PNG and PDF
    paths."""
    title = f"Restorations on {dataset}" + (f" (PSNR: {scoring})" if scoring else "")
    return save_figure(build_image_grid(rows, psnrs, title), out_stem)


# --------------------------------------------------------------------------------------------------
# Fig. 8: quality versus sampling steps
# --------------------------------------------------------------------------------------------------


def _spec_key(part: pd.DataFrame) -> tuple:
    scheduler = part["scheduler"].iloc[0]
    position = RANK_KINDS.index(scheduler) if scheduler in RANK_KINDS else len(RANK_KINDS)
    rank, order = part["rank"].iloc[0], part["order"].iloc[0]
    return (position, -1 if pd.isna(rank) else int(rank), -1 if pd.isna(order) else int(order))


def build_steps(
    scores: pd.DataFrame,
    metric: str = "psnr",
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> Figure:
    """LRDM Fig. 8: ``metric`` (mean ± std over seeds) versus sampling steps, one line per rank spec (same
    colour in every panel, one shared legend on the right), one panel per dataset.
    Raises ValueError when no run is left or ``metric`` is unknown."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
    frame = select_runs(scores, None, process, objective, all_steps=True)
    summary = summarize(frame, ["dataset", "rank_spec", "scheduler", "rank", "order", "steps"])
    datasets = dataset_order(summary["dataset"].unique())
    fig = new_figure(figsize=(PANEL_SIZE[0] * len(datasets) + LEGEND_INCHES, PANEL_SIZE[1]))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    specs = sorted((group for _, group in summary.groupby("rank_spec")), key=_spec_key)
    spec_names = [group["rank_spec"].iloc[0] for group in specs]
    colours = dict(
        zip(spec_names, matplotlib.colormaps["tab10" if len(specs) <= 10 else "tab20"](np.arange(len(specs))))
    )
    handles: dict[str, object] = {}
    for ax, dataset in zip(axes[0], datasets):
        part = summary[summary["dataset"] == dataset]
        for name in spec_names:
            group = part[part["rank_spec"] == name].sort_values("steps")
            if group.empty:
                continue
            handles[name] = ax.errorbar(
                group["steps"],
                group[f"{metric}_mean"],
                yerr=_yerr(group[f"{metric}_std"]),
                marker="o",
                markersize=MARKER_SIZE,
                capsize=CAP_SIZE,
                color=colours[name],
                label=name,
            )
        ax.set_xticks(sorted(int(s) for s in part["steps"].unique()))
        ax.set_xlabel("sampling steps")
        ax.set_ylabel(METRIC_AXIS_LABELS[metric])
        ax.set_title(f"{dataset_label(dataset)}: {METRIC_LABELS[metric]} vs sampling steps")
        ax.grid(alpha=0.3)
    fig.legend(
        [handles[name] for name in spec_names if name in handles],
        [name for name in spec_names if name in handles],
        loc="outside right upper",
        title="rank spec",
        fontsize="small",
    )
    return fig


def plot_steps(
    scores: pd.DataFrame,
    out_stem: str | os.PathLike[str],
    metric: str = "psnr",
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> list[Path]:
    """Builds :func:`build_steps` and saves it; returns the PNG and PDF paths."""
    return save_figure(build_steps(scores, metric, process, objective), out_stem)


# --------------------------------------------------------------------------------------------------
# Training: the loss curves of a dataset's runs, on one axes
# --------------------------------------------------------------------------------------------------

#: Weight of the exponential moving average that smooths a loss curve (TensorBoard's slider, 0: none).
LOSS_SMOOTHING = 0.9
#: Opacity of the raw loss drawn under each smoothed curve.
RAW_LOSS_ALPHA = 0.15
#: Size of the loss comparison figure without its legend, inches (width, height).
LOSS_FIGURE_SIZE = (6.4, 4.0)


def smooth(values: Sequence[float], weight: float = LOSS_SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average of ``values`` (``weight`` in [0, 1): the share kept of the past;
    0 returns ``values``): the first points are not pulled towards 0.  Raises ValueError for a weight outside."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    data = np.asarray(values, dtype=float)
    out = np.empty_like(data)
    average = 0.0
    for i, value in enumerate(data):
        average = weight * average + (1.0 - weight) * value
        out[i] = average / (1.0 - weight ** (i + 1))
    return out


def build_loss_comparison(losses: Mapping[str, pd.DataFrame], title: str, weight: float = LOSS_SMOOTHING) -> Figure:
    """Every run's training loss (``losses.csv`` columns ``step, loss``) against the step on one log-scale axes,
    smoothed by :func:`smooth` over the raw curve (faint), one colour and legend entry per run (``losses``'
    keys, in their order).  Raises ValueError for no run or a run without losses."""
    if not losses:
        raise ValueError("a loss comparison needs at least one run")
    fig = new_figure(figsize=(LOSS_FIGURE_SIZE[0] + LEGEND_INCHES * 2, LOSS_FIGURE_SIZE[1]))
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10" if len(losses) <= 10 else "tab20"](np.arange(len(losses)))
    for colour, (label, frame) in zip(colours, losses.items()):
        if frame.empty:
            raise ValueError(f"run {label}: no losses logged")
        ax.plot(frame["step"], frame["loss"], color=colour, alpha=RAW_LOSS_ALPHA, linewidth=0.8)
        ax.plot(frame["step"], smooth(frame["loss"], weight), color=colour, linewidth=1.4, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"loss (log scale; smoothed, EMA {weight:g})")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="x-small")
    return fig


def plot_loss_comparison(
    loss_files: Mapping[str, str | os.PathLike[str]], out_stem: str | os.PathLike[str], title: str
) -> list[Path]:
    """:func:`build_loss_comparison` of the runs' ``losses.csv`` files (label -> path) -> ``out_stem.{png,pdf}``."""
    losses = {label: pd.read_csv(path) for label, path in loss_files.items()}
    for label, frame in losses.items():
        if frame.empty:
            raise ValueError(f"{loss_files[label]}: no losses logged")
    return save_figure(build_loss_comparison(losses, title), out_stem)
