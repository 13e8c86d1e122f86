"""Result tables of the LRDM and RDDM papers, laid out like the papers' tables from the per-image scores
(reading, selecting and averaging them: :mod:`lrdm.results.scores`).

* The builders (:func:`schedulers_table`, :func:`orders_table`, :func:`rank_sweep_table`,
  :func:`steps_table`, :func:`feasibility_table`, :func:`sampling_methods_table`, :func:`main_table`,
  :func:`protocols_table`) return *display frames*: label columns, a ``source`` column (``"this run"`` or
  ``"reported by the paper"``), and per dataset (or per step count) raw numeric metric columns named
  ``"<Dataset> PSNR"`` / ``"<Dataset> SSIM"``, each followed by its ``"… std"`` partner.  A suggested caption is
  stored in ``frame.attrs["caption"]`` and the sampling steps used per dataset in ``frame.attrs["steps"]``.
* :func:`lrdm.results.render.write_table` writes a display frame as CSV (raw numbers), GitHub Markdown and a
  booktabs LaTeX table (PSNR with 2 decimals, SSIM with 4, ``mean ± std`` when the std partner is present).
* Which builder makes which workflow target's table: the table of paper targets, :data:`lrdm.targets.TARGETS`.

Unless a builder is given ``steps``, it uses for each dataset the sampling-step count at which the most
runs were evaluated (ties go to the larger count), see :func:`lrdm.results.scores.select_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lrdm.evaluation.columns import SCORE_KEY_COLUMNS
from lrdm.results.degraded import input_rows
from lrdm.results.render import STD_SUFFIX, clean_value
from lrdm.results.reported import (
    LRDM_README,
    LRDM_TAB1,
    LRDM_TAB2,
    LRDM_TAB3,
    LRDM_TAB4,
    LRDM_TAB5,
    RDDM_TAB1,
    README_SOURCE,
    REPORTED_SOURCE,
    reported_frame,
)
from lrdm.results.scores import (
    AVERAGING_TEXT,
    METRIC_LABELS,
    POLY_SCHEDULERS,
    THIS_RUN,
    RunFilter,
    dataset_label,
    dataset_metric,
    dataset_order,
    metric_column_names,
    require_columns,
    select_rows,
    select_steps,
    steps_metric,
    steps_text,
    steps_used,
    summarize,
    varying_keys,
    wide_frame,
)
from lrdm.vocab import (
    DEFAULT_OBJECTIVE,
    DEFAULT_PROCESS,
    DYNAMIC_KINDS,
    OBJECTIVE_LABELS,
    OFFICIAL_RUN,
    PROCESS_DEFAULT_OBJECTIVES,
    RANK_KINDS,
)

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
#: Row name of the authors' RDDM weights evaluated here (score rows of run :data:`lrdm.vocab.OFFICIAL_RUN`).
OFFICIAL_LABEL = "RDDM, official weights (evaluated here)"
#: Row name of the authors' LRDM weights evaluated here (official rows whose import set a rank spec).
LRDM_OFFICIAL_LABEL = "LRDM, official weights (evaluated here)"
OFFICIAL_SUFFIX = ", official weights (evaluated here)"
#: Reported tables shown beside our rows by :func:`main_table` by default.
MAIN_REPORTED_TABLES = (LRDM_TAB1, LRDM_TAB2, LRDM_README)

#: Label of the degraded-input row of :func:`rank_sweep_table`.
INPUT_ROW = "input (degraded)"
FULL_RANK_ROW = "full"


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
        row = rows.setdefault(tuple(clean_value(v) for v in labels.values()), {**labels, "source": record["source"]})
        for metric in metrics:
            value = clean_value(record[metric])
            if value is not None:
                row[dataset_metric(record["dataset"], metric)] = value
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


def _finish_by_spec(
    parts: Sequence[pd.DataFrame],
    column: str,
    ordering: Sequence[Any],
    optional: Sequence[str],
    *,
    metric_columns: Sequence[str],
    caption: str,
    steps: dict[str, list[int]],
) -> pd.DataFrame:
    """:func:`_finish` of a table labelled by ``column`` and ``rank_spec`` (then ``optional``): rows in the order
    of ``column``'s values in ``ordering``, ours before reported, then by rank spec and the optional keys."""
    return _finish(
        parts,
        [column, "rank_spec", *optional],
        metric_columns,
        lambda r: (
            _position(r[column], ordering),
            _source_rank(r),
            *_spec_sort_key(r),
            *_optional_sort_key(r, optional),
        ),
        caption,
        steps,
    )


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


