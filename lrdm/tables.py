"""Result tables of the LRDM paper, rebuilt from the per-image score Parquet files.

Every evaluation of a (run, steps) pair writes one row per test image (``lrdm.evaluate.RESULT_COLUMNS``).
This module reads those files, averages them the way the paper reports numbers and lays them out like
the paper's tables:

* :func:`summarize` first averages over the test images of each training seed, then over seeds
  (mean and sample standard deviation).  With a single seed the standard deviation is **NaN** (a sample
  standard deviation of one value is undefined), and the written tables show ``mean ± std`` only where
  the standard deviation exists, i.e. where more than one seed was trained.
* The builders (:func:`schedulers_table`, :func:`orders_table`, :func:`rank_sweep_table`,
  :func:`steps_table`, :func:`feasibility_table`, :func:`sampling_methods_table`, :func:`main_table`)
  return *display frames*: label columns, a ``source`` column (``"this run"`` or ``"reported by the
  paper"``), and per dataset (or per step count) raw numeric metric columns named ``"<Dataset> PSNR"`` /
  ``"<Dataset> SSIM"``, each followed by its ``"… std"`` partner.  A suggested caption is stored in
  ``frame.attrs["caption"]`` and the sampling steps used per dataset in ``frame.attrs["steps"]``.
* :func:`write_table` writes a display frame as CSV (raw numbers), GitHub Markdown and a booktabs LaTeX
  table (PSNR with 2 decimals, SSIM with 4, ``mean ± std`` when the std partner is present).

Unless a builder is given ``steps``, it uses for each dataset the sampling-step count at which the most
runs were evaluated (ties go to the larger count), see :func:`select_steps`.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .reported import (
    LRDM_TAB1,
    LRDM_TAB2,
    LRDM_TAB3,
    LRDM_TAB4,
    LRDM_TAB5,
    RDDM_TAB1,
    REPORTED_SOURCE,
    reported_frame,
)

#: Columns of the score files that the tables read (a subset of ``lrdm.evaluate.RESULT_COLUMNS``).
REQUIRED_COLUMNS = (
    "dataset", "run", "process", "objective", "rank_spec", "scheduler", "order", "rank", "steps", "eta",
    "seed", "image_id", "psnr", "ssim", "input_psnr", "input_ssim",
)
#: Per-image metrics averaged by :func:`summarize`.
METRICS = ("psnr", "ssim", "input_psnr", "input_ssim")
#: Display names of the metrics in table headers.
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM"}
#: Value of the ``source`` column for rows measured by this pipeline.
THIS_RUN = "this run"
#: Suffix of the column holding a metric's standard deviation over seeds.
STD_SUFFIX = " std"

#: Rank schedulers in the order tables list them (``full`` = no projection).
SCHEDULER_ORDER = ("full", "fixed", "lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
#: The time-varying schedulers of LRDM Tab. 3, in the paper's row order.
DYNAMIC_SCHEDULERS = ("lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
#: The polynomial schedulers of LRDM Tab. 4, in the paper's row order.
POLY_SCHEDULERS = ("poly_decrease", "poly_increase")
#: Training objectives in RDDM Tab. 1's row order, with the paper's names.
OBJECTIVE_LABELS = {"pred_res": "SM-Res", "pred_noise": "SM-N", "pred_res_noise": "SM-Res-N"}
#: The objective used unless a run says otherwise (it is left out of row labels).
DEFAULT_OBJECTIVE = "pred_res_noise"
#: How each objective obtains the term it does not predict (RDDM Eq. 16 under a low-rank forward process).
OBJECTIVE_NOTES = {
    "pred_res": "noise derived from the predicted residual by RDDM Eq. 16 (approximate under a low-rank "
                "forward process)",
    "pred_noise": "residual derived from the predicted noise by RDDM Eq. 16 (approximate under a low-rank "
                  "forward process)",
    "pred_res_noise": "residual and noise both predicted (no conversion)",
}
#: Row names of LRDM Tab. 5 by (process, low rank?).
FEASIBILITY_LABELS = {
    ("rddm", False): "RDDM",
    ("rddm", True): "RDDM + Low-Rank",
    ("resshift", False): "ResShift",
    ("resshift", True): "ResShift + Low-Rank",
}
#: Method names for our own rows in the main table by (process, low rank?).
METHOD_LABELS = {
    ("rddm", False): "RDDM",
    ("rddm", True): "LRDM",
    ("resshift", False): "ResShift",
    ("resshift", True): "ResShift + Low-Rank",
}
#: Display names of the datasets, in the order tables list them; other datasets follow alphabetically.
DATASET_LABELS = {
    "raindrop": "Raindrop",
    "rain1400": "Rain1400",
    "gopro": "GoPro",
    "realblur_j": "RealBlur-J",
    "realblur_r": "RealBlur-R",
    "istd": "ISTD",
    "lol": "LOL",
    "celeba": "CelebA",
    "celeba_hq": "CelebA-HQ",
}
#: Row keys added to a table only when they take more than one value among the rows used.
OPTIONAL_KEYS = ("process", "objective", "eta")
#: Reported tables shown beside our rows by :func:`main_table` by default.
MAIN_REPORTED_TABLES = (LRDM_TAB1, LRDM_TAB2)

#: Decimals in Markdown/LaTeX by metric (matched case-insensitively in the column name).
PSNR_DECIMALS = 2
SSIM_DECIMALS = 4
#: Decimals of other non-integral floats in Markdown/LaTeX.
OTHER_DECIMALS = 3
#: Cell text for a missing value in Markdown/LaTeX.
MISSING_TEXT = "–"
PLUS_MINUS = "±"
#: Label of the degraded-input row of :func:`rank_sweep_table`.
INPUT_ROW = "input (degraded)"
FULL_RANK_ROW = "full"


# --------------------------------------------------------------------------------------------------
# Reading and summarising
# --------------------------------------------------------------------------------------------------


def read_scores(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenates per-image score Parquet files.

    Raises:
        ValueError: when no path is given, or a file lacks one of :data:`REQUIRED_COLUMNS` (the message
            names the file and the missing columns).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    frames = []
    for path in paths:
        frame = pd.read_parquet(path)
        missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(f"score file {os.fspath(path)!r} lacks required column(s): {', '.join(missing)}")
        frames.append(frame)
    if not frames:
        raise ValueError("read_scores needs at least one score file")
    scores = pd.concat(frames, ignore_index=True)
    return scores.astype({"order": "Int64", "rank": "Int64"})


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def summarize(scores: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean over images per ``by + [seed]``, then mean and sample std over seeds per ``by``.

    Returns one row per ``by`` group with the ``by`` columns and ``psnr_mean, psnr_std, ssim_mean,
    ssim_std, input_psnr_mean, input_ssim_mean, n_seeds, n_images`` (``n_images``: distinct image ids
    over all seeds).  The std is NaN with a single seed.  Groups with missing key values (e.g. the
    ``order`` of a linear scheduler) are kept.
    """
    by = list(by)
    _require(scores, [*by, "seed", "image_id", *METRICS], "summarize")
    if scores.empty:
        raise ValueError("summarize: no score rows")
    constant = "__all__"
    keys = by or [constant]
    frame = scores.assign(**{constant: 0}) if not by else scores
    per_seed = (
        frame.groupby([*keys, "seed"], dropna=False, sort=True)[list(METRICS)].mean().reset_index()
    )
    grouped = per_seed.groupby(keys, dropna=False, sort=True)
    summary = grouped.agg(
        psnr_mean=("psnr", "mean"),
        psnr_std=("psnr", "std"),
        ssim_mean=("ssim", "mean"),
        ssim_std=("ssim", "std"),
        input_psnr_mean=("input_psnr", "mean"),
        input_ssim_mean=("input_ssim", "mean"),
        n_seeds=("seed", "nunique"),
    )
    summary["n_images"] = frame.groupby(keys, dropna=False, sort=True)["image_id"].nunique()
    summary = summary.reset_index()
    if not by:
        summary = summary.drop(columns=constant)
    return summary


