"""Result tables of the LRDM paper, rebuilt from the per-image score Parquet files.

Every evaluation of a (run, steps) pair writes one row per test image (``lrdm.evaluation.evaluate.RESULT_COLUMNS``).
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
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from lrdm.errors import DataError
from lrdm.evaluation.columns import SCORE_KEY_COLUMNS
from lrdm.results.claims import claims_table
from lrdm.results.degraded import input_rows
from lrdm.results.render import STD_SUFFIX, clean_value
from lrdm.results.reported import (
    LRDM_TAB1,
    LRDM_TAB2,
    LRDM_TAB3,
    LRDM_TAB4,
    LRDM_TAB5,
    RDDM_TAB1,
    REPORTED_SOURCE,
    reported_frame,
)
from lrdm.vocab import (
    DEFAULT_OBJECTIVE,
    DEFAULT_PROCESS,
    DYNAMIC_KINDS,
    OBJECTIVE_LABELS,
    OFFICIAL_RUN,
    POLY_KINDS,
    PROCESS_DEFAULT_OBJECTIVES,
    RANK_KINDS,
)

#: Per-image metrics averaged by :func:`summarize`.
METRICS = ("psnr", "ssim", "input_psnr", "input_ssim")
#: Display names of the metrics in table headers.
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM"}
#: Value of the ``source`` column for rows measured by this pipeline.
THIS_RUN = "this run"

#: The polynomial schedulers of LRDM Tab. 4, in the paper's row order.
POLY_SCHEDULERS = tuple(reversed(POLY_KINDS))
#: How each objective obtains the term it does not predict (RDDM Eq. 16 under a low-rank forward process).
OBJECTIVE_NOTES = {
    "pred_res": "noise derived from the predicted residual by RDDM Eq. 16 (exact for a full-rank forward "
    "process, approximate under a low-rank one)",
    "pred_noise": "residual derived from the predicted noise by RDDM Eq. 16 (exact for a full-rank forward "
    "process, approximate under a low-rank one)",
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
#: Row name of the authors' weights evaluated here (score rows of run :data:`lrdm.vocab.OFFICIAL_RUN`).
OFFICIAL_LABEL = "RDDM, official weights (evaluated here)"
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

#: Label of the degraded-input row of :func:`rank_sweep_table`.
INPUT_ROW = "input (degraded)"
FULL_RANK_ROW = "full"


# --------------------------------------------------------------------------------------------------
# Reading and summarising
# --------------------------------------------------------------------------------------------------


def read_scores(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenates per-image score Parquet files.

    Raises:
        ValueError: when no path is given, or a file lacks one of :data:`SCORE_KEY_COLUMNS` (the message
            names the file and the missing columns).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    frames = []
    for path in paths:
        frame = pd.read_parquet(path)
        missing = [column for column in SCORE_KEY_COLUMNS if column not in frame.columns]
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


SHOWN_IMAGES = 5
"""Image ids an error lists before it counts the rest."""


def _require_finite(scores: pd.DataFrame) -> None:
    """No metric may be infinite (e.g. the PSNR of an input equal to its target): a mean of it is ``inf``."""
    for metric in METRICS:
        values = pd.to_numeric(scores[metric], errors="coerce")
        infinite = scores.loc[values.isin([math.inf, -math.inf])]
        if not infinite.empty:
            ids = [str(i) for i in infinite["image_id"]]
            where = sorted({str(d) for d in infinite["dataset"]}) if "dataset" in infinite else []
            raise DataError(
                f"{metric} is inf for {len(ids)} image(s) {ids[:SHOWN_IMAGES]}"
                f"{' and more' if len(ids) > SHOWN_IMAGES else ''}"
                f"{f' of {where}' if where else ''}: a table cannot average inf (an input equal to its target "
                "has no degradation to restore); remove or fix these pairs"
            )


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
    _require_finite(scores)
    constant = "__all__"
    keys = by or [constant]
    frame = scores.assign(**{constant: 0}) if not by else scores
    per_seed = frame.groupby([*keys, "seed"], dropna=False, sort=True)[list(METRICS)].mean().reset_index()
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


def dataset_order(datasets: Iterable[str]) -> list[str]:
    """Distinct datasets, the known ones in :data:`DATASET_LABELS` order first, then the rest sorted."""
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
        for dataset in dataset_order(frame["dataset"].unique())
    }


def _steps_text(steps: dict[str, list[int]]) -> str:
    parts = [f"{dataset_label(d)} {', '.join(str(s) for s in counts)}" for d, counts in steps.items()]
    return "Sampling steps: " + "; ".join(parts) + "."


_AVERAGING_TEXT = "Mean over test images, then over training seeds (mean ± std where more than one seed was trained)."


# --------------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------------


def _varying(frame: pd.DataFrame, candidates: Sequence[str] = OPTIONAL_KEYS) -> list[str]:
    return [key for key in candidates if frame[key].nunique(dropna=False) > 1]


def _normalise_rank_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """Blank ``order`` outside polynomial schedulers and ``rank`` outside ``fixed`` (they carry no meaning)."""
    frame = scores.copy()
    frame["order"] = frame["order"].astype("Int64").where(frame["scheduler"].isin(POLY_SCHEDULERS))
    frame["rank"] = frame["rank"].astype("Int64").where(frame["scheduler"] == "fixed")
    return frame


def _prepare(
    scores: pd.DataFrame,
    keep: Callable[[pd.DataFrame], pd.Series] | None,
    need: str,
    builder: str,
    steps: int | None,
    process: str | None = None,
    objective: str | None = None,
    all_steps: bool = False,
) -> pd.DataFrame:
    """Checks columns, keeps the rows of ``process`` and ``objective`` (None: any) that pass ``keep``,
    then selects the sampling steps (unless ``all_steps``); ValueError naming what was looked for when
    nothing is left."""
    _require(scores, SCORE_KEY_COLUMNS, builder)
    frame = _normalise_rank_columns(scores)
    if keep is not None:
        frame = frame[keep(frame).to_numpy()]
    for column, value in (("process", process), ("objective", objective)):
        if value is not None:
            frame = frame[frame[column] == value]
            need += f" with {column} {value!r}"
    if frame.empty:
        present = sorted(scores["rank_spec"].astype(str).unique())
        objectives = sorted(scores["objective"].astype(str).unique())
        raise ValueError(
            f"{builder}: the scores hold no {need} (rank specs present: {present}; objectives: {objectives})"
        )
    return frame if all_steps else select_steps(frame, steps)


def select_runs(
    scores: pd.DataFrame,
    schedulers: Sequence[str] | None = None,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
    steps: int | None = None,
    all_steps: bool = False,
) -> pd.DataFrame:
    """The score rows of ``schedulers`` (None: all), ``process`` and ``objective`` (None: any), at one
    step count per dataset (see :func:`select_steps`) unless ``all_steps``.  ``order``/``rank`` are
    blanked where the scheduler does not use them.  Raises ValueError when nothing is left."""
    keep = None if schedulers is None else (lambda f: f["scheduler"].isin(list(schedulers)))
    need = "scores" if schedulers is None else f"runs with rank scheduler(s) {', '.join(schedulers)}"
    return _prepare(scores, keep, need, "select_runs", steps, process, objective, all_steps=all_steps)


def _dataset_metric(dataset: Any, metric: str) -> str:
    return f"{dataset_label(dataset)} {METRIC_LABELS[metric]}"


def _steps_metric(steps: Any, metric: str) -> str:
    count = int(steps)
    return f"{METRIC_LABELS[metric]} ({count} step{'' if count == 1 else 's'})"


def _metric_columns(
    values: Iterable[Any], metrics: Sequence[str], name: Callable[[Any, str], str] = _dataset_metric
) -> list[str]:
    return [
        column
        for value in values
        for metric in metrics
        for column in (name(value, metric), name(value, metric) + STD_SUFFIX)
    ]


def _wide(
    frame: pd.DataFrame,
    row_keys: Sequence[str],
    column_key: str = "dataset",
    name: Callable[[Any, str], str] = _dataset_metric,
    metrics: Sequence[str] = ("psnr", "ssim"),
) -> tuple[pd.DataFrame, list[str]]:
    """One row per ``row_keys`` group; per ``column_key`` value a mean and a std column per metric.

    Returns the frame (``row_keys`` columns, metric columns, ``n_seeds`` = fewest seeds over the row's
    cells, ``source`` = this run) and the ordered list of metric columns.
    """
    summary = summarize(frame, [column_key, *row_keys])
    values = (
        dataset_order(summary[column_key].unique()) if column_key == "dataset" else sorted(summary[column_key].unique())
    )
    metric_columns = _metric_columns(values, metrics, name)
    rows: dict[tuple[Hashable, ...], dict[str, Any]] = {}
    for record in summary.to_dict("records"):
        key = tuple(clean_value(record[k]) for k in row_keys)
        row = rows.setdefault(key, {**dict(zip(row_keys, key)), "n_seeds": int(record["n_seeds"])})
        row["n_seeds"] = min(row["n_seeds"], int(record["n_seeds"]))
        for metric in metrics:
            column = name(record[column_key], metric)
            row[column] = record[f"{metric}_mean"]
            row[column + STD_SUFFIX] = record[f"{metric}_std"]
    wide = pd.DataFrame(list(rows.values()), columns=[*row_keys, *metric_columns, "n_seeds"])
    wide["source"] = THIS_RUN
    return wide, metric_columns


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
        row = rows.setdefault(tuple(clean_value(v) for v in labels.values()), {**labels, "source": REPORTED_SOURCE})
        for metric in metrics:
            value = clean_value(record[metric])
            if value is not None:
                row[_dataset_metric(record["dataset"], metric)] = value
    return pd.DataFrame(list(rows.values()))


def _finish(
    parts: Sequence[pd.DataFrame],
    label_columns: Sequence[str],
    metric_columns: Sequence[str],
    sort_key: Callable[[pd.Series], tuple[Any, ...]],
    caption: str,
    steps: dict[str, list[int]],
    integer_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Stacks our and reported rows, sorts them with ``sort_key``, keeps ``label_columns``, ``source``,
    ``metric_columns`` and ``n_seeds`` (in that order) and attaches the caption and steps as attrs."""
    parts = [part for part in parts if not part.empty]
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    order = sorted(range(len(table)), key=lambda i: sort_key(table.iloc[i]))
    table = table.iloc[order].reset_index(drop=True)
    table = table.reindex(columns=[*label_columns, "source", *metric_columns, "n_seeds"])
    for column in (*integer_columns, "n_seeds"):
        table[column] = table[column].astype("Int64")
    for column in metric_columns:
        table[column] = table[column].astype("float64")
    table.attrs["caption"] = caption
    table.attrs["steps"] = steps
    return table


