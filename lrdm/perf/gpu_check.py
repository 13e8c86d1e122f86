"""The GPU check's one Parquet file and its Markdown summary (``benchmarks/gpu-check.sh``).

The script runs ``lrdm bench --preset gpu`` per (backbone, precision) and two 300-step trainings at the
paper's size (fp32 and bf16); this module puts their rows in one table and summarises it:

* training-step images/s per mode, backbone, precision and case (batch 1 and 8, eager and compiled);
* sampling images/s and MFU at 1–10 steps;
* the two trainings' losses side by side.

    python -m lrdm.perf.gpu_check --out check.parquet --bench bench-*.parquet --losses fp32=a.csv bf16=b.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lrdm.files import write_parquet, write_text
from lrdm.results.render import to_markdown

LOSS_OPERATION = "train_300"
"""``operation`` of the loss rows; their ``mode`` is the training's precision label and ``steps`` its step."""
LOSS_EVERY = 50
"""Steps between the loss rows the summary shows."""
LATE_LOSSES = 50
"""Last steps whose mean loss the summary compares."""


def loss_rows(label: str, path: str | Path) -> pd.DataFrame:
    """A training's ``losses.csv`` (step, loss, seconds) as rows of the check: ``operation`` :data:`LOSS_OPERATION`,
    ``mode`` ``label``."""
    losses = pd.read_csv(path)
    missing = {"step", "loss"} - set(losses.columns)
    if missing:
        raise ValueError(f"{path} is not a losses.csv: it lacks {sorted(missing)}")
    return pd.DataFrame(
        {"operation": LOSS_OPERATION, "mode": label, "steps": losses["step"], "loss": losses["loss"]}
    )


def combine(bench_files: list[str | Path], losses: dict[str, str | Path]) -> pd.DataFrame:
    """The bench rows of every file and the loss rows of every labelled ``losses.csv``, in one frame (the loss
    column is empty on bench rows)."""
    if not bench_files:
        raise ValueError("the GPU check needs at least one bench Parquet file")
    frames = [pd.read_parquet(path) for path in bench_files]
    frames += [loss_rows(label, path) for label, path in losses.items()]
    return pd.concat(frames, ignore_index=True)


def _table(frame: pd.DataFrame, index: list[str], columns: str, values: str, digits: int) -> str:
    if frame.empty:
        return "(no rows)\n"
    pivot = frame.pivot_table(index=index, columns=columns, values=values, aggfunc="median")
    return to_markdown(pivot.round(digits).reset_index().rename(columns=str))


def markdown_summary(frame: pd.DataFrame) -> str:
    """The check's Markdown summary: training steps, sampling with MFU, losses side by side."""
    bench = frame[frame["operation"] != LOSS_OPERATION]
    steps = bench[bench["operation"] == "train_step"]
    sampling = bench[bench["operation"] == "sampling"]
    losses = frame[frame["operation"] == LOSS_OPERATION]
    parts = [
        "## Training step (images/s)\n",
        _table(steps, ["backbone", "precision", "case"], "mode", "images_per_s", 2),
        "\n## Sampling (images/s)\n",
        _table(sampling, ["backbone", "precision", "case", "mode"], "steps", "images_per_s", 2),
        "\n## Sampling MFU (bf16 peak)\n",
        _table(sampling, ["backbone", "precision", "case", "mode"], "steps", "mfu", 4),
        "\n## 300-step training at the paper's size: loss\n",
    ]
    if losses.empty:
        parts.append("(no rows)\n")
    else:
        side = losses.pivot_table(index="steps", columns="mode", values="loss")
        shown = side[(side.index % LOSS_EVERY == 0) | (side.index == side.index.max())]
        parts.append(to_markdown(shown.round(5).reset_index().rename(columns=str)))
        late = side.tail(LATE_LOSSES).mean()
        parts.append(f"\nMean loss of the last {LATE_LOSSES} steps: "
                     + ", ".join(f"{label} {value:.5f}" for label, value in late.items()) + "\n")  # fmt: skip
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrdm.perf.gpu_check", description=__doc__)
    parser.add_argument("--out", required=True, help="the one Parquet file of the check")
    parser.add_argument("--summary", help="also write the Markdown summary here")
    parser.add_argument("--bench", nargs="+", required=True, help="lrdm bench Parquet files")
    parser.add_argument("--losses", nargs="*", default=[], metavar="LABEL=CSV", help="a training's losses.csv")
    args = parser.parse_args(argv)
    losses = {}
    for pair in args.losses:
        label, sep, path = pair.partition("=")
        if not sep:
            parser.error(f"--losses expects LABEL=CSV, got {pair!r}")
        losses[label] = path
    frame = combine(args.bench, losses)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, out)
    summary = markdown_summary(frame)
    if args.summary:
        write_text(Path(args.summary), summary)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