def dataset_label(dataset: str) -> str:
    """Display name of a dataset (the key itself when unknown, e.g. ``synthetic_rain``)."""
    return DATASET_LABELS.get(dataset, dataset)


def _dataset_order(datasets: Iterable[str]) -> list[str]:
    known = list(DATASET_LABELS)
    unique = list(dict.fromkeys(datasets))
    return sorted(unique, key=lambda d: (0, known.index(d), "") if d in known else (1, 0, d))


def select_steps(scores: pd.DataFrame, steps: int | None = None) -> pd.DataFrame:
    """Keeps the rows of one sampling-step count per dataset.

    With ``steps`` given, keeps that count everywhere (ValueError if no row has it).  Otherwise, for
    each dataset, the count at which the most distinct runs were evaluated (ties: the larger count).
    """
    _require(scores, ["dataset", "run", "steps"], "select_steps")
    if steps is not None:
        kept = scores[scores["steps"] == steps]
        if kept.empty:
            available = sorted(int(s) for s in scores["steps"].unique())
            raise ValueError(f"no scores at {steps} sampling steps; available: {available}")
        return kept
    parts = []
    for _, part in scores.groupby("dataset", sort=False):
        runs_per_steps = part.groupby("steps")["run"].nunique()
        best = max(runs_per_steps.index, key=lambda s: (runs_per_steps[s], s))
        parts.append(part[part["steps"] == best])
    return pd.concat(parts) if parts else scores


