"""The degraded-input rows of a table: how far each test set's inputs are from their ground truth, under the
protocol that scored the runs beside them (the ``input_psnr`` / ``input_ssim`` columns of the scores)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

IMAGE_KEYS = ("dataset", "protocol", "image_id")
"""What identifies one degraded input's score: every run evaluated on the same image under the same protocol
scores the same input."""


def input_rows(
    frame: pd.DataFrame, datasets: Sequence[str], column: Callable[[Any, str], str], source: str, label: str
) -> pd.DataFrame:
    """One row per ``protocol`` label in ``frame`` (per-image score rows): ``method`` ``label``,
    ``protocol``, ``source`` and, per dataset of ``datasets`` scored under it, the mean ``input_psnr`` and
    ``input_ssim`` over its test images, in the columns ``column(dataset, "psnr")`` and
    ``column(dataset, "ssim")``.  Empty when ``frame`` has no ``protocol`` column."""
    if "protocol" not in frame.columns or frame.empty:
        return pd.DataFrame()
    images = frame[frame["dataset"].isin(list(datasets))].drop_duplicates(list(IMAGE_KEYS))
    means = images.groupby(["protocol", "dataset"], sort=False)[["input_psnr", "input_ssim"]].mean()
    rows: dict[str, dict[str, Any]] = {}
    for (protocol, dataset), values in means.iterrows():
        row = rows.setdefault(str(protocol), {"method": label, "protocol": str(protocol), "source": source})
        row[column(dataset, "psnr")] = float(values["input_psnr"])
        row[column(dataset, "ssim")] = float(values["input_ssim"])
    return pd.DataFrame(list(rows.values()))
