"""The README's generated numbers: fragments built from ``results/`` and the tool that puts them into README.md.

Target ``readme_tables`` (``workflow/rules/report.smk``) writes one Markdown fragment per block of measured numbers
to ``results/readme/<name>.md`` (that folder is tracked by git) and copies the figures the README shows beside them;
``readme_claims`` adds the claims fragments once ``claims`` has been run.  Each fragment ends with a line naming the
commit, the machine and the date it was generated on (:func:`provenance_line`).

README.md and the pages under ``docs/`` hold each fragment between ``<!-- generated: <name> -->`` and
``<!-- end generated -->`` (each block in one of them); ``python -m lrdm.results.readme --update README.md docs/*.md``
replaces every such block with its fragment and ``--check README.md docs/*.md`` lists the blocks that differ
(``tests/results/test_readme.py`` runs the check).

The tables reuse :mod:`lrdm.results.scores` (``summarize``, ``select_steps``), :mod:`lrdm.results.tables`
(``method_label``, ``protocols_table``) and :mod:`lrdm.results.render` (``to_markdown``): the README shows the
numbers the tables under ``results/tables`` hold, laid out for reading.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lrdm.errors import DataError, LrdmError
from lrdm.files import write_bytes, write_text
from lrdm.joblog import command_status
from lrdm.paths import DEFAULT_RESULTS, readme_folder
from lrdm.results.claims import claims_from_spec, side_psnr
from lrdm.results.render import to_markdown
from lrdm.results.scores import select_steps, summarize
from lrdm.results.tables import method_label, protocols_table
from lrdm.vocab import DEFAULT_OBJECTIVE, OBJECTIVE_LABELS

#: Marker lines around a generated block in README.md.
BLOCK_START = "<!-- generated: {name} -->"
BLOCK_END = "<!-- end generated -->"
BLOCK_PATTERN = re.compile(r"<!-- generated: ([a-z0-9_]+) -->\n(.*?)<!-- end generated -->", re.DOTALL)
#: Seconds a git or nvidia-smi query may take before the machine line says "unknown".
QUERY_TIMEOUT_S = 10
#: Characters of the commit hash shown.
COMMIT_CHARS = 12
#: Column names of the fragments.
GAIN_COLUMN = "Δ PSNR over input (dB)"
UNKNOWN = "unknown"


# --------------------------------------------------------------------------------------------------
# Provenance: commit, machine, date
# --------------------------------------------------------------------------------------------------


def _query(command: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> str | None:
    """stdout of ``command`` run in ``cwd`` (stripped), or None when it is not installed, fails or times out."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or UNKNOWN


