"""Writing a display frame (see :mod:`lrdm.results.tables`) as CSV, GitHub Markdown and booktabs LaTeX.

CSV keeps the raw numbers; Markdown and LaTeX round PSNR to 2 decimals and SSIM to 4, and show ``mean ± std``
where a column has its ``"… std"`` partner. Every file is written atomically (:mod:`lrdm.files`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lrdm.files import write_text

#: Suffix of the column holding a metric's standard deviation over seeds.
STD_SUFFIX = " std"
#: Decimals in Markdown/LaTeX by metric (matched case-insensitively in the column name).
PSNR_DECIMALS = 2
SSIM_DECIMALS = 4
#: Decimals of other non-integral floats in Markdown/LaTeX.
OTHER_DECIMALS = 3
#: Cell text for a missing value in Markdown/LaTeX.
MISSING_TEXT = "–"
PLUS_MINUS = "±"


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def clean_value(value: Any) -> Any:
    """Hashable, comparable plain value: None for missing, int/float for numpy numbers."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


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
    value = clean_value(value)
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
            if partner is not None and clean_value(frame[partner].iloc[i]) is not None and text != MISSING_TEXT:
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
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    PLUS_MINUS: r"$\pm$",
    MISSING_TEXT: "--",
    "²": r"\textsuperscript{2}",
    "η": r"$\eta$",
    "×": r"$\times$",
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
    lines += [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in shown.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in shown.itertuples(index=False, name=None)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out_stem: str | os.PathLike[str], caption: str) -> list[Path]:
    """Writes ``out_stem.csv`` (raw numbers), ``out_stem.md`` (caption line + Markdown table) and
    ``out_stem.tex`` (booktabs LaTeX table with ``caption``); returns the three paths.  Each file is
    written atomically (temporary file, then rename)."""
    stem = Path(out_stem)
    csv_path, md_path, tex_path = (stem.with_name(stem.name + suffix) for suffix in (".csv", ".md", ".tex"))
    write_text(csv_path, frame.to_csv(index=False))
    write_text(md_path, f"**{caption}**\n\n" + to_markdown(frame))
    write_text(tex_path, to_latex(frame, caption, label=f"tab:{stem.name}"))
    return [csv_path, md_path, tex_path]