@dataclass(frozen=True)
class _SchedulerTable:
    """A table whose rows are the runs' ``schedulers`` (Tab. 3 and Tab. 4): its builder's ``name``, the
    ``reported`` table shown beside it and its caption's ``title``."""

    name: str
    schedulers: Sequence[str]
    reported: str
    title: str


def _scheduler_rows_table(
    table: _SchedulerTable, scores: pd.DataFrame, runs: RunFilter, include_reported: bool
) -> pd.DataFrame:
    """Rows = (scheduler, order) of ``table.schedulers``, columns = PSNR/SSIM per dataset (Tab. 3 and Tab. 4)."""
    schedulers = table.schedulers
    frame = select_rows(
        scores,
        lambda f: f["scheduler"].isin(schedulers),
        f"runs with a rank scheduler among {', '.join(schedulers)}",
        table.name,
        runs,
    )
    optional = varying_keys(frame)
    row_keys = ["scheduler", "order", *optional]
    ours, metric_columns = wide_frame(frame, row_keys)
    parts = [ours]
    if include_reported:
        parts.append(
            _reported_wide(
                table.reported,
                frame["dataset"].unique(),
                lambda r: {"scheduler": r["scheduler"], "order": r["order"]},
            )
        )
    used = steps_used(frame)
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
        f"{table.title} " + steps_text(used) + " " + AVERAGING_TEXT,
        used,
        integer_columns=("order",),
    )


def _scheduler_builder(name: str, schedulers: Sequence[str], reported: str, title: str) -> Callable[..., pd.DataFrame]:
    """The public builder ``name`` of a table whose rows are the runs' ``schedulers`` (Tab. 3 and Tab. 4)."""
    table = _SchedulerTable(name, schedulers, reported, title)

    def build(
        scores: pd.DataFrame,
        steps: int | None = None,
        include_reported: bool = True,
        process: str | None = DEFAULT_PROCESS,
        objective: str | None = DEFAULT_OBJECTIVE,
    ) -> pd.DataFrame:
        return _scheduler_rows_table(table, scores, RunFilter(steps, process, objective), include_reported)

    build.__name__ = build.__qualname__ = name
    return build


SELECTED_RUNS_TEXT = "Only runs of ``process`` and ``objective`` are used (None: any; rows are then split by them)."

schedulers_table = _scheduler_builder("schedulers_table", DYNAMIC_KINDS, LRDM_TAB3, "Rank schedulers (LRDM Tab. 3).")
schedulers_table.__doc__ = f"""LRDM Tab. 3: one row per time-varying rank scheduler (with its order), PSNR/SSIM per
    dataset.

    {SELECTED_RUNS_TEXT}  Reported rows (``LRDM Tab. 3``; its poly rows use p=3) are added for the datasets
    present in ``scores`` when ``include_reported``.  Raises ValueError when no run uses a time-varying scheduler.
    """