def provenance(
    configfiles: Sequence[str],
    repo: str | os.PathLike[str] = ".",
    ignore: Sequence[str | os.PathLike[str]] = (),
    today: datetime.date | None = None,
) -> dict[str, str]:
    """What a fragment was generated from and on: ``config`` (``configfiles`` in the order they were merged),
    ``commit`` of the code in ``repo`` (with ``+ uncommitted changes`` when a tracked file outside ``ignore``
    differs from it: the fragments and the documents they go into do not count), ``cpu`` (model and cores), ``gpu``
    (``nvidia-smi`` names, or ``no GPU``) and ``date`` (UTC)."""
    commit = _query(["git", "rev-parse", "HEAD"], repo)
    if commit is None:
        commit_text = UNKNOWN
    else:
        root = Path(repo).resolve()
        excluded = [f":(exclude){os.path.relpath(Path(path).resolve(), root)}" for path in ignore]
        dirty = _query(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded], repo)
        state = {None: " (work tree state unknown)", "": ""}.get(dirty, " + uncommitted changes")
        commit_text = commit[:COMMIT_CHARS] + state
    gpus = _query(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    day = today or datetime.datetime.now(datetime.UTC).date()
    return {
        "config": " + ".join(configfiles) or "config/config.yaml",
        "commit": commit_text,
        "cpu": f"{cpu_name()} ({os.cpu_count()} cores)",
        "gpu": ", ".join(gpus.splitlines()) if gpus else "no GPU",
        "date": day.isoformat(),
    }


def provenance_line(info: Mapping[str, str], target: str = "readme_tables", command: str | None = None) -> str:
    """The last line of every fragment: which target (or other ``command``) made it, from which config, at which
    commit, where, when."""
    return (
        f"<sub>Generated by `{command or f'snakemake {target}'}` from `{info['config']}` at commit {info['commit']}, "
        f"on {info['cpu']}, {info['gpu']}, {info['date']}.</sub>\n"
    )


# --------------------------------------------------------------------------------------------------
# Fragments of readme_tables
# --------------------------------------------------------------------------------------------------


MACHINE_SPREAD_DB = 0.6
"""How far one row of the one-seed scores table moved when the embedded default's ``all`` was run again on another
machine: up to 0.6 dB per row between an Intel and an AMD CPU (issue 32), with the rows reordered by score; the
claims table's directions (three seeds) held on both machines."""


def scores_summary(scores: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Per run at ``steps`` sampling steps (mean over test images, then seeds; :func:`summarize`): ``dataset,
    process, objective, rank_spec, psnr_mean, ssim_mean, input_psnr_mean, input_ssim_mean, n_seeds`` and
    ``gain_psnr``, the PSNR gain over the degraded input."""
    summary = summarize(select_steps(scores, steps), ["dataset", "process", "objective", "rank_spec"])
    return summary.assign(gain_psnr=summary["psnr_mean"] - summary["input_psnr_mean"])


def scores_frame(summary: pd.DataFrame, protocols: Mapping[str, str], order: Sequence[Sequence[str]]) -> pd.DataFrame:
    """The README's scores table from :func:`scores_summary`: per dataset its degraded input, then its runs, in
    ``order`` (``[dataset, process, objective, rank_spec]`` of each run in the config's order,
    :func:`lrdm.workflow.runs_in_config_order`), never by score; columns dataset, protocol, run, PSNR, SSIM and
    the PSNR gain over the input.  ``protocols``: each dataset's.  Raises ValueError for a run not in ``order``."""
    keys = ["dataset", "process", "objective", "rank_spec"]
    position = {tuple(key): index for index, key in enumerate(order)}
    unordered = [tuple(k) for k in summary[keys].itertuples(index=False) if tuple(k) not in position]
    if unordered:
        raise ValueError(f"scores_frame: run {'/'.join(unordered[0])} is not in the config's order")
    ranked = summary.assign(position=[position[tuple(k)] for k in summary[keys].itertuples(index=False)])
    ranked = ranked.sort_values("position", kind="stable")
    rows = []
    for dataset in dict.fromkeys(ranked["dataset"]):
        part = ranked[ranked["dataset"] == dataset]
        first = part.iloc[0]
        rows.append(
            {"dataset": dataset, "protocol": protocols[dataset], "run": "degraded input",
             "PSNR": first["input_psnr_mean"], "SSIM": first["input_ssim_mean"], GAIN_COLUMN: None}
        )  # fmt: skip
        for record in part.to_dict("records"):
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocols[dataset],
                    "run": method_label(record["process"], record["rank_spec"], record["objective"]),
                    "PSNR": record["psnr_mean"],
                    "SSIM": record["ssim_mean"],
                    GAIN_COLUMN: record["gain_psnr"],
                }
            )
    return pd.DataFrame(rows)


def scores_caption(summary: pd.DataFrame, steps: int) -> str:
    """The scores table's caption: what it averages, that its rows follow the config and are no ranking, how far
    another machine moved a one-seed row (:data:`MACHINE_SPREAD_DB`), and where to compare methods instead."""
    seeds = sorted(set(summary["n_seeds"].astype(int)))
    order = (
        "Rows follow the config (datasets as listed under `datasets`, each dataset's runs in the order its targets "
        "name them), not the scores: the table is not a ranking."
    )
    if seeds == [1]:
        return (
            f"Mean test scores at {steps} sampling steps, one training seed per run. {order} Trained again on "
            f"another machine, a row moved by up to {MACHINE_SPREAD_DB} dB (an AMD against an Intel CPU, issue 32) "
            "and the rows reordered, while the claims table's directions (several seeds, paired) held on both: "
            "compare methods there, not here."
        )
    return (
        f"Mean test scores at {steps} sampling steps, mean over {'/'.join(map(str, seeds))} training seeds per run. "
        f"{order} Compare methods in the claims table (paired by seed, a 95 % interval each)."
    )