def _source_rank(row: pd.Series) -> int:
    return 0 if row["source"] == THIS_RUN else 1


def _number_or(value: Any, default: float) -> float:
    value = clean_value(value)
    return default if value is None else float(value)


def _text_or_empty(value: Any) -> str:
    value = clean_value(value)
    return "" if value is None else str(value)


def _position(value: Any, ordering: Sequence[Any]) -> int:
    return list(ordering).index(value) if value in ordering else len(ordering)


def _spec_sort_key(row: pd.Series) -> tuple[Any, ...]:
    """Orders rank specs as full, fixed (by rank), lin_*, poly_* (by order); unknown keys last."""
    scheduler = clean_value(row.get("scheduler"))
    return (
        _position(scheduler, RANK_KINDS),
        _text_or_empty(scheduler),
        _number_or(row.get("rank"), math.inf),
        _number_or(row.get("order"), math.inf),
        _text_or_empty(row.get("rank_spec")),
    )


def _optional_sort_key(row: pd.Series, optional: Sequence[str]) -> tuple[str, ...]:
    return tuple(_text_or_empty(row.get(key)) for key in optional)


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def _scheduler_rows_table(
    scores: pd.DataFrame,
    schedulers: Sequence[str],
    reported: Any,
    title: str,
    builder: str,
    steps: int | None,
    include_reported: bool,
    process: str | None,
    objective: str | None,
) -> pd.DataFrame:
    """Rows = (scheduler, order) of ``schedulers``, columns = PSNR/SSIM per dataset (Tab. 3 and Tab. 4)."""
    frame = _prepare(
        scores,
        lambda f: f["scheduler"].isin(schedulers),
        f"runs with a rank scheduler among {', '.join(schedulers)}",
        builder,
        steps,
        process,
        objective,
    )
    optional = _varying(frame)
    row_keys = ["scheduler", "order", *optional]
    ours, metric_columns = _wide(frame, row_keys)
    parts = [ours]
    if include_reported:
        parts.append(
            _reported_wide(
                reported, frame["dataset"].unique(), lambda r: {"scheduler": r["scheduler"], "order": r["order"]}
            )
        )
    used = _steps_used(frame)
    return _finish(
        parts,
        row_keys,
        metric_columns,
        lambda r: (
            _position(r["scheduler"], schedulers),
            _number_or(r["order"], 0),
            _source_rank(r),
            *_optional_sort_key(r, optional),
        ),
        f"{title} " + _steps_text(used) + " " + _AVERAGING_TEXT,
        used,
        integer_columns=("order",),
    )