ORDERS_TITLE = "Polynomial scheduler orders (LRDM Tab. 4)."
orders_table = _scheduler_builder("orders_table", POLY_SCHEDULERS, LRDM_TAB4, ORDERS_TITLE)
orders_table.__doc__ = f"""LRDM Tab. 4: rows poly_decrease / poly_increase × polynomial order p, PSNR/SSIM per
    dataset.

    {SELECTED_RUNS_TEXT}  Raises ValueError when no run uses a polynomial scheduler.
    """


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
    frame = select_rows(
        scores,
        lambda f: f["scheduler"].isin(["fixed", "full"]),
        "fixed-rank or full-rank runs",
        "rank_sweep_table",
        RunFilter(steps, process, objective),
    )
    optional = varying_keys(frame)
    ours, metric_columns = wide_frame(frame, ["scheduler", "rank", *optional])
    ours["rank_label"] = [
        FULL_RANK_ROW if scheduler == "full" else int(rank) for scheduler, rank in zip(ours["scheduler"], ours["rank"])
    ]
    input_row: dict[str, Any] = {"rank_label": INPUT_ROW, "source": THIS_RUN}
    for record in summarize(frame, ["dataset"]).to_dict("records"):
        input_row[dataset_metric(record["dataset"], "psnr")] = record["input_psnr_mean"]
        input_row[dataset_metric(record["dataset"], "ssim")] = record["input_ssim_mean"]
    used = steps_used(frame)
    caption = (
        "PSNR/SSIM versus fixed rank (LRDM Fig. 6 data); 'full' is the run without projection, "
        "'input (degraded)' scores the degraded input. " + steps_text(used) + " " + AVERAGING_TEXT
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
    frame = select_rows(scores, None, "scores", "steps_table", RunFilter(None, process, objective, all_steps=True))
    optional = varying_keys(frame)
    row_keys = ["dataset", "rank_spec", "scheduler", "rank", "order", *optional]
    ours, metric_columns = wide_frame(frame, row_keys, column_key="steps", name=steps_metric, metrics=metrics)
    datasets = dataset_order(frame["dataset"].unique())
    ours["dataset"] = [dataset_label(d) for d in ours["dataset"]]
    dataset_rank = {dataset_label(d): i for i, d in enumerate(datasets)}
    step_counts = sorted(int(s) for s in frame["steps"].unique())
    caption = "Restoration quality versus sampling steps (LRDM Fig. 8 data). " + AVERAGING_TEXT
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

    frame = select_rows(scores, keep, "rddm or resshift runs", "feasibility_table", RunFilter(steps))
    optional = [key for key in varying_keys(frame, ("eta",))]
    if rddm_objective is None and frame.loc[frame["process"] == "rddm", "objective"].nunique() > 1:
        optional.insert(0, "objective")
    ours, metric_columns = wide_frame(frame, ["process", "rank_spec", "scheduler", "rank", "order", *optional])
    ours["model"] = [FEASIBILITY_LABELS[(p, spec != "full")] for p, spec in zip(ours["process"], ours["rank_spec"])]
    parts = [ours]
    if include_reported:
        parts.append(_reported_wide(LRDM_TAB5, frame["dataset"].unique(), lambda r: {"model": r["method"]}))
    labels = list(FEASIBILITY_LABELS.values())
    used = steps_used(frame)
    caption = "Low-rank feasibility across processes (LRDM Tab. 5). " + steps_text(used) + " " + AVERAGING_TEXT
    return _finish_by_spec(parts, "model", labels, optional, metric_columns=metric_columns, caption=caption, steps=used)


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
    frame = select_rows(
        scores,
        lambda f: f["objective"].isin(list(OBJECTIVE_LABELS)),
        f"runs with objective {', '.join(OBJECTIVE_LABELS)}",
        "sampling_methods_table",
        RunFilter(steps, process),
    )
    if rank_specs is None:
        objectives_per_spec = frame.groupby("rank_spec")["objective"].nunique()
        rank_specs = list(objectives_per_spec.index[objectives_per_spec == objectives_per_spec.max()])
    frame = frame[frame["rank_spec"].isin(list(rank_specs))]
    if frame.empty:
        raise ValueError(f"sampling_methods_table: no runs with rank spec(s) {list(rank_specs)}")
    optional = varying_keys(frame, ("process", "eta"))
    ours, metric_columns = wide_frame(frame, ["objective", "rank_spec", "scheduler", "rank", "order", *optional])
    parts = [ours]
    if include_reported:
        parts.append(
            _reported_wide(
                RDDM_TAB1, frame["dataset"].unique(), lambda r: {"objective": r["objective"], "rank_spec": "full"}
            )
        )
    used = steps_used(frame)
    caption = (
        "Sampling methods (RDDM Tab. 1). SM-Res and SM-N obtain the term they do not predict through "
        "RDDM Eq. 16, which assumes the full residual was injected: under a low-rank forward process "
        "that conversion is only approximate; SM-Res-N needs no conversion. " + steps_text(used) + " " + AVERAGING_TEXT
    )
    objectives = list(OBJECTIVE_LABELS)
    table = _finish_by_spec(
        parts, "objective", objectives, optional, metric_columns=metric_columns, caption=caption, steps=used
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


def official_label(process: str, rank_spec: str) -> str:
    """Row name of the authors' weights: :data:`OFFICIAL_LABEL` (RDDM) or :data:`LRDM_OFFICIAL_LABEL` (weights
    trained with a low-rank forward process, whose import recorded the rank spec)."""
    return METHOD_LABELS.get((process, rank_spec != FULL_RANK_ROW), process) + OFFICIAL_SUFFIX


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
    the workflow's ``official_weights``) make one row per kind of weights (:func:`official_label`: RDDM's, or
    LRDM's when their import recorded a rank spec), whatever their objective, between the paper's rows and our
    trained ones; before them, one :data:`INPUT_ROW` row per protocol: the degraded test inputs scored as our runs
    were (:func:`lrdm.results.degraded.input_rows`).  With official rows and no trained ones (``specs: []``) the
    table holds the official, input and reported rows.
    """
    require_columns(scores, SCORE_KEY_COLUMNS, "main_table")
    wanted = dataset_order(datasets) if datasets is not None else dataset_order(scores["dataset"].astype(str).unique())
    is_official = (scores["run"].astype(str) == OFFICIAL_RUN).to_numpy()
    official = scores[is_official & scores["dataset"].isin(wanted).to_numpy()]
    scores = scores[~is_official]
    only_official = not official.empty and not scores["dataset"].isin(wanted).any()
    labels = labels or {}
    if only_official:  # e.g. an overlay that keeps only the official weights' row (docs/paper.md, the first GPU hour)
        official = select_steps(official, steps)
        frame, optional, ours = official, [], pd.DataFrame()
    else:
        frame = select_rows(
            scores,
            lambda f: f["dataset"].isin(wanted),
            f"rows for dataset(s) {wanted}",
            "main_table",
            RunFilter(steps, process, objective),
        )
        optional = varying_keys(frame, ("eta",))
        row_keys = ["process", "objective", "rank_spec", "scheduler", "rank", "order", *optional]
        ours, _ = wide_frame(frame, row_keys)
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
    parts = [ours, input_rows(frame, wanted, dataset_metric, THIS_RUN, INPUT_ROW)]
    official_labels: list[str] = []
    if not official.empty:
        official = select_steps(official, steps)
        names = [official_label(str(p), str(r)) for p, r in zip(official["process"], official["rank_spec"])]
        for name in dict.fromkeys(names):
            group = official[[n == name for n in names]]
            official_row, _ = wide_frame(group, [])
            official_row["method"] = name
            official_row["protocol"] = _protocols_of_rows(group, official_row, [])
            parts.append(official_row)
            official_labels.append(name)
    if reported_parts:
        reported = pd.concat(reported_parts, ignore_index=True)
        parts.append(reported.groupby(["method", "protocol"], sort=False, dropna=False).first().reset_index())
    used = steps_used(official if only_official else pd.concat([frame, official]) if not official.empty else frame)
    quoted = " and ".join(f"'{name}'" for name in official_labels)
    caption = (
        "Comparison with the paper (LRDM Tab. 1/2 layout): rows marked "
        f"'{REPORTED_SOURCE}' are quoted from the paper, rows marked '{THIS_RUN}' were measured here"
        + ("" if official.empty else f" ({quoted}: the authors' released checkpoint, scored here)")
        + (
            f"; '{README_SOURCE}': what the LRDM repository's README says its eval.py prints for that checkpoint"
            if any(README_SOURCE in set(part["source"]) for part in reported_parts)
            else ""
        )
        + f"; '{INPUT_ROW}': the degraded test inputs, scored as the runs under each protocol"
        + "; the protocol column says how each row was scored (docs/protocols.md). "
        + steps_text(used)
        + " "
        + AVERAGING_TEXT
    )

    def sort_key(row: pd.Series) -> tuple[Any, ...]:
        if row["source"] != THIS_RUN:
            return (0, paper_order.get(row["method"], len(paper_order)))
        if row["method"] == INPUT_ROW or row["method"] in official_labels:  # the inputs, then the authors' weights
            return (1, row["method"] != INPUT_ROW, _text_or_empty(row["protocol"]), row["method"])
        full = row["rank_spec"] == "full"
        return (
            2,
            _text_or_empty(row["process"]) != "rddm",
            full,
            *_spec_sort_key(row),
            _text_or_empty(row["objective"]),
            *_optional_sort_key(row, optional),
        )

    return _finish(parts, ["method", "protocol"], metric_column_names(wanted, METRIC_LABELS), sort_key, caption, used)


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
    require_columns(scores, [*SCORE_KEY_COLUMNS, "protocol"], "protocols_table")
    frame = select_rows(scores, None, "scores", "protocols_table", RunFilter(steps))
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
    metric_columns = metric_column_names(labels, METRIC_LABELS, _protocol_metric)
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
    used = steps_used(frame)
    table.attrs["caption"] = (
        "The main-table runs' restored test images scored under each protocol: "
        + ", ".join(labels)
        + " ('@N': RDDM's policy, resized to N × N; '@lrdm256': the LRDM test transform, padded to 256 and a "
        "multiple of 8, then resized, scored with lrdm_y). Each Δ is against the dataset's protocol at the "
        "images' own size. " + steps_text(used) + " " + AVERAGING_TEXT
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
