"""Numbers reported by the LRDM and RDDM papers, kept as data (:data:`TRANSCRIPTION_FILE`) for side-by-side tables.

Every record is one (table, method row, dataset) cell pair of a paper table, transcribed by hand from
the text of each paper (the CVPR versions of LRDM and RDDM) and labelled ``source = "reported by the paper"``.  They are
quoted only so that our own measurements can be printed next to them; nothing in the pipeline is
fitted to them.

Transcription notes (checked against each paper's prose where the prose quotes a number):

* LRDM Tab. 1 (Raindrop / Rain1400) and Tab. 2 (RealBlur-J / RealBlur-R): every row is legible.  The
  LRDM rows agree with the prose (33.09 / 0.967, 34.39 / 0.954, 30.21 / 0.933, 37.92 / 0.976).  Some
  citation markers in the Rain1400 half of Tab. 1 look garbled in the extracted text (they are not
  transcribed; only method names are).
* LRDM Tab. 3 is the ``p = 3`` column of Tab. 4 (the numbers coincide).
* LRDM Tab. 1's LRDM row matches Tab. 4's *best order per dataset* (Raindrop: poly_decrease p=2,
  33.09 / 0.9670; Rain1400: poly_decrease p=1, 34.39 / 0.9542), not the p=3 setting the prose calls the
  best balance (33.03 / 33.39 dB).  Tab. 5's "RDDM + Low-Rank" Rain1400 row (33.30 dB) is yet another
  value, and §4.5's 34.65 dB at 2 steps on Rain1400 exceeds Tab. 1.
* LRDM Tab. 5 reports GoPro SSIM 0.927 for RDDM + Low-Rank against 0.963 for RDDM, which the prose calls
  "a slight trade-off"; transcribed as printed.  Its ISTD RDDM row (30.13 / 0.956) differs from RDDM's own
  paper (30.91 / 0.962, RDDM Tab. 1).
* RDDM Tab. 1 (sampling methods): legible.  Its CelebA FID/IS, ISTD PSNR/SSIM and RainDrop PSNR/SSIM are
  repeated in RDDM Tab. 6 (SM-Res-N there is the two-network variant) and agree; the ISTD MAE of SM-Res
  and SM-Res-N agrees with RDDM Tab. 5; the LOL column is confirmed by the prose only for SM-N (16.30 dB).
* Fig. 6 and Fig. 8 are plots; only the points the prose quotes are recorded (tables ``… (prose)``).

One record is not from a paper: the LRDM repository's README (github.com/JF-Tan/LRDM, "Pre-trained Models
Checking") says that its ``eval.py configs/rain1400.yml`` on the released Rain1400 checkpoint (Hugging Face Hub
``jun0519/lrdm``, ``model-120.pt``) prints Average PSNR 34.40480469099684 and Average SSIM 0.9542205011891243,
table :data:`LRDM_README`, source :data:`README_SOURCE`, beside the main table's row of those weights evaluated here.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from lrdm.errors import DataError
from lrdm.vocab import check_choice

#: Value of the ``source`` column for every record quoted from a paper.
REPORTED_SOURCE = "reported by the paper"
#: Value of the ``source`` column of the LRDM README's record (:data:`LRDM_README`).
README_SOURCE = "reported by the LRDM README"

LRDM_TAB1 = "LRDM Tab. 1"
LRDM_TAB2 = "LRDM Tab. 2"
LRDM_TAB3 = "LRDM Tab. 3"
LRDM_TAB4 = "LRDM Tab. 4"
LRDM_TAB5 = "LRDM Tab. 5"
LRDM_FIG6_PROSE = "LRDM Fig. 6 (prose)"
LRDM_FIG8_PROSE = "LRDM Fig. 8 (prose)"
RDDM_TAB1 = "RDDM Tab. 1"
LRDM_README = "LRDM README (released checkpoint)"

#: Columns of :func:`reported_frame`, in order.
REPORTED_COLUMNS = (
    "paper",
    "table",
    "dataset",
    "method",
    "process",
    "objective",
    "scheduler",
    "order",
    "rank",
    "low_rank",
    "steps",
    "psnr",
    "ssim",
    "mae",
    "fid",
    "inception_score",
    "note",
    "protocol",
    "source",
)

TRANSCRIPTION_FILE = "reported.yaml"
"""The numbers themselves, one record per (table, method row, dataset), beside this module (package data)."""


@functools.cache
def _transcription() -> dict[str, dict[str, Any]]:
    """:data:`TRANSCRIPTION_FILE` as read: table -> ``paper``, ``common`` fields and ``records``."""
    return yaml.safe_load(resources.files("lrdm.results").joinpath(TRANSCRIPTION_FILE).read_text("utf-8"))


#: Every table identifier present in :func:`reported_frame`: the tables of :data:`TRANSCRIPTION_FILE`.
REPORTED_TABLES: tuple[str, ...] = tuple(_transcription())


LRDM_PROTOCOL = "lrdm_y@lrdm256"
"""How the LRDM paper measured every number it reports: its trainer's test, on images padded and resized to
256 (:func:`lrdm.evaluation.metrics.lrdm_test_resize`), scored with ``lrdm_y``."""
RDDM_PROTOCOLS = {"raindrop": "derain_y@256", "istd": "istd@256", "lol": "rgb@256", "celeba": None}
"""How RDDM measured each dataset of its Tab. 1: MATLAB scripts on images resized to 256 × 256 (its issue #7),
Y-channel PSNR/SSIM for deraining, the ISTD script for shadows; CelebA is scored by FID/IS (no protocol here)."""


def protocol_of(paper: str, dataset: str) -> str | None:
    """The protocol (as in the scores' ``protocol`` column) that produced ``paper``'s number on ``dataset``."""
    if paper == "LRDM":
        return LRDM_PROTOCOL
    if paper == "RDDM":
        return RDDM_PROTOCOLS[dataset]
    raise ValueError(f"unknown paper {paper!r}; known: LRDM, RDDM")


def reported_records() -> list[dict[str, Any]]:
    """Every reported record as a dict with the keys of :data:`REPORTED_COLUMNS` (None where empty), in the order
    of :data:`TRANSCRIPTION_FILE`; ``protocol`` is :func:`protocol_of` the record's paper and dataset."""
    rows: list[dict[str, Any]] = []
    for table, entry in _transcription().items():
        for record in entry["records"]:
            row: dict[str, Any] = {column: None for column in REPORTED_COLUMNS}
            row.update(paper=entry["paper"], table=table, source=REPORTED_SOURCE)
            row.update(entry.get("common", {}))
            row.update(record)
            unknown = sorted(set(row) - set(REPORTED_COLUMNS))
            if unknown:
                raise DataError(f"{TRANSCRIPTION_FILE}: {table}: unknown field(s) {unknown}; known: {REPORTED_COLUMNS}")
            row["protocol"] = protocol_of(row["paper"], row["dataset"])
            rows.append(row)
    return rows


def reported_frame(table: str | None = None) -> pd.DataFrame:
    """The reported numbers as a DataFrame with :data:`REPORTED_COLUMNS`, optionally one ``table`` only.

    ``order``, ``rank`` and ``steps`` are nullable ``Int64``; the metric columns are float (NaN where the
    paper gives no value).  Raises ValueError for an unknown ``table``.
    """
    if table is not None:
        check_choice(table, REPORTED_TABLES, "reported table")
    frame = pd.DataFrame(reported_records(), columns=list(REPORTED_COLUMNS))
    frame = frame.astype(
        {
            "order": "Int64",
            "rank": "Int64",
            "steps": "Int64",
            "low_rank": "boolean",
            "psnr": "float64",
            "ssim": "float64",
            "mae": "float64",
            "fid": "float64",
            "inception_score": "float64",
        }
    )
    if table is not None:
        frame = frame[frame["table"] == table].reset_index(drop=True)
    return frame