def scores_fragment(table: pd.DataFrame, caption: str) -> str:
    """Fragment ``scores``: the caption in bold, then :func:`scores_frame`'s table."""
    return f"**{caption}**\n\n" + to_markdown(table)


def gains_text(table: pd.DataFrame) -> str:
    """One bullet per dataset of :func:`scores_frame`, in its order: how many runs beat the input, the range of
    gains, and the runs below it."""
    lines = []
    for dataset, part in table.groupby("dataset", sort=False):
        runs = part[part[GAIN_COLUMN].notna()]
        gains = runs[GAIN_COLUMN].astype(float)
        below = runs[gains <= 0]
        text = (
            f"- `{dataset}`: {len(runs) - len(below)} of {len(runs)} runs score above the degraded input "
            f"(Δ PSNR {gains.min():+.2f} to {gains.max():+.2f} dB)"
        )
        if not below.empty:
            named = (f"{run} ({gain:+.2f})" for run, gain in zip(below["run"], below[GAIN_COLUMN]))
            text += "; at or below it: " + ", ".join(named)
        lines.append(text + ".")
    return "\n".join(lines) + "\n"


def run_setup_frame(run_dirs: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Per dataset, from each run's resolved ``config.yaml`` and ``losses.csv``: the number of runs, the backbones,
    training steps, learning rates, and the range of seconds per training step (the ``seconds`` column at the
    last logged step over that step)."""
    records = []
    for run in map(Path, run_dirs):
        config = yaml.safe_load((run / "config.yaml").read_text())
        losses = pd.read_csv(run / "losses.csv")
        if losses.empty:
            raise LrdmError(f"{run / 'losses.csv'}: no losses logged")
        last = losses.iloc[-1]
        records.append(
            {
                "dataset": config["extra"]["dataset"],
                "backbone": config["backbone"],
                "steps": int(config["steps"]),
                "lr": float(config["lr"]),
                "per_step": float(last["seconds"]) / float(last["step"]),
            }
        )
    frame = pd.DataFrame(records)

    def joined(values: pd.Series) -> str:
        return " / ".join(f"`{v}`" if isinstance(v, str) else f"{v:g}" for v in dict.fromkeys(values))

    rows = []
    for dataset, part in frame.groupby("dataset", sort=True):
        rows.append(
            {
                "dataset": dataset,
                "runs": len(part),
                "backbone": joined(part["backbone"]),
                "training steps": joined(part["steps"]),
                "lr": joined(part["lr"]),
                "seconds per step": f"{part['per_step'].min():.3f}–{part['per_step'].max():.3f}",
            }
        )
    return pd.DataFrame(rows)


def benchmark_frame(paths_by_rule: Mapping[str, Sequence[str | os.PathLike[str]]]) -> pd.DataFrame:
    """Per rule, from Snakemake's benchmark files (tab-separated, columns ``s`` and ``max_rss`` in MB): jobs,
    total and mean wall seconds, peak RSS.  Raises LrdmError naming a missing file."""
    rows = []
    for rule, paths in paths_by_rule.items():
        if not paths:
            continue
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise LrdmError(f"{missing[0]}: no benchmark file ({len(missing)} missing); run the jobs first")
        bench = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
        rows.append(
            {
                "rule": rule,
                "jobs": len(paths),
                "wall seconds, total": round(float(bench["s"].sum())),
                "wall seconds per job": round(float(bench["s"].mean())),
                "peak RSS (MB)": round(float(pd.to_numeric(bench["max_rss"], errors="coerce").max())),
            }
        )
    return pd.DataFrame(rows)


def protocols_fragment(protocol_scores: pd.DataFrame) -> str:
    """The ``protocols`` target's table (:func:`~lrdm.results.tables.protocols_table`) with its caption."""
    table = protocols_table(protocol_scores)
    return f"**{table.attrs['caption']}**\n\n" + to_markdown(table)


def image_lines(paths: Iterable[str]) -> str:
    """Markdown image lines, each alt text the file's stem."""
    return "".join(f"![{Path(p).stem}]({p})\n" for p in paths)


# --------------------------------------------------------------------------------------------------
# Fragments of readme_claims
# --------------------------------------------------------------------------------------------------


def claims_fragment(claims: pd.DataFrame) -> str:
    """The claims table (``results/tables/claims.csv``) for reading: claim with both sides' PSNR, paper, paired
    difference mean ± std, 95 % interval, verdict."""
    rows = []
    for record in claims.to_dict("records"):
        rows.append(
            {
                "dataset": record["dataset"],
                "claim": record["claim"],
                "paper": record["source"],
                "better side (dB)": f"{record['better_psnr_mean']:.2f} ± {record['better_psnr_std']:.2f}",
                "worse side (dB)": f"{record['worse_psnr_mean']:.2f} ± {record['worse_psnr_std']:.2f}",
                "difference (dB)": f"{record['difference_psnr_mean']:+.2f} ± {record['difference_psnr_std']:.2f}",
                "95 % interval": f"[{record['ci95_low_psnr']:.2f}, {record['ci95_high_psnr']:.2f}]",
                "seeds": int(record["n_seeds"]),
                "verdict": record["verdict"],
            }
        )
    return to_markdown(pd.DataFrame(rows))


def verdicts_text(claims: pd.DataFrame) -> str:
    """One bullet per verdict with the claims that got it."""
    lines = []
    for verdict, part in claims.groupby("verdict", sort=True):
        names = "; ".join(f"{c} ({d})" for c, d in zip(part["claim"], part["dataset"]))
        lines.append(f"- {verdict} ({len(part)} of {len(claims)}): {names}.")
    return "\n".join(lines) + "\n"


def claims_seeds_frame(scores: pd.DataFrame, spec: Mapping[str, Any], sampling_steps: int) -> pd.DataFrame:
    """Mean test PSNR per seed of every run a claim compares at ``sampling_steps`` (rows), one column per seed."""
    rows = []
    sides = {
        (side.rank_spec, side.objective): side
        for claim in claims_from_spec(spec, sampling_steps)
        for side in claim.sides()
        if side.steps == (int(sampling_steps),)
    }
    for dataset in spec["datasets"]:
        for (rank_spec, objective), side in sides.items():
            psnr = side_psnr(scores, dataset, side)
            name = rank_spec if objective == DEFAULT_OBJECTIVE else f"{rank_spec}, {OBJECTIVE_LABELS[objective]}"
            rows.append({"dataset": dataset, "run": name, **{f"seed {s} PSNR": v for s, v in psnr.items()}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Writing fragments, copying figures
# --------------------------------------------------------------------------------------------------


def write_fragments(fragments: Mapping[str, str], folder: str | os.PathLike[str], footer: str = "") -> list[Path]:
    """Writes each fragment as ``folder/<name>.md`` (atomically), ``footer`` (if any) appended after a blank
    line; returns the paths."""
    paths = []
    for name, text in fragments.items():
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"fragment name {name!r}: use lowercase letters, digits and _")
        path = Path(folder) / f"{name}.md"
        write_text(path, text.rstrip("\n") + "\n" + (f"\n{footer}" if footer else ""))
        paths.append(path)
    return paths


def copy_files(pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]]) -> list[Path]:
    """Copies each ``(source, destination)`` atomically; returns the destinations."""
    copied = []
    for source, destination in pairs:
        write_bytes(destination, Path(source).read_bytes())
        copied.append(Path(destination))
    return copied