def _steps_used(frame: pd.DataFrame) -> dict[str, list[int]]:
    return {
        dataset: sorted(int(s) for s in frame.loc[frame["dataset"] == dataset, "steps"].unique())
        for dataset in _dataset_order(frame["dataset"].unique())
    }


def _steps_text(steps: dict[str, list[int]]) -> str:
    parts = [f"{dataset_label(d)} {', '.join(str(s) for s in counts)}" for d, counts in steps.items()]
    return "Sampling steps: " + "; ".join(parts) + "."


_AVERAGING_TEXT = (
    "Mean over test images, then over training seeds (mean ± std where more than one seed was trained)."
)


# --------------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Hashable, comparable plain value: None for missing, int/float for numpy numbers."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _varying(frame: pd.DataFrame, candidates: Sequence[str] = OPTIONAL_KEYS) -> list[str]:
    return [key for key in candidates if frame[key].nunique(dropna=False) > 1]


def _normalise_rank_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """Blank ``order`` outside polynomial schedulers and ``rank`` outside ``fixed`` (they carry no meaning)."""
    frame = scores.copy()
    frame["order"] = frame["order"].astype("Int64").where(frame["scheduler"].isin(POLY_SCHEDULERS))
    frame["rank"] = frame["rank"].astype("Int64").where(frame["scheduler"] == "fixed")
    return frame


def _prepare(scores: pd.DataFrame, keep: pd.Series | None, need: str, builder: str,
             steps: int | None) -> pd.DataFrame:
    _require(scores, REQUIRED_COLUMNS, builder)
    frame = _normalise_rank_columns(scores)
    if keep is not None:
        frame = frame[keep.to_numpy()]
    if frame.empty:
        present = sorted(scores["rank_spec"].astype(str).unique()) if "rank_spec" in scores else []
        raise ValueError(f"{builder}: the scores hold no {need} (rank specs present: {present})")
    return select_steps(frame, steps)


