"""Reading and averaging the per-image score Parquet files: what every result table and figure starts from.

Every evaluation of a (run, steps) pair writes one row per test image (``lrdm.evaluation.evaluate.RESULT_COLUMNS``).
:func:`read_scores` concatenates those files; :func:`select_rows` / :func:`select_runs` keep the rows a table
uses, at one sampling-step count per dataset (:func:`select_steps`: unless given ``steps``, the count at which the
most runs were evaluated, ties going to the larger count); :func:`summarize` averages them the way the paper reports
numbers: first over the test images of each training seed, then over seeds (mean and sample standard deviation).
With a single seed the standard deviation is **NaN** (a sample standard deviation of one value is undefined), and
the written tables show ``mean ± std`` only where the standard deviation exists, i.e. where more than one seed was
trained.  :func:`wide_frame` lays a summary out wide (a mean and a std column per dataset or step count and
metric); :func:`dataset_label` and the column namers give the display names the tables
(:mod:`lrdm.results.tables`) and figures (:mod:`lrdm.results.plots`) share.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lrdm.errors import DataError
from lrdm.evaluation.columns import SCORE_KEY_COLUMNS
from lrdm.results.render import STD_SUFFIX, clean_value
from lrdm.vocab import DEFAULT_OBJECTIVE, DEFAULT_PROCESS, POLY_KINDS

#: Per-image metrics averaged by :func:`summarize`.
METRICS = ("psnr", "ssim", "input_psnr", "input_ssim")
#: Display names of the metrics in table headers.
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM"}
#: Value of the ``source`` column for rows measured by this pipeline.
THIS_RUN = "this run"

#: The polynomial schedulers of LRDM Tab. 4, in the paper's row order.
POLY_SCHEDULERS = tuple(reversed(POLY_KINDS))
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


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
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
    require_columns(scores, [*by, "seed", "image_id", *METRICS], "summarize")
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
    require_columns(scores, ["dataset", "run", "steps"], "select_steps")
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


def steps_used(frame: pd.DataFrame) -> dict[str, list[int]]:
    """The sampling-step counts of ``frame`` per dataset (datasets in :func:`dataset_order`)."""
    return {
        dataset: sorted(int(s) for s in frame.loc[frame["dataset"] == dataset, "steps"].unique())
        for dataset in dataset_order(frame["dataset"].unique())
    }


def steps_text(steps: dict[str, list[int]]) -> str:
    """The caption sentence naming the step counts of :func:`steps_used`."""
    parts = [f"{dataset_label(d)} {', '.join(str(s) for s in counts)}" for d, counts in steps.items()]
    return "Sampling steps: " + "; ".join(parts) + "."


AVERAGING_TEXT = "Mean over test images, then over training seeds (mean ± std where more than one seed was trained)."
"""The caption sentence saying how :func:`summarize` averages."""


# --------------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------------


def varying_keys(frame: pd.DataFrame, candidates: Sequence[str] = OPTIONAL_KEYS) -> list[str]:
    """The ``candidates`` that take more than one value in ``frame`` (row keys a table must show)."""
    return [key for key in candidates if frame[key].nunique(dropna=False) > 1]


def _normalise_rank_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """Blank ``order`` outside polynomial schedulers and ``rank`` outside ``fixed`` (they carry no meaning)."""
    frame = scores.copy()
    frame["order"] = frame["order"].astype("Int64").where(frame["scheduler"].isin(POLY_SCHEDULERS))
    frame["rank"] = frame["rank"].astype("Int64").where(frame["scheduler"] == "fixed")
    return frame


@dataclass(frozen=True)
class RunFilter:
    """Which score rows a table uses: the runs of ``process`` and ``objective`` (None: any), at ``steps``
    sampling steps (None: per dataset the count at which the most runs were evaluated, :func:`select_steps`),
    or at every count evaluated with ``all_steps``."""

    steps: int | None = None
    process: str | None = None
    objective: str | None = None
    all_steps: bool = False


def select_rows(
    scores: pd.DataFrame,
    keep: Callable[[pd.DataFrame], pd.Series] | None,
    need: str,
    builder: str,
    runs: RunFilter,
) -> pd.DataFrame:
    """Checks columns, keeps the rows that pass ``keep`` and ``runs``, then selects the sampling steps as
    ``runs`` says; ValueError naming what was looked for (``need``, in ``builder``) when nothing is left."""
    require_columns(scores, SCORE_KEY_COLUMNS, builder)
    frame = _normalise_rank_columns(scores)
    if keep is not None:
        frame = frame[keep(frame).to_numpy()]
    for column, value in (("process", runs.process), ("objective", runs.objective)):
        if value is not None:
            frame = frame[frame[column] == value]
            need += f" with {column} {value!r}"
    if frame.empty:
        present = sorted(scores["rank_spec"].astype(str).unique())
        objectives = sorted(scores["objective"].astype(str).unique())
        raise ValueError(
            f"{builder}: the scores hold no {need} (rank specs present: {present}; objectives: {objectives})"
        )
    return frame if runs.all_steps else select_steps(frame, runs.steps)


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
    return select_rows(scores, keep, need, "select_runs", RunFilter(steps, process, objective, all_steps))


def dataset_metric(dataset: Any, metric: str) -> str:
    """The column of ``metric`` for ``dataset``, e.g. ``"Rain1400 PSNR"``."""
    return f"{dataset_label(dataset)} {METRIC_LABELS[metric]}"


def steps_metric(steps: Any, metric: str) -> str:
    """The column of ``metric`` at ``steps`` sampling steps, e.g. ``"PSNR (5 steps)"``."""
    count = int(steps)
    return f"{METRIC_LABELS[metric]} ({count} step{'' if count == 1 else 's'})"


def metric_column_names(
    values: Iterable[Any], metrics: Sequence[str], name: Callable[[Any, str], str] = dataset_metric
) -> list[str]:
    """Per value and metric, the mean column named by ``name`` and its std partner."""
    return [
        column
        for value in values
        for metric in metrics
        for column in (name(value, metric), name(value, metric) + STD_SUFFIX)
    ]


def wide_frame(
    frame: pd.DataFrame,
    row_keys: Sequence[str],
    column_key: str = "dataset",
    name: Callable[[Any, str], str] = dataset_metric,
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
    metric_columns = metric_column_names(values, metrics, name)
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