# --------------------------------------------------------------------------------------------------
# README blocks
# --------------------------------------------------------------------------------------------------


def readme_blocks(text: str) -> dict[str, str]:
    """The generated blocks of a README, name -> content.  Raises :class:`DataError` for a start marker without its end
    marker or a name used twice."""
    blocks: dict[str, str] = {}
    for match in BLOCK_PATTERN.finditer(text):
        name = match.group(1)
        if name in blocks:
            raise DataError(f"README block {name!r} appears twice")
        blocks[name] = match.group(2)
    starts = re.findall(r"<!-- generated: ([a-z0-9_]+) -->", text)
    unclosed = [name for name in starts if name not in blocks]
    if unclosed:
        raise DataError(f"README block {unclosed[0]!r} has no '{BLOCK_END}' line after it")
    return blocks


def plan_summary(folder: str | os.PathLike[str], targets: Sequence[str]) -> str:
    """Fragment ``plan_summary``: one row per target, in the order given, from the ``total`` rows of
    ``<folder>/plan_<target>.csv`` (what ``lrdm plan <target> --configfile config/paper.yaml`` wrote, copied
    there)."""
    rows = []
    for target in targets:
        path = Path(folder) / f"plan_{target}.csv"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no plan of {target!r}; run `lrdm plan {target} --configfile config/paper.yaml`"
            )
        frame = pd.read_csv(path)
        total = frame[frame["section"] == "total"].set_index("quantity")["value"]
        rows.append(
            {
                "target": f"`{target}`",
                "jobs": int(total["jobs"]),
                "training runs": int(total["training_runs"]),
                "GPU-hours (training + restoring)": f"{total['gpu_hours']:.1f} ({total['training_gpu_hours']:.1f} + "
                f"{total['restoring_gpu_hours']:.1f})",
                "at TFLOP/s": f"{total['tflops']:.0f}",
                "disk for the runs": f"{total['run_disk_gb']:.1f} GB",
            }
        )
    return to_markdown(pd.DataFrame(rows))