def _wide(
    frame: pd.DataFrame,
    row_keys: Sequence[str],
    column_key: str = "dataset",
    column_label: Callable[[Any], str] = dataset_label,
    metrics: Sequence[str] = ("psnr", "ssim"),
    column_order: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """One row per ``row_keys`` group; per ``column_key`` value a mean and a std column per metric."""
    summary = summarize(frame, [column_key, *row_keys])
    if column_order is None:
        column_order = (_dataset_order(summary[column_key].unique()) if column_key == "dataset"
                        else sorted(summary[column_key].unique()))
    metric_columns = [
        name for value in column_order for metric in metrics
        for name in (_metric_column(column_label(value), metric),
                     _metric_column(column_label(value), metric) + STD_SUFFIX)
    ]
    rows: dict[tuple[Hashable, ...], dict[str, Any]] = {}
    for record in summary.to_dict("records"):
        key = tuple(_clean(record[k]) for k in row_keys)
        row = rows.setdefault(key, {**dict(zip(row_keys, key)), "n_seeds": int(record["n_seeds"])})
        row["n_seeds"] = min(row["n_seeds"], int(record["n_seeds"]))
        for metric in metrics:
            name = _metric_column(column_label(record[column_key]), metric)
            row[name] = record[f"{metric}_mean"]
            row[name + STD_SUFFIX] = record[f"{metric}_std"]
    wide = pd.DataFrame(list(rows.values()), columns=[*row_keys, *metric_columns, "n_seeds"])
    wide["source"] = THIS_RUN
    return wide


def _metric_column(prefix: str, metric: str) -> str:
    return f"{prefix} {METRIC_LABELS[metric]}"


def _reported_wide(
    table: str,
    datasets: Iterable[str],
    key: Callable[[dict[str, Any]], dict[str, Any]],
    metrics: Sequence[str] = ("psnr", "ssim"),
) -> pd.DataFrame:
    """Reported rows of ``table`` for ``datasets``, one row per ``key(record)``, metrics per dataset."""
    reported = reported_frame(table)
    reported = reported[reported["dataset"].isin(list(datasets))]
    rows: dict[tuple[Hashable, ...], dict[str, Any]] = {}
    for record in reported.to_dict("records"):
        labels = key(record)
        row = rows.setdefault(tuple(_clean(v) for v in labels.values()), {**labels, "source": REPORTED_SOURCE})
        for metric in metrics:
            value = _clean(record[metric])
            if value is not None:
                row[_metric_column(dataset_label(record["dataset"]), metric)] = value
    return pd.DataFrame(list(rows.values()))


def _finish(
    parts: Sequence[pd.DataFrame],
    label_columns: Sequence[str],
    sort_key: Callable[[pd.Series], tuple[Any, ...]],
    caption: str,
    steps: dict[str, list[int]],
    integer_columns: Sequence[str] = ("order", "rank"),
) -> pd.DataFrame:
    """Concatenates our and reported rows, sorts them, orders the columns and attaches the caption."""
    parts = [part for part in parts if not part.empty]
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    order = sorted(range(len(table)), key=lambda i: sort_key(table.iloc[i]))
    table = table.iloc[order].reset_index(drop=True)
    metric_columns = [c for c in parts[0].columns if c not in (*label_columns, "source", "n_seeds")]
    extra_metrics = [c for part in parts[1:] for c in part.columns
                     if c not in (*label_columns, "source", "n_seeds", *metric_columns)]
    for column in dict.fromkeys(extra_metrics):
        metric_columns.append(column)
        if not column.endswith(STD_SUFFIX):
            metric_columns.append(column + STD_SUFFIX)
    columns = [*label_columns, "source", *dict.fromkeys(metric_columns), "n_seeds"]
    table = table.reindex(columns=columns)
    for column in (*integer_columns, "n_seeds"):
        if column in table.columns:
            table[column] = table[column].astype("Int64")
    table.attrs["caption"] = caption
    table.attrs["steps"] = steps
    return table


def _source_rank(row: pd.Series) -> int:
    return 0 if row["source"] == THIS_RUN else 1


def _number_or(value: Any, default: float) -> float:
    value = _clean(value)
    return default if value is None else float(value)


def _text_or_empty(value: Any) -> str:
    value = _clean(value)
    return "" if value is None else str(value)


def _position(value: Any, ordering: Sequence[Any]) -> int:
    return list(ordering).index(value) if value in ordering else len(ordering)


def _spec_sort_key(scheduler: Any, rank: Any, order: Any) -> tuple[Any, ...]:
    return (_position(scheduler, SCHEDULER_ORDER), _text_or_empty(scheduler),
            _number_or(rank, math.inf), _number_or(order, math.inf))


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def schedulers_table(scores: pd.DataFrame, steps: int | None = None, include_reported: bool = True) -> pd.DataFrame:
    """LRDM Tab. 3: one row per time-varying rank scheduler (with its order), PSNR/SSIM per dataset.

    Reported rows (``LRDM Tab. 3``, poly rows at p=3) are added for the datasets present in ``scores``
    when ``include_reported``.  Raises ValueError when no run uses a time-varying scheduler.
    """
    frame = _prepare(scores, scores["scheduler"].isin(DYNAMIC_SCHEDULERS),
                     f"runs with a time-varying rank scheduler ({', '.join(DYNAMIC_SCHEDULERS)})",
                     "schedulers_table", steps)
    optional = _varying(frame)
    row_keys = ["scheduler", "order", *optional]
    ours = _wide(frame, row_keys)
    parts = [ours]
    if include_reported:
        parts.append(_reported_wide(LRDM_TAB3, frame["dataset"].unique(),
                                    lambda r: {"scheduler": r["scheduler"], "order": r["order"]}))
    used = _steps_used(frame)
    caption = ("Rank schedulers (LRDM Tab. 3). " + _steps_text(used) + " " + _AVERAGING_TEXT)
    return _finish(
        parts, row_keys,
        lambda r: (_position(r["scheduler"], DYNAMIC_SCHEDULERS), _number_or(r["order"], 0), _source_rank(r),
                   *(_text_or_empty(r[k]) for k in optional)),
        caption, used,
    )


def orders_table(scores: pd.DataFrame, steps: int | None = None, include_reported: bool = True) -> pd.DataFrame:
    """LRDM Tab. 4: rows poly_decrease / poly_increase × polynomial order p, PSNR/SSIM per dataset.

    Raises ValueError when no run uses a polynomial scheduler.
    """
    frame = _prepare(scores, scores["scheduler"].isin(POLY_SCHEDULERS),
                     "runs with a polynomial rank scheduler (poly_decrease, poly_increase)", "orders_table", steps)
    optional = _varying(frame)
    row_keys = ["scheduler", "order", *optional]
    parts = [_wide(frame, row_keys)]
    if include_reported:
        parts.append(_reported_wide(LRDM_TAB4, frame["dataset"].unique(),
                                    lambda r: {"scheduler": r["scheduler"], "order": r["order"]}))
    used = _steps_used(frame)
    caption = "Polynomial scheduler orders (LRDM Tab. 4). " + _steps_text(used) + " " + _AVERAGING_TEXT
    return _finish(
        parts, row_keys,
        lambda r: (_position(r["scheduler"], POLY_SCHEDULERS), _number_or(r["order"], 0), _source_rank(r),
                   *(_text_or_empty(r[k]) for k in optional)),
        caption, used,
    )


def rank_sweep_table(scores: pd.DataFrame, steps: int | None = None) -> pd.DataFrame:
    """LRDM Fig. 6 data: rows = fixed rank (ascending), then ``full`` and the degraded input; PSNR/SSIM
    per dataset.  The input row holds ``input_psnr``/``input_ssim`` (no std).

    Raises ValueError when there is neither a fixed-rank nor a full-rank run.
    """
    frame = _prepare(scores, scores["scheduler"].isin(["fixed", "full"]), "fixed-rank or full-rank runs",
                     "rank_sweep_table", steps)
    optional = _varying(frame)
    row_keys = ["scheduler", "rank", *optional]
    ours = _wide(frame, row_keys)
    ours.insert(0, "rank_label", [
        FULL_RANK_ROW if scheduler == "full" else int(rank)
        for scheduler, rank in zip(ours["scheduler"], ours["rank"])
    ])
    summary = summarize(frame, ["dataset"])
    input_row: dict[str, Any] = {"rank_label": INPUT_ROW, "scheduler": None, "rank": None, "source": THIS_RUN}
    for record in summary.to_dict("records"):
        label = dataset_label(record["dataset"])
        input_row[_metric_column(label, "psnr")] = record["input_psnr_mean"]
        input_row[_metric_column(label, "ssim")] = record["input_ssim_mean"]
    table = pd.concat([ours, pd.DataFrame([input_row])], ignore_index=True)
    used = _steps_used(frame)
    caption = ("PSNR/SSIM versus fixed rank (LRDM Fig. 6 data); 'full' is the run without projection, "
               "'input (degraded)' scores the degraded input. " + _steps_text(used) + " " + _AVERAGING_TEXT)
    result = _finish(
        [table], ["rank_label", *optional],
        lambda r: (2 if r["rank_label"] == INPUT_ROW else 1 if r["rank_label"] == FULL_RANK_ROW else 0,
                   _number_or(r["rank"], 0), *(_text_or_empty(r[k]) for k in optional)),
        caption, used, integer_columns=(),
    )
    return result.rename(columns={"rank_label": "rank"})


def steps_table(scores: pd.DataFrame, metrics: Sequence[str] = ("psnr",)) -> pd.DataFrame:
    """LRDM Fig. 8 data: rows = (dataset, rank_spec), columns = ``"PSNR (S steps)"`` per evaluated S.

    ``metrics`` may add ``"ssim"``.  Raises ValueError on an empty frame.
    """
    _require(scores, REQUIRED_COLUMNS, "steps_table")
    if scores.empty:
        raise ValueError("steps_table: the scores hold no rows")
    unknown = [m for m in metrics if m not in METRIC_LABELS]
    if unknown:
        raise ValueError(f"steps_table: unknown metric(s) {unknown}; choose from {list(METRIC_LABELS)}")
    frame = _normalise_rank_columns(scores)
    optional = _varying(frame)
    row_keys = ["dataset", "rank_spec", "scheduler", "rank", "order", *optional]
    step_counts = sorted(int(s) for s in frame["steps"].unique())
    ours = _wide(frame, row_keys, column_key="steps",
                 column_label=lambda s: "" if False else f"({int(s)} step{'s' if int(s) != 1 else ''})",
                 metrics=metrics, column_order=step_counts)
    # Put the metric name first: "PSNR (5 steps)" reads better than "(5 steps) PSNR".
    renamed = {}
    for column in ours.columns:
        for label in METRIC_LABELS.values():
            suffix = f" {label}"
            if column.startswith("(") and (column.endswith(suffix) or column.endswith(suffix + STD_SUFFIX)):
                steps_part, _, rest = column.partition(") ")
                renamed[column] = f"{rest.replace(STD_SUFFIX, '')} {steps_part})" + (
                    STD_SUFFIX if column.endswith(STD_SUFFIX) else "")
    ours = ours.rename(columns=renamed)
    ours["dataset"] = [dataset_label(d) for d in ours["dataset"]]
    dataset_rank = {dataset_label(d): i for i, d in enumerate(_dataset_order(frame["dataset"].unique()))}
    caption = ("Restoration quality versus sampling steps (LRDM Fig. 8 data). " + _AVERAGING_TEXT)
    table = _finish(
        [ours], ["dataset", "rank_spec", *optional],
        lambda r: (dataset_rank[r["dataset"]], *_spec_sort_key(r["scheduler"], r["rank"], r["order"]),
                   *(_text_or_empty(r[k]) for k in optional)),
        caption, {d: step_counts for d in _dataset_order(frame["dataset"].unique())}, integer_columns=(),
    )
    return table


def feasibility_table(scores: pd.DataFrame, steps: int | None = None, include_reported: bool = True) -> pd.DataFrame:
    """LRDM Tab. 5: rows RDDM, RDDM + Low-Rank, ResShift, ResShift + Low-Rank, PSNR/SSIM per dataset.

    A row is (process, rank_spec); ``rank_spec`` is a column, so several low-rank specs of one process
    appear as separate rows.  Raises ValueError when no rddm or resshift run is present.
    """
    processes = sorted({process for process, _ in FEASIBILITY_LABELS})
    frame = _prepare(scores, scores["process"].isin(processes), "rddm or resshift runs", "feasibility_table",
                     steps)
    optional = [key for key in _varying(frame) if key != "process"]
    row_keys = ["process", "rank_spec", "scheduler", "rank", "order", *optional]
    ours = _wide(frame, row_keys)
    ours.insert(0, "model", [FEASIBILITY_LABELS[(p, spec != "full")] for p, spec in zip(ours["process"], ours["rank_spec"])])
    parts = [ours]
    if include_reported:
        parts.append(_reported_wide(
            LRDM_TAB5, frame["dataset"].unique(),
            lambda r: {"model": r["method"], "process": r["process"], "low_rank": bool(r["low_rank"])},
        ))
    labels = list(FEASIBILITY_LABELS.values())
    used = _steps_used(frame)
    caption = ("Low-rank feasibility across processes (LRDM Tab. 5). " + _steps_text(used) + " "
               + _AVERAGING_TEXT)
    return _finish(
        parts, ["model", "rank_spec", *optional],
        lambda r: (_position(r["model"], labels), _source_rank(r),
                   *_spec_sort_key(r.get("scheduler"), r.get("rank"), r.get("order")),
                   *(_text_or_empty(r[k]) for k in optional)),
        caption, used, integer_columns=(),
    )


def sampling_methods_table(scores: pd.DataFrame, steps: int | None = None,
                           include_reported: bool = True) -> pd.DataFrame:
    """RDDM Tab. 1: rows SM-Res (pred_res), SM-N (pred_noise), SM-Res-N (pred_res_noise), PSNR/SSIM per
    dataset, with a ``note`` column on how the missing term is obtained.

    SM-Res and SM-N convert one prediction into the other with RDDM Eq. 16, which assumes the full
    residual was injected; under a low-rank forward process that conversion is only approximate.
    Raises ValueError when no run has one of the three objectives.
    """
    frame = _prepare(scores, scores["objective"].isin(list(OBJECTIVE_LABELS)),
                     f"runs with objective {', '.join(OBJECTIVE_LABELS)}", "sampling_methods_table", steps)
    optional = _varying(frame, ("process", "eta"))
    row_keys = ["objective", "rank_spec", "scheduler", "rank", "order", *optional]
    ours = _wide(frame, row_keys)
    ours.insert(0, "sampling method", [OBJECTIVE_LABELS[o] for o in ours["objective"]])
    parts = [ours]
    if include_reported:
        parts.append(_reported_wide(
            RDDM_TAB1, frame["dataset"].unique(),
            lambda r: {"sampling method": r["method"], "objective": r["objective"], "rank_spec": "full (RDDM)"},
        ))
    table_parts = [part.assign(note=[OBJECTIVE_NOTES[o] for o in part["objective"]]) for part in parts
                   if not part.empty]
    used = _steps_used(frame)
    caption = ("Sampling methods (RDDM Tab. 1). SM-Res and SM-N obtain the term they do not predict through "
               "RDDM Eq. 16, which assumes the full residual was injected: under a low-rank forward process "
               "that conversion is only approximate; SM-Res-N needs no conversion. " + _steps_text(used) + " "
               + _AVERAGING_TEXT)
    objectives = list(OBJECTIVE_LABELS)
    table = _finish(
        table_parts, ["sampling method", "rank_spec", *optional],
        lambda r: (_position(r["objective"], objectives), _source_rank(r),
                   *_spec_sort_key(r.get("scheduler"), r.get("rank"), r.get("order")),
                   *(_text_or_empty(r[k]) for k in optional)),
        caption, used, integer_columns=(),
    )
    notes = table.pop("note") if "note" in table.columns else None
    if notes is None:
        table["note"] = [OBJECTIVE_NOTES[OBJECTIVE_LABELS_INV[label]] for label in table["sampling method"]]
    else:
        table["note"] = notes
    return table


#: Objective by its RDDM row name.
OBJECTIVE_LABELS_INV = {label: objective for objective, label in OBJECTIVE_LABELS.items()}


def method_label(process: str, rank_spec: str, objective: str | None = None, eta: float | None = None) -> str:
    """Row name of one of our runs, e.g. ``"LRDM (ours, poly_decrease-p3)"`` or ``"RDDM (ours, full)"``.

    The objective is named only when it differs from :data:`DEFAULT_OBJECTIVE`, ``eta`` only when given.
    """
    base = METHOD_LABELS.get((process, rank_spec != "full"), process)
    details = ["ours", rank_spec]
    if objective is not None and objective != DEFAULT_OBJECTIVE:
        details.append(OBJECTIVE_LABELS.get(objective, objective))
    if eta is not None:
        details.append(f"η={eta:g}")
    return f"{base} ({', '.join(details)})"


def main_table(scores: pd.DataFrame, datasets: Sequence[str] | None = None, steps: int | None = None,
               reported_tables: Sequence[str] = MAIN_REPORTED_TABLES) -> pd.DataFrame:
    """LRDM Tab. 1/2 layout: the paper's reported rows (paper order) and our rows (one per process,
    objective and rank_spec evaluated), with a ``method`` and a ``source`` column, PSNR/SSIM per dataset.

    ``datasets`` (None: every dataset in ``scores``) selects the columns; a dataset the paper does not
    report just has our rows.  Raises ValueError when ``scores`` holds none of ``datasets``.
    """
    _require(scores, REQUIRED_COLUMNS, "main_table")
    wanted = list(dict.fromkeys(datasets)) if datasets is not None else list(scores["dataset"].unique())
    keep = scores["dataset"].isin(wanted)
    present = sorted(scores["dataset"].astype(str).unique())
    if not keep.any():
        raise ValueError(f"main_table: no scores for dataset(s) {wanted}; datasets present: {present}")
    frame = _prepare(scores, keep, f"scores for {wanted}", "main_table", steps)
    optional = _varying(frame, ("eta",))
    row_keys = ["process", "objective", "rank_spec", "scheduler", "rank", "order", *optional]
    ours = _wide(frame, row_keys)
    ours.insert(0, "method", [
        method_label(r["process"], r["rank_spec"], r["objective"], r["eta"] if "eta" in optional else None)
        for r in ours.to_dict("records")
    ])
    parts = [ours]
    paper_order: dict[str, int] = {}
    for table_name in reported_tables:
        reported = _reported_wide(table_name, wanted, lambda r: {"method": r["method"]})
        if not reported.empty:
            parts.append(reported)
        for method in reported_frame(table_name)["method"]:
            paper_order.setdefault(method, len(paper_order))
    # merge reported rows of the same method coming from several tables into one row
    if len(parts) > 2:
        merged = pd.concat(parts[1:], ignore_index=True).groupby("method", sort=False).first().reset_index()
        parts = [ours, merged]
    used = _steps_used(frame)
    caption = ("Comparison with the paper's reported numbers (LRDM Tab. 1/2 layout); rows marked "
               f"'{REPORTED_SOURCE}' are quoted from the paper, rows marked '{THIS_RUN}' were measured here. "
               + _steps_text(used) + " " + _AVERAGING_TEXT)
    ours_rank = {
        (r["method"]): i for i, r in enumerate(ours.assign(
            _key=[(0 if p == "rddm" and s != "full" else 1, *_spec_sort_key(sc, rk, od))
                  for p, s, sc, rk, od in zip(ours["process"], ours["rank_spec"], ours["scheduler"],
                                              ours["rank"], ours["order"])]
        ).sort_values("_key", kind="stable").to_dict("records"))
    }
    table = _finish(
        parts, ["method"],
        lambda r: ((1, ours_rank.get(r["method"], 0)) if r["source"] == THIS_RUN
                   else (0, paper_order.get(r["method"], len(paper_order)))),
        caption, used, integer_columns=(),
    )
    wanted_labels = [dataset_label(d) for d in _dataset_order(wanted)]
    metric_columns = [
        name for label in wanted_labels for metric in METRIC_LABELS
        for name in (_metric_column(label, metric), _metric_column(label, metric) + STD_SUFFIX)
    ]
    return table.reindex(columns=["method", "source", *metric_columns, "n_seeds"]).pipe(_keep_attrs, table)


def _keep_attrs(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    new.attrs.update(old.attrs)
    return new


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _decimals(column: str) -> int | None:
    lower = column.lower()
    if "ssim" in lower:
        return SSIM_DECIMALS
    if "psnr" in lower:
        return PSNR_DECIMALS
    return None


def _std_partner(column: str, columns: Sequence[str]) -> str | None:
    candidates = [column + STD_SUFFIX]
    if column.endswith("_mean"):
        candidates.append(column[: -len("_mean")] + "_std")
    for candidate in candidates:
        if candidate in columns:
            return candidate
    return None


def _format_value(value: Any, decimals: int | None) -> str:
    value = _clean(value)
    if value is None:
        return MISSING_TEXT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if decimals is not None:
            return f"{value:.{decimals}f}"
        return str(int(value)) if value.is_integer() else f"{value:.{OTHER_DECIMALS}f}"
    return str(value)


def display_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[bool]]:
    """String version of a table for Markdown/LaTeX: metrics rounded, ``mean ± std`` where a std partner
    column holds a value, partner columns dropped.  Also returns, per column, whether it is numeric
    (right-aligned)."""
    columns = list(frame.columns)
    partners = {c: _std_partner(c, columns) for c in columns}
    std_columns = {p for p in partners.values() if p is not None}
    out: dict[str, list[str]] = {}
    numeric: list[bool] = []
    for column in columns:
        if column in std_columns:
            continue
        decimals = _decimals(column)
        partner = partners[column]
        cells = []
        for i in range(len(frame)):
            text = _format_value(frame[column].iloc[i], decimals)
            if partner is not None and _clean(frame[partner].iloc[i]) is not None and text != MISSING_TEXT:
                text = f"{text} {PLUS_MINUS} {_format_value(frame[partner].iloc[i], decimals)}"
            cells.append(text)
        name = column[: -len("_mean")] if column.endswith("_mean") and partner is not None else column
        out[name] = cells
        numeric.append(pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]))
    return pd.DataFrame(out, columns=list(out)), numeric