def schedulers_table(
    scores: pd.DataFrame,
    steps: int | None = None,
    include_reported: bool = True,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> pd.DataFrame:
    """LRDM Tab. 3: one row per time-varying rank scheduler (with its order), PSNR/SSIM per dataset.

    Only runs of ``process`` and ``objective`` are used (None: any; rows are then split by them).

    Reported rows (``LRDM Tab. 3``; its poly rows use p=3) are added for the datasets present in
    ``scores`` when ``include_reported``.  Raises ValueError when no run uses a time-varying scheduler.
    """
    return _scheduler_rows_table(
        scores, DYNAMIC_KINDS, LRDM_TAB3, "Rank schedulers (LRDM Tab. 3).", "schedulers_table", steps,
        include_reported, process, objective,
    )  # fmt: skip


def orders_table(
    scores: pd.DataFrame,
    steps: int | None = None,
    include_reported: bool = True,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> pd.DataFrame:
    """LRDM Tab. 4: rows poly_decrease / poly_increase × polynomial order p, PSNR/SSIM per dataset.

    Only runs of ``process`` and ``objective`` are used (None: any; rows are then split by them).

    Raises ValueError when no run uses a polynomial scheduler.
    """
    return _scheduler_rows_table(
        scores, POLY_SCHEDULERS, LRDM_TAB4, "Polynomial scheduler orders (LRDM Tab. 4).", "orders_table", steps,
        include_reported, process, objective,
    )  # fmt: skip


def rank_sweep_table(
    scores: pd.DataFrame,
    steps: int | None = None,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> pd.DataFrame:
    """LRDM Fig. 6 data: rows = fixed ranks (ascending), then ``full`` (no projection) and
    ``input (degraded)`` (scores of the degraded input, no std); PSNR/SSIM per dataset.  The ``rank``
    column holds ints and those two labels.  Only runs of ``process`` and ``objective`` are used (None:
    any; rows are then split by them).

    Raises ValueError when there is neither a fixed-rank nor a full-rank run.
    """
    frame = _prepare(
        scores,
        lambda f: f["scheduler"].isin(["fixed", "full"]),
        "fixed-rank or full-rank runs",
        "rank_sweep_table",
        steps,
        process,
        objective,
    )
    optional = _varying(frame)
    ours, metric_columns = _wide(frame, ["scheduler", "rank", *optional])
    ours["rank_label"] = [
        FULL_RANK_ROW if scheduler == "full" else int(rank) for scheduler, rank in zip(ours["scheduler"], ours["rank"])
    ]
    input_row: dict[str, Any] = {"rank_label": INPUT_ROW, "source": THIS_RUN}
    for record in summarize(frame, ["dataset"]).to_dict("records"):
        input_row[_dataset_metric(record["dataset"], "psnr")] = record["input_psnr_mean"]
        input_row[_dataset_metric(record["dataset"], "ssim")] = record["input_ssim_mean"]
    used = _steps_used(frame)
    caption = (
        "PSNR/SSIM versus fixed rank (LRDM Fig. 6 data); 'full' is the run without projection, "
        "'input (degraded)' scores the degraded input. " + _steps_text(used) + " " + _AVERAGING_TEXT
    )

    def sort_key(row: pd.Series) -> tuple[Any, ...]:
        label = row["rank_label"]
        group = 2 if label == INPUT_ROW else 1 if label == FULL_RANK_ROW else 0
        return (group, _number_or(row.get("rank"), 0), *_optional_sort_key(row, optional))

    table = _finish(
        [ours, pd.DataFrame([input_row])], ["rank_label", *optional], metric_columns, sort_key, caption, used
    )
    renamed = table.rename(columns={"rank_label": "rank"})
    renamed.attrs.update(table.attrs)
    return renamed


def steps_table(
    scores: pd.DataFrame,
    metrics: Sequence[str] = ("psnr",),
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
) -> pd.DataFrame:
    """LRDM Fig. 8 data: rows = (dataset, rank_spec), columns ``"PSNR (S steps)"`` for every evaluated S.

    ``metrics`` may add ``"ssim"``.  Only runs of ``process`` and ``objective`` are used (None: any; rows
    are then split by them).  Raises ValueError when no row is left or on an unknown metric.
    """
    unknown = [m for m in metrics if m not in METRIC_LABELS]
    if unknown or not metrics:
        raise ValueError(f"steps_table: metrics must be among {list(METRIC_LABELS)}, got {list(metrics)}")
    frame = _prepare(scores, None, "scores", "steps_table", None, process, objective, all_steps=True)
    optional = _varying(frame)
    row_keys = ["dataset", "rank_spec", "scheduler", "rank", "order", *optional]
    ours, metric_columns = _wide(frame, row_keys, column_key="steps", name=_steps_metric, metrics=metrics)
    datasets = dataset_order(frame["dataset"].unique())
    ours["dataset"] = [dataset_label(d) for d in ours["dataset"]]
    dataset_rank = {dataset_label(d): i for i, d in enumerate(datasets)}
    step_counts = sorted(int(s) for s in frame["steps"].unique())
    caption = "Restoration quality versus sampling steps (LRDM Fig. 8 data). " + _AVERAGING_TEXT
    return _finish(
        [ours],
        ["dataset", "rank_spec", *optional],
        metric_columns,
        lambda r: (dataset_rank[r["dataset"]], *_spec_sort_key(r), *_optional_sort_key(r, optional)),
        caption,
        {d: step_counts for d in datasets},
    )


def feasibility_table(
    scores: pd.DataFrame,
    steps: int | None = None,
    include_reported: bool = True,
    rddm_objective: str | None = DEFAULT_OBJECTIVE,
) -> pd.DataFrame:
    """LRDM Tab. 5: rows RDDM, RDDM + Low-Rank, ResShift, ResShift + Low-Rank (process × whether
    ``rank_spec`` is ``full``), PSNR/SSIM per dataset.

    ``rank_spec`` is a column, so several low-rank specs of one process appear as separate rows.
    RDDM runs are restricted to ``rddm_objective`` (None: any; rows are then split by objective).
    Raises ValueError when no rddm or resshift run is present.
    """
    processes = sorted({process for process, _ in FEASIBILITY_LABELS})

    def keep(frame: pd.DataFrame) -> pd.Series:
        rddm_ok = (frame["process"] == "rddm") & (
            True if rddm_objective is None else frame["objective"] == rddm_objective
        )
        return frame["process"].isin(processes) & (rddm_ok | (frame["process"] != "rddm"))

    frame = _prepare(scores, keep, "rddm or resshift runs", "feasibility_table", steps)
    optional = [key for key in _varying(frame, ("eta",))]
    if rddm_objective is None and frame.loc[frame["process"] == "rddm", "objective"].nunique() > 1:
        optional.insert(0, "objective")
    ours, metric_columns = _wide(frame, ["process", "rank_spec", "scheduler", "rank", "order", *optional])
    ours["model"] = [FEASIBILITY_LABELS[(p, spec != "full")] for p, spec in zip(ours["process"], ours["rank_spec"])]
    parts = [ours]
    if include_reported:
        parts.append(_reported_wide(LRDM_TAB5, frame["dataset"].unique(), lambda r: {"model": r["method"]}))
    labels = list(FEASIBILITY_LABELS.values())
    used = _steps_used(frame)
    caption = "Low-rank feasibility across processes (LRDM Tab. 5). " + _steps_text(used) + " " + _AVERAGING_TEXT
    return _finish(
        parts,
        ["model", "rank_spec", *optional],
        metric_columns,
        lambda r: (
            _position(r["model"], labels),
            _source_rank(r),
            *_spec_sort_key(r),
            *_optional_sort_key(r, optional),
        ),
        caption,
        used,
    )


def sampling_methods_table(
    scores: pd.DataFrame,
    steps: int | None = None,
    include_reported: bool = True,
    process: str | None = DEFAULT_PROCESS,
    rank_specs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """RDDM Tab. 1: rows SM-Res (pred_res), SM-N (pred_noise), SM-Res-N (pred_res_noise) per rank_spec,
    PSNR/SSIM per dataset, and a ``note`` column saying how the term that is not predicted is obtained.

    SM-Res and SM-N convert one prediction into the other with RDDM Eq. 16, which assumes the full
    residual was injected; under a low-rank forward process that conversion is only approximate (the
    note and the caption say so).  Reported RDDM Tab. 1 rows (full-rank RDDM) are added for the datasets
    present when ``include_reported``.  Only runs of ``process`` are used (None: any), and only the
    ``rank_specs`` given; by default the rank specs trained with the most distinct objectives (so a rank
    spec trained with SM-Res-N alone for other experiments does not crowd the comparison).  Raises
    ValueError when no run has one of the three objectives.
    """
    frame = _prepare(
        scores,
        lambda f: f["objective"].isin(list(OBJECTIVE_LABELS)),
        f"runs with objective {', '.join(OBJECTIVE_LABELS)}",
        "sampling_methods_table",
        steps,
        process,
    )
    if rank_specs is None:
        objectives_per_spec = frame.groupby("rank_spec")["objective"].nunique()
        rank_specs = list(objectives_per_spec.index[objectives_per_spec == objectives_per_spec.max()])
    frame = frame[frame["rank_spec"].isin(list(rank_specs))]
    if frame.empty:
        raise ValueError(f"sampling_methods_table: no runs with rank spec(s) {list(rank_specs)}")
    optional = _varying(frame, ("process", "eta"))
    ours, metric_columns = _wide(frame, ["objective", "rank_spec", "scheduler", "rank", "order", *optional])
    parts = [ours]
    if include_reported:
        parts.append(
            _reported_wide(
                RDDM_TAB1, frame["dataset"].unique(), lambda r: {"objective": r["objective"], "rank_spec": "full"}
            )
        )
    used = _steps_used(frame)
    caption = (
        "Sampling methods (RDDM Tab. 1). SM-Res and SM-N obtain the term they do not predict through "
        "RDDM Eq. 16, which assumes the full residual was injected: under a low-rank forward process "
        "that conversion is only approximate; SM-Res-N needs no conversion. "
        + _steps_text(used)
        + " "
        + _AVERAGING_TEXT
    )
    objectives = list(OBJECTIVE_LABELS)
    table = _finish(
        parts,
        ["objective", "rank_spec", *optional],
        metric_columns,
        lambda r: (
            _position(r["objective"], objectives),
            _source_rank(r),
            *_spec_sort_key(r),
            *_optional_sort_key(r, optional),
        ),
        caption,
        used,
    )
    table.insert(0, "sampling method", [OBJECTIVE_LABELS[o] for o in table["objective"]])
    table["note"] = [OBJECTIVE_NOTES[o] for o in table["objective"]]
    return table


def method_label(process: str, rank_spec: str, objective: str | None = None, eta: float | None = None) -> str:
    """Row name of one of our runs, e.g. ``"LRDM (ours, poly_decrease-p3)"`` or ``"RDDM (ours, full)"``.

    The objective is named only when it is not the process's usual one
    (:data:`PROCESS_DEFAULT_OBJECTIVES`), ``eta`` only when given.
    """
    base = METHOD_LABELS.get((process, rank_spec != "full"), process)
    details = ["ours", rank_spec]
    if objective is not None and objective != PROCESS_DEFAULT_OBJECTIVES.get(process, DEFAULT_OBJECTIVE):
        details.append(OBJECTIVE_LABELS.get(objective, objective))
    if eta is not None:
        details.append(f"η={eta:g}")
    return f"{base} ({', '.join(details)})"


def main_table(
    scores: pd.DataFrame,
    datasets: Sequence[str] | None = None,
    steps: int | None = None,
    reported_tables: Sequence[str] = MAIN_REPORTED_TABLES,
    process: str | None = DEFAULT_PROCESS,
    objective: str | None = DEFAULT_OBJECTIVE,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """LRDM Tab. 1/2 layout: the paper's reported rows (in the paper's order) followed by our rows (one
    per process, objective and rank_spec evaluated), with ``method``, ``protocol`` and ``source`` columns and
    PSNR/SSIM per dataset.  ``labels`` names chosen rank specs' rows (e.g. ``fixed-r100``: the released LRDM
    configuration); the others get :func:`method_label`.

    ``datasets`` (None: every dataset in ``scores``) selects the columns; a dataset the paper does not
    report just has our rows, a requested dataset we did not evaluate only reported ones.  A method
    reported for several datasets (even from different tables) is one row.  Only runs of ``process`` and
    ``objective`` are used (None: any; labels then name them).  Raises ValueError when ``scores`` holds
    none of ``datasets``.  Score rows of the authors' weights (run :data:`lrdm.vocab.OFFICIAL_RUN`, imported by
    the workflow's ``official_weights``) make one row :data:`OFFICIAL_LABEL`, whatever their process and
    objective, between the paper's rows and our trained ones; before it, one :data:`INPUT_ROW` row per protocol:
    the degraded test inputs scored as our runs were (:func:`lrdm.results.degraded.input_rows`).
    """
    _require(scores, SCORE_KEY_COLUMNS, "main_table")
    wanted = dataset_order(datasets) if datasets is not None else dataset_order(scores["dataset"].astype(str).unique())
    is_official = (scores["run"].astype(str) == OFFICIAL_RUN).to_numpy()
    official = scores[is_official & scores["dataset"].isin(wanted).to_numpy()]
    scores = scores[~is_official]
    frame = _prepare(
        scores,
        lambda f: f["dataset"].isin(wanted),
        f"rows for dataset(s) {wanted}",
        "main_table",
        steps,
        process,
        objective,
    )
    optional = _varying(frame, ("eta",))
    row_keys = ["process", "objective", "rank_spec", "scheduler", "rank", "order", *optional]
    ours, _ = _wide(frame, row_keys)
    labels = labels or {}
    ours["method"] = [
        labels.get(r["rank_spec"])
        or method_label(r["process"], r["rank_spec"], r["objective"], r["eta"] if optional else None)
        for r in ours.to_dict("records")
    ]
    ours["protocol"] = _protocols_of_rows(frame, ours, row_keys)
    reported_parts = [
        _reported_wide(name, wanted, lambda r: {"method": r["method"], "protocol": r["protocol"]})
        for name in reported_tables
    ]
    reported_parts = [part for part in reported_parts if not part.empty]
    paper_order: dict[str, int] = {}
    for name in reported_tables:
        for method in reported_frame(name)["method"]:
            paper_order.setdefault(method, len(paper_order))
    parts = [ours, input_rows(frame, wanted, _dataset_metric, THIS_RUN, INPUT_ROW)]
    if not official.empty:
        official = select_steps(official, steps)
        official_row, _ = _wide(official, [])
        official_row["method"] = OFFICIAL_LABEL
        official_row["protocol"] = _protocols_of_rows(official, official_row, [])
        parts.append(official_row)
    if reported_parts:
        reported = pd.concat(reported_parts, ignore_index=True)
        parts.append(reported.groupby(["method", "protocol"], sort=False, dropna=False).first().reset_index())
    used = _steps_used(pd.concat([frame, official]) if not official.empty else frame)
    caption = (
        "Comparison with the paper (LRDM Tab. 1/2 layout): rows marked "
        f"'{REPORTED_SOURCE}' are quoted from the paper, rows marked '{THIS_RUN}' were measured here"
        + ("" if official.empty else f" ('{OFFICIAL_LABEL}': the authors' released checkpoint, scored here)")
        + f"; '{INPUT_ROW}': the degraded test inputs, scored as the runs under each protocol"
        + "; the protocol column says how each row was scored (README, 'How each paper measured'). "
        + _steps_text(used)
        + " "
        + _AVERAGING_TEXT
    )

    def sort_key(row: pd.Series) -> tuple[Any, ...]:
        if row["source"] != THIS_RUN:
            return (0, paper_order.get(row["method"], len(paper_order)))
        if row["method"] in (INPUT_ROW, OFFICIAL_LABEL):  # the inputs under each protocol, then the authors' weights
            return (1, row["method"] != INPUT_ROW, _text_or_empty(row["protocol"]))
        full = row["rank_spec"] == "full"
        return (
            2,
            _text_or_empty(row["process"]) != "rddm",
            full,
            *_spec_sort_key(row),
            _text_or_empty(row["objective"]),
            *_optional_sort_key(row, optional),
        )

    return _finish(parts, ["method", "protocol"], _metric_columns(wanted, METRIC_LABELS), sort_key, caption, used)


def _protocols_of_rows(frame: pd.DataFrame, wide: pd.DataFrame, row_keys: Sequence[str]) -> list[str | None]:
    """The distinct ``protocol`` values behind each row of ``wide`` (``", "``-joined; None without them)."""
    if "protocol" not in frame.columns:
        return [None] * len(wide)
    by_row: dict[tuple[Hashable, ...], set[str]] = {}
    for record in frame[[*row_keys, "protocol"]].to_dict("records"):
        by_row.setdefault(tuple(clean_value(record[k]) for k in row_keys), set()).add(str(record["protocol"]))
    return [
        ", ".join(sorted(by_row.get(tuple(clean_value(r[k]) for k in row_keys), ()))) or None
        for r in wide.to_dict("records")
    ]


def protocols_table(scores: pd.DataFrame, steps: int | None = None) -> pd.DataFrame:
    """How each paper's protocol scores the same restored images: one row per dataset and run (and the
    degraded input), mean PSNR/SSIM under each protocol label in ``scores["protocol"]`` (e.g. ``derain_y``,
    ``derain_y@256``, ``lrdm_y@lrdm256``), and each label's difference from the first one (the images' own
    size).  Raises ValueError when ``scores`` has no ``protocol`` column or no rows."""
    _require(scores, [*SCORE_KEY_COLUMNS, "protocol"], "protocols_table")
    frame = _prepare(scores, None, "scores", "protocols_table", steps, process=None, objective=None)
    labels = list(dict.fromkeys(frame["protocol"].astype(str)))
    row_keys = ["dataset", "process", "objective", "rank_spec", "scheduler", "rank", "order"]
    summary = summarize(frame, [*row_keys, "protocol"])
    rows: dict[tuple[Hashable, ...], dict[str, Any]] = {}
    for record in summary.to_dict("records"):
        dataset = str(record["dataset"])
        ours = {"dataset": dataset, "method": method_label(record["process"], record["rank_spec"], record["objective"])}
        degraded = {"dataset": dataset, "method": INPUT_ROW}
        for row, prefix in ((ours, ""), (degraded, "input_")):
            row = rows.setdefault(tuple(row.values()), {**row, "n_seeds": int(record["n_seeds"])})
            row["n_seeds"] = min(row["n_seeds"], int(record["n_seeds"]))
            for metric in ("psnr", "ssim"):
                row[_protocol_metric(record["protocol"], metric)] = record[f"{prefix}{metric}_mean"]
                if not prefix:
                    row[_protocol_metric(record["protocol"], metric) + STD_SUFFIX] = record[f"{metric}_std"]
    table = pd.DataFrame(list(rows.values()))
    metric_columns = _metric_columns(labels, METRIC_LABELS, _protocol_metric)
    differences = []
    own_labels = [label for label in labels if "@" not in label]
    transforms = list(dict.fromkeys(label[label.index("@") :] for label in labels if "@" in label))
    for transform in transforms:
        for metric in METRIC_LABELS:
            column = f"Δ {METRIC_LABELS[metric]} ({transform} − own size)"
            table[column] = [
                _transform_difference(row, own_labels, transform, metric) for row in table.to_dict("records")
            ]
            differences.append(column)
    order = dataset_order(table["dataset"].unique())
    table["source"] = THIS_RUN
    table = table.sort_values(
        by=["dataset", "method"],
        key=lambda c: c.map(order.index) if c.name == "dataset" else c.map(lambda m: (m != INPUT_ROW, m)),
    ).reset_index(drop=True)
    table = table.reindex(columns=["dataset", "method", "source", *metric_columns, *differences, "n_seeds"])
    table["dataset"] = table["dataset"].map(dataset_label)
    table["n_seeds"] = table["n_seeds"].astype("Int64")
    used = _steps_used(frame)
    table.attrs["caption"] = (
        "The main-table runs' restored test images scored under each protocol: "
        + ", ".join(labels)
        + " ('@N': RDDM's policy, resized to N × N; '@lrdm256': the LRDM test transform, padded to 256 and a "
        "multiple of 8, then resized, scored with lrdm_y). Each Δ is against the dataset's protocol at the "
        "images' own size. "
        + _steps_text(used)
        + " "
        + _AVERAGING_TEXT
    )
    table.attrs["steps"] = used
    return table


def _protocol_metric(label: Any, metric: str) -> str:
    return f"{label} {METRIC_LABELS[metric]}"


def _transform_difference(row: dict[str, Any], own_labels: Sequence[str], transform: str, metric: str) -> float:
    """A row's metric under ``transform`` (e.g. ``@256``) minus the same protocol at the images' own size; for
    ``@lrdm256`` (its own protocol, ``lrdm_y``) minus the row's own-size protocol.  NaN where either is absent."""
    for own in own_labels:
        base = row.get(_protocol_metric(own, metric))
        if base is None or pd.isna(base):
            continue
        same = row.get(_protocol_metric(own + transform, metric))
        other = [row.get(k) for k in row if k.endswith(f"{transform} {METRIC_LABELS[metric]}")]
        value = same if same is not None and not pd.isna(same) else next((v for v in other if not pd.isna(v)), None)
        return math.nan if value is None else float(value) - float(base)
    return math.nan


# --------------------------------------------------------------------------------------------------
# Workflow entry point
# --------------------------------------------------------------------------------------------------

#: Builder of each scored workflow target (``config["targets"][name]`` names the target).
TABLE_BUILDERS: dict[str, Callable[[pd.DataFrame, Mapping[str, Any]], pd.DataFrame]] = {
    "rank_sweep": lambda scores, spec: rank_sweep_table(scores),
    "schedulers": lambda scores, spec: schedulers_table(scores),
    "orders": lambda scores, spec: orders_table(scores),
    "steps": lambda scores, spec: steps_table(scores),
    "feasibility": lambda scores, spec: feasibility_table(scores),
    "main_table": lambda scores, spec: main_table(scores, spec.get("datasets"), labels=spec.get("labels")),
    "protocols": lambda scores, spec: protocols_table(scores),
    "sampling_methods": lambda scores, spec: sampling_methods_table(
        scores, rank_specs=[spec["spec"]] if spec.get("spec") else None
    ),
}


def build_target_table(
    name: str, scores: pd.DataFrame, spec: Mapping[str, Any] | None = None, sampling_steps: int | None = None
) -> tuple[pd.DataFrame, str]:
    """The display frame and caption of workflow target ``name`` from its scores (``spec``: the target's
    config section, e.g. ``datasets`` for ``main_table``, ``spec`` for ``sampling_methods``; ``sampling_steps``:
    the config's ``sampling.steps``, where the claims compare runs)."""
    if name == "claims":
        if sampling_steps is None:
            raise ValueError("the claims table needs sampling_steps (config key sampling.steps)")
        frame = claims_table(scores, spec or {}, sampling_steps)
        return frame, frame.attrs["caption"]
    if name not in TABLE_BUILDERS:
        raise ValueError(f"no table for target {name!r}; tables: {', '.join([*TABLE_BUILDERS, 'claims'])}")
    frame = TABLE_BUILDERS[name](scores, spec or {})
    return frame, frame.attrs["caption"]