def fragment_path(folder: str | os.PathLike[str], name: str) -> Path:
    return Path(folder) / f"{name}.md"


def _fragment(folder: str | os.PathLike[str], name: str) -> str:
    path = fragment_path(folder, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no generated fragment for README block {name!r}; run `snakemake readme_tables`"
        )
    return path.read_text()


def stale_blocks(text: str, folder: str | os.PathLike[str]) -> list[str]:
    """Names of the README blocks whose content differs from their fragment under ``folder``."""
    return [name for name, content in readme_blocks(text).items() if content != _fragment(folder, name)]


def update_readme(text: str, folder: str | os.PathLike[str]) -> str:
    """``text`` with every generated block replaced by its fragment under ``folder``."""
    readme_blocks(text)  # checks the markers

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{BLOCK_START.format(name=name)}\n{_fragment(folder, name)}{BLOCK_END}"

    return BLOCK_PATTERN.sub(replace, text)


def documents_blocks(texts: Mapping[str, str]) -> dict[str, str]:
    """The generated blocks of several documents (path -> text), block name -> the path holding it.  Raises
    :class:`DataError` for a block name used in two documents (or twice in one)."""
    where: dict[str, str] = {}
    for path, text in texts.items():
        for name in readme_blocks(text):
            if name in where:
                raise DataError(f"README block {name!r} appears in {where[name]} and in {path}")
            where[name] = path
    return where


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lrdm.results.readme (--update | --check) README.md [docs/*.md ...] [--folder results/readme]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lrdm.results.readme",
        description="Replace (--update) or compare (--check) the generated blocks of the README and the docs/ pages "
        "with results/readme/.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", metavar="FILE", nargs="+", help="rewrite the files' generated blocks in place")
    mode.add_argument(
        "--check", metavar="FILE", nargs="+", help="exit 1 when a generated block differs from its fragment"
    )
    mode.add_argument(
        "--plan-summary",
        metavar="TARGET",
        nargs="+",
        help="write <folder>/plan_summary.md from the plan_<TARGET>.csv files of lrdm plan, a row per TARGET",
    )
    parser.add_argument("--folder", default=readme_folder(DEFAULT_RESULTS), help="the fragments (default: %(default)s)")
    args = parser.parse_args(argv)
    return command_status(parser.prog, lambda: _update_or_check(args))


def _update_or_check(args: argparse.Namespace) -> int:
    """:func:`main` once its arguments are read: 0, or 1 when ``--check`` finds a block that differs."""
    if args.plan_summary:
        path = fragment_path(args.folder, "plan_summary")
        write_text(path, plan_summary(args.folder, args.plan_summary))
        print(f"wrote {path}")
        return 0
    documents = [Path(name) for name in (args.update or args.check)]
    texts = {str(path): path.read_text() for path in documents}
    documents_blocks(texts)  # each block in one place
    if args.check:
        stale = [(path, name) for path in documents for name in stale_blocks(texts[str(path)], args.folder)]
        for path, name in stale:
            print(f"{path}: block {name!r} differs from {fragment_path(args.folder, name)}", file=sys.stderr)
        return 1 if stale else 0
    updated = {str(path): update_readme(texts[str(path)], args.folder) for path in documents}
    for path in documents:
        if updated[str(path)] != texts[str(path)]:
            write_text(path, updated[str(path)])
        print(f"{path}: {len(readme_blocks(updated[str(path)]))} generated block(s) up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