def to_markdown(frame: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table of :func:`display_frame` (numeric columns right-aligned)."""
    shown, numeric = display_frame(frame)

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(shown.columns), "| " + " | ".join("---:" if n else ":---" for n in numeric) + " |"]
    lines += [line(row) for row in shown.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", PLUS_MINUS: r"$\pm$",
    MISSING_TEXT: "--", "²": r"\textsuperscript{2}", "η": r"$\eta$", "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Escapes LaTeX special characters (and the few non-ASCII symbols the tables use)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, caption: str, label: str | None = None) -> str:
    """A ``table`` environment with a booktabs ``tabular`` of :func:`display_frame` and ``caption``."""
    shown, numeric = display_frame(frame)
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}"]
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(latex_escape(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in shown.itertuples(index=False, name=None)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_table(frame: pd.DataFrame, out_stem: str | os.PathLike[str], caption: str) -> list[Path]:
    """Writes ``out_stem.csv`` (raw numbers), ``out_stem.md`` (caption line + Markdown table) and
    ``out_stem.tex`` (booktabs LaTeX table with ``caption``); returns the three paths.  Each file is
    written atomically (temporary file, then rename)."""
    stem = Path(out_stem)
    csv_path, md_path, tex_path = (stem.with_name(stem.name + suffix) for suffix in (".csv", ".md", ".tex"))
    _write_atomic(csv_path, frame.to_csv(index=False))
    _write_atomic(md_path, f"**{caption}**\n\n" + to_markdown(frame))
    _write_atomic(tex_path, to_latex(frame, caption, label=f"tab:{stem.name}"))
    return [csv_path, md_path, tex_path]
