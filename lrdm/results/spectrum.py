"""Singular-value spectrum of the degradation residual (LRDM §3, Figs. 2 and 3).

LRDM motivates its low-rank forward process by the observation that the residual
``I_res = I_in - I_0`` between a degraded image and its clean target has a rapidly decaying
singular-value spectrum: on Raindrop at 512×512 about 90 % of the cumulative singular-value
magnitude lies in the top 10 ranks (Fig. 3), and truncated-SVD reconstructions
``I_0 + Q_k(I_res)`` with ``k = 50, 100`` are visually close to the input (Fig. 2).

This module measures that on any paired index (:func:`lrdm.data.index.read_index`):

* :func:`analyse_residuals` — per image and channel, the singular values ``σ_i`` of the ``H×W``
  residual in model space (values in ``[-2, 2]``), the Fig. 3 curves, and summary numbers
  (energy ranks ``k90``/``k99``, the cumulative magnitude ratio at rank 10, ``Σσ²``);
* :func:`mean_curves` — the Fig. 3 curves averaged over images and channels;
* :func:`suggest_max_rank` — ``R_m`` for ``max_rank: auto`` from the per-image ``k99``;
* :func:`plot_spectrum_curves` — LRDM Fig. 3;
* :func:`plot_residual_grid` — LRDM Fig. 2.

The spectrum arithmetic itself lives in :mod:`lrdm.core.lowrank` and is only reused here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lrdm.core.lowrank import project_low_rank, singular_spectrum, spectrum_summary
from lrdm.data.index import read_index
from lrdm.data.paired import PairedImageDataset, from_model_space
from lrdm.results.plots import new_figure, save_figure

__all__ = [
    "CURVE_COLUMNS",
    "CURVE_METRICS",
    "ENERGY_COLUMNS",
    "SUMMARY_COLUMNS",
    "TOP_RANKS",
    "analyse_residuals",
    "mean_curves",
    "plot_residual_grid",
    "plot_spectrum_curves",
    "suggest_max_rank",
]

#: Rank at which the summary reports the cumulative magnitude ratio (the paper's headline:
#: ≈90 % within the top 10 ranks, LRDM Fig. 3).
TOP_RANKS = 10
#: Energy fractions of ``Σσ²`` reported as energy ranks, by summary column.
ENERGY_COLUMNS: dict[str, float] = {"k90": 0.90, "k99": 0.99}
#: Default energy level and quantile of :func:`suggest_max_rank`.
DEFAULT_RANK_ENERGY = 0.99
DEFAULT_RANK_QUANTILE = 0.9
#: The three Fig. 3 quantities, in panel order.
CURVE_METRICS: tuple[str, ...] = ("normalized_magnitude", "derivative", "cumulative_magnitude_ratio")
CURVE_COLUMNS: tuple[str, ...] = ("dataset", "image_id", "channel", "i", "sigma", *CURVE_METRICS)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "dataset",
    "image_id",
    "channel",
    "height",
    "width",
    "max_rank",
    *ENERGY_COLUMNS,
    "top10_magnitude_ratio",
    "energy",
)

#: Figure styling.
PANEL_SIZE_IN = 3.6  # width/height of one panel of the curve figure [inch]
GRID_PANEL_IN = 2.0  # side of one image panel of the residual grid [inch]
GUIDE_FRACTION = 0.9  # dashed horizontal guide on the cumulative panel (paper: ≈90 %)
BAND_ALPHA = 0.25  # opacity of the ±std band
MIN_PLOT_SCALE = 1e-12  # avoids dividing by zero when visualising an all-zero residual
#: Model-space half range: images live in [-1, 1], so residuals in [-2, 2].
MODEL_RANGE = 1.0


# --------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------


def _dataset_name(row: pd.Series, fallback: str) -> str:
    task = row.get("task")
    if isinstance(task, str) and task:
        return task
    return fallback


def analyse_residuals(
    index_path: str | os.PathLike[str],
    split: str = "train",
    limit: int | None = None,
    dataset: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Singular-value spectrum of every residual ``I_res = I_in - I_0`` of one split (LRDM Fig. 3).

    Images are read one at a time (full size, no crop or flip), so an index may mix image sizes.
    The residual is taken in model space, ``I_in, I_0 ∈ [-1, 1]`` so ``I_res ∈ [-2, 2]``, and each
    of its ``C`` channel matrices ``H×W`` is decomposed in float64.

    Args:
        index_path: An ``index.parquet`` / ``.csv`` readable by :func:`lrdm.data.index.read_index`.
        split: Split to analyse (``train`` / ``test``).
        limit: Analyse only the first ``limit`` pairs of the split (index order); None for all.
        dataset: Label for the ``dataset`` column; default the row's ``task`` entry, or the name
            of the folder holding the index where ``task`` is empty.

    Returns:
        ``(curves, summary)``:

        * ``curves`` — one row per image, channel and rank, columns :data:`CURVE_COLUMNS`:
          ``channel`` (0-based), ``i`` (1-based rank, ``1..min(H, W)``), ``sigma`` (``σ_i ≥ 0``,
          descending in ``i``), ``normalized_magnitude`` (``σ_i/σ_1`` in [0, 1], 1 at ``i = 1``),
          ``derivative`` (backward difference ``σ_i/σ_1 - σ_{i-1}/σ_1`` ≤ 0, aligned to the
          larger index ``i``; NaN at ``i = 1``), ``cumulative_magnitude_ratio``
          (``Σ_{j≤i} σ_j / Σ_j σ_j``, non-decreasing, 1 at ``i = max_rank``).
        * ``summary`` — one row per image and channel, columns :data:`SUMMARY_COLUMNS`:
          ``max_rank = min(H, W)``; ``k90``/``k99`` the smallest ``k`` whose top-``k`` singular
          values hold 90 % / 99 % of ``Σσ²``; ``top10_magnitude_ratio`` the cumulative magnitude
          ratio at rank ``min(10, max_rank)``; ``energy = Σσ² = ‖I_res‖_F²``.

        An all-zero residual channel gets ``sigma = 0``, normalised magnitude 0, cumulative ratio
        1 and ``k90 = k99 = 0`` (conventions of :mod:`lrdm.core.lowrank`).

    Raises:
        ValueError: ``limit`` < 1, or the split has no rows.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit}")
    index = read_index(index_path)
    fallback = dataset if dataset is not None else Path(index_path).resolve().parent.name
    pairs = PairedImageDataset(index, split)
    n_pairs = len(pairs) if limit is None else min(limit, len(pairs))

    curve_parts: list[pd.DataFrame] = []
    summary_rows: list[dict[str, object]] = []
    for n in range(n_pairs):
        item = pairs[n]
        label = dataset if dataset is not None else _dataset_name(pairs.rows.iloc[n], fallback)
        residual = (item["input"].to(torch.float64) - item["target"].to(torch.float64))[None]
        channels, height, width = residual.shape[1:]
        sv = singular_spectrum(residual)[0]  # (C, r), r = min(H, W)
        stats = spectrum_summary(sv)
        rank = sv.shape[-1]
        # derivative has r-1 entries; entry j belongs to rank j+2 (backward difference)
        nan_column = torch.full((channels, 1), math.nan, dtype=sv.dtype)
        derivative = torch.cat([nan_column, stats["derivative"]], dim=-1)
        curve_parts.append(
            pd.DataFrame(
                {
                    "dataset": label,
                    "image_id": item["image_id"],
                    "channel": np.repeat(np.arange(channels), rank),
                    "i": np.tile(np.arange(1, rank + 1), channels),
                    "sigma": sv.reshape(-1).numpy(),
                    "normalized_magnitude": stats["normalized_magnitude"].reshape(-1).numpy(),
                    "derivative": derivative.reshape(-1).numpy(),
                    "cumulative_magnitude_ratio": stats["cumulative_magnitude_ratio"].reshape(-1).numpy(),
                }
            )
        )
        top = min(TOP_RANKS, rank) - 1
        energy = (sv**2).sum(dim=-1)
        for c in range(channels):
            summary_rows.append(
                {
                    "dataset": label,
                    "image_id": item["image_id"],
                    "channel": c,
                    "height": height,
                    "width": width,
                    "max_rank": rank,
                    "k90": int(stats["k90"][c]),
                    "k99": int(stats["k99"][c]),
                    "top10_magnitude_ratio": float(stats["cumulative_magnitude_ratio"][c, top]),
                    "energy": float(energy[c]),
                }
            )

    curves = pd.concat(curve_parts, ignore_index=True)[list(CURVE_COLUMNS)]
    summary = pd.DataFrame(summary_rows, columns=list(SUMMARY_COLUMNS))
    return curves, summary


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Fig. 3 curves averaged over images and channels, per ``dataset`` and rank ``i``.

    Mixed image sizes: curves are indexed by the absolute rank ``i`` (as in the paper's "top 10
    ranks") and truncated, per dataset, to ``i ≤`` the smallest ``max_rank`` present, so every
    ``(dataset, i)`` averages the same set of image channels.  With mixed sizes the mean
    cumulative ratio therefore ends below 1.

    All-zero residual channels (``σ_1 = 0``, e.g. a patch that received no rain streak) have no
    spectrum to speak of and are left out of the means (they would pull the normalised magnitude
    at ``i = 1`` below 1); ``n`` counts the channels actually averaged.  A dataset whose residuals
    are all zero yields no rows.

    Args:
        curves: The ``curves`` frame of :func:`analyse_residuals` (the ``dataset`` column is
            optional; without it all rows form one group).

    Returns:
        One row per ``(dataset, i)``: ``dataset``, ``i``, ``n`` (number of image channels
        averaged), and ``{metric}_mean`` / ``{metric}_std`` for ``sigma`` and each of
        :data:`CURVE_METRICS`.  ``std`` is the population standard deviation (ddof 0, so a
        single curve has std 0).  ``derivative`` is NaN at ``i = 1``.
    """
    frame = curves if "dataset" in curves.columns else curves.assign(dataset="")
    metrics = ["sigma", *CURVE_METRICS]
    parts: list[pd.DataFrame] = []
    for name, group in frame.groupby("dataset", sort=True):
        per_curve = group.groupby(["image_id", "channel"])
        nonzero = per_curve["sigma"].transform("max") > 0
        group = group[nonzero]
        if group.empty:
            continue
        smallest = int(group.groupby(["image_id", "channel"])["i"].max().min())
        kept = group[group["i"] <= smallest]
        grouped = kept.groupby("i")[metrics]
        means = grouped.mean().add_suffix("_mean")
        stds = grouped.std(ddof=0).add_suffix("_std")
        part = pd.concat([means, stds], axis=1)
        part.insert(0, "n", kept.groupby("i").size())
        part = part.reset_index()
        part.insert(0, "dataset", name)
        parts.append(part)
    ordered = ["dataset", "i", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    if not parts:
        return pd.DataFrame(columns=ordered)
    return pd.concat(parts, ignore_index=True)[ordered]


def suggest_max_rank(
    summary: pd.DataFrame,
    energy: float = DEFAULT_RANK_ENERGY,
    quantile: float = DEFAULT_RANK_QUANTILE,
) -> int:
    """``R_m`` for ``max_rank: auto``: the ``quantile`` (default 90th percentile) of the per-image,
    per-channel energy rank at ``energy`` (default ``k99``).

    So with the defaults, 90 % of the training residual channels keep at least 99 % of their
    energy ``Σσ²`` under a rank-``R_m`` projection.  The quantile uses numpy's ``higher`` method,
    so the result is an observed energy rank, never an interpolation.  All-zero residual
    channels (``energy == 0``, energy rank 0) carry no information and are ignored.

    Args:
        summary: The ``summary`` frame of :func:`analyse_residuals`.
        energy: Energy fraction; must name an existing column ``k{round(100 * energy)}``
            (0.9 -> ``k90``, 0.99 -> ``k99``).
        quantile: In [0, 1]; 0.5 gives the median.

    Returns:
        An int ``>= 1``; 1 when every residual is zero.

    Raises:
        ValueError: Empty summary, no column for ``energy``, or ``quantile`` outside [0, 1].
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    column = f"k{round(100 * energy)}"
    if column not in summary.columns or not math.isclose(ENERGY_COLUMNS.get(column, energy), energy):
        raise ValueError(
            f"summary has no energy-rank column for energy={energy} (expected {column!r}); "
            f"available: {[c for c in summary.columns if c in ENERGY_COLUMNS]}"
        )
    if summary.empty:
        raise ValueError("suggest_max_rank needs a non-empty summary")
    ranks = summary.loc[summary["energy"] > 0, column].to_numpy()
    if ranks.size == 0:
        return 1
    return max(1, int(np.quantile(ranks, quantile, method="higher")))


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def plot_spectrum_curves(
    curves: pd.DataFrame,
    out_stem: str | os.PathLike[str],
    max_index: int | None = None,
) -> list[Path]:
    """LRDM Fig. 3: normalised magnitude ``σ_i/σ_1``, its derivative and the cumulative magnitude
    ratio vs rank ``i``, as the mean over images and channels with a shaded ±std band (one line
    per dataset; see :func:`mean_curves` for mixed sizes).

    The cumulative panel carries a dashed guide at 90 % and a dotted one at rank 10 (the paper's
    "≈90 % within the top 10 ranks").

    Args:
        curves: The ``curves`` frame of :func:`analyse_residuals`.
        out_stem: Output path without suffix; ``.png`` and ``.pdf`` are written.
        max_index: Show ranks ``i ≤ max_index`` only (all by default).

    Returns:
        The written files.
    """
    mean = mean_curves(curves)
    if max_index is not None:
        mean = mean[mean["i"] <= max_index]
    titles = {
        "normalized_magnitude": ("(a) normalised magnitude", r"$\sigma_i / \sigma_1$"),
        "derivative": ("(b) magnitude derivative", r"$\Delta(\sigma_i / \sigma_1)$"),
        "cumulative_magnitude_ratio": (
            "(c) cumulative magnitude ratio",
            r"$\Sigma_{j \leq i}\,\sigma_j \;/\; \Sigma_j\,\sigma_j$",
        ),
    }
    fig = new_figure(figsize=(PANEL_SIZE_IN * len(CURVE_METRICS), PANEL_SIZE_IN))
    axes = fig.subplots(1, len(CURVE_METRICS), squeeze=False)
    for ax, metric in zip(axes[0], CURVE_METRICS):
        for name, group in mean.groupby("dataset", sort=True):
            x = group["i"].to_numpy()
            mu = group[f"{metric}_mean"].to_numpy()
            sd = group[f"{metric}_std"].to_numpy()
            n_curves = int(group["n"].max())
            label = f"{name} (n = {n_curves})" if name else f"n = {n_curves}"
            (line,) = ax.plot(x, mu, label=label)
            ax.fill_between(x, mu - sd, mu + sd, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)
        title, ylabel = titles[metric]
        ax.set_title(title)
        ax.set_xlabel("rank $i$")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=BAND_ALPHA)
    cumulative = axes[0][-1]
    cumulative.axhline(GUIDE_FRACTION, color="k", linestyle="--", linewidth=1, label=f"{GUIDE_FRACTION:.0%}")
    cumulative.axvline(TOP_RANKS, color="gray", linestyle=":", linewidth=1, label=f"$i = {TOP_RANKS}$")
    cumulative.set_ylim(0, 1.02)
    cumulative.legend(loc="lower right", fontsize="small")
    return save_figure(fig, out_stem)


def _to_display(x: torch.Tensor) -> np.ndarray:
    """Model-space image ``(C, H, W)`` in [-1, 1] -> uint8 ``(H, W, C)``."""
    return from_model_space(x.clamp(-MODEL_RANGE, MODEL_RANGE))


def _residual_display(res: torch.Tensor, scale: float) -> np.ndarray:
    """``|res| / scale`` clipped to [0, 1], as float ``(H, W, C)`` for ``imshow``."""
    return (res.abs() / scale).clamp(0, 1).permute(1, 2, 0).numpy()


def plot_residual_grid(
    index_path: str | os.PathLike[str],
    image_id: str,
    ranks: Sequence[int],
    out_stem: str | os.PathLike[str],
    split: str = "train",
) -> list[Path]:
    """LRDM Fig. 2: GT, input and residual of one pair, then low-rank residuals and reconstructions.

    Top row: (a) GT ``I_0``, (b) input ``I_in``, (c) residual ``|I_res|``; then for each ``k`` the
    rank-``k`` residual ``|Q_k(I_res)|`` (per-channel truncated SVD, :func:`lrdm.core.lowrank.
    project_low_rank`).  Bottom row, under each rank-``k`` residual, the reconstruction
    ``I_0 + Q_k(I_res)`` clipped to [-1, 1].  Residual panels show ``|·|`` per RGB channel divided
    by the largest ``|I_res|`` of the pair, so all residual panels share one scale.  Ranks
    ``k ≥ min(H, W)`` give the full residual (and the input as reconstruction).

    Args:
        index_path: Index file (see :func:`lrdm.data.index.read_index`).
        image_id: The pair to show; must be in ``split``.
        ranks: Ranks ``k ≥ 1`` (the paper uses 50 and 100 at 512²).
        out_stem: Output path without suffix; ``.png`` and ``.pdf`` are written.
        split: Split holding ``image_id``.

    Returns:
        The written files.

    Raises:
        KeyError: ``image_id`` is not in ``split``.
        ValueError: ``ranks`` empty or holding a rank < 1.
    """
    ranks = [int(k) for k in ranks]
    if not ranks or min(ranks) < 1:
        raise ValueError(f"ranks must be a non-empty list of integers >= 1, got {ranks}")
    pairs = PairedImageDataset(read_index(index_path), split)
    try:
        position = pairs.image_ids.index(image_id)
    except ValueError:
        raise KeyError(f"image_id {image_id!r} is not in split {split!r} of {index_path}") from None
    item = pairs[position]
    target, inp = item["target"], item["input"]
    residual = inp - target
    scale = max(float(residual.abs().max()), MIN_PLOT_SCALE)

    n_cols = 3 + len(ranks)
    fig = new_figure(figsize=(GRID_PANEL_IN * n_cols, GRID_PANEL_IN * 2))
    axes = fig.subplots(2, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    height, width = residual.shape[1:]
    fig.suptitle(f"{image_id} ({height}×{width})")
    axes[0][0].imshow(_to_display(target))
    axes[0][0].set_title("(a) GT $I_0$")
    axes[0][1].imshow(_to_display(inp))
    axes[0][1].set_title("(b) input $I_{in}$")
    axes[0][2].imshow(_residual_display(residual, scale))
    axes[0][2].set_title(r"(c) residual $|I_{res}|$")
    axes[1][2].text(
        0.5, 0.5, f"residual panels:\n|·| / {scale:.3g}", ha="center", va="center", transform=axes[1][2].transAxes
    )
    # one batch entry per requested rank: (len(ranks), C, H, W)
    stacked = residual.to(torch.float64).expand(len(ranks), *residual.shape)
    projected = project_low_rank(stacked, torch.tensor(ranks, dtype=torch.long)).to(residual.dtype)
    for col, (k, low_rank) in enumerate(zip(ranks, projected), start=3):
        axes[0][col].imshow(_residual_display(low_rank, scale))
        axes[0][col].set_title(f"$Q_k(I_{{res}})$, k = {k}")
        axes[1][col].imshow(_to_display(target + low_rank))
        axes[1][col].set_title(f"$I_0 + Q_k$, k = {k}")
    return save_figure(fig, out_stem)
