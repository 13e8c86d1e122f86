"""``lrdm plan``: what a workflow target will cost, before anything runs.

For a config (the Snakefile's ``config/config.yaml`` merged with each ``--configfile``, as Snakemake merges them)
and a target, :func:`make_plan` gathers:

* the jobs per rule, from Snakemake's own dry run (``snakemake -n``), so they equal what it would run;
* the training runs (from the dry run's ``train`` jobs) and their steps;
* FLOPs of one optimiser step and of one sampling step per image, counted from the network as built
  (:mod:`lrdm.perf.cost`, on the ``meta`` device), and the GPU-hours they add up to at a stated throughput;
* disk for checkpoints and ``model.pt`` (their exact sizes), peak GPU memory of a training process (weights,
  gradients, Adam, EMA, saved activations: a lower bound, without the allocator's and CUDA's overhead) and its
  host memory (the decoded training split, which training holds whole: an estimate);
* the dataset archives and official weights still missing, with where each goes.

:func:`render_markdown` and :func:`plan_frame` write it as ``<results>/plan.md`` and ``<results>/plan.csv``.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lrdm.errors import ConfigError, LrdmError

SNAKEFILE = "Snakefile"
SNAKEFILE_CONFIG = "config/config.yaml"
"""The ``configfile`` of the Snakefile, which every ``--configfile`` extends."""
DEFAULT_TARGET = "all"
GPU_CHECK_PARQUET = Path("results/gpu-check/gpu-check.parquet")
"""Where ``benchmarks/gpu-check.sh`` writes its Parquet file by default (its ``--out`` folder)."""
ASSUMED_TFLOPS = 40.0
"""Sustained model TFLOP/s of one GPU when nothing was measured: an assumption, not a measurement (an H100 in
fp32 with TF32 convolutions; about 4 % of its bf16 tensor-core peak).  ``--tflops`` or a GPU check replaces it."""
CHECK_OPERATION = "train_step"
CHECK_MODE = "official_recipe"
CHECK_BATCH = 1
"""The GPU check's row whose throughput the plan uses: one optimiser step of the official recipe, batch 1."""
SECONDS_PER_HOUR = 3600
TERA = 1e12
GIGA = 1e9
RGB_BYTES = 3
"""Bytes of one decoded pixel (uint8 RGB): training caches its split decoded."""
IMAGES_PER_PAIR = 2
SIZE_SAMPLE = 200
"""Training images whose header the plan reads to measure a prepared split's mean size."""
TYPICAL_SIZES = {
    "raindrop": (480, 720),
    "rain1400": (384, 512),
    "gopro": (720, 1280),
    "realblur_j": (773, 680),
    "realblur_r": (773, 680),
    "istd": (480, 640),
    "celebahq": (1024, 1024),
}
"""(height, width) of a typical image of each registry dataset, for the host-memory estimate before it is
prepared (approximate; once prepared the plan reads the real sizes)."""
JOB_STATS = "Job stats:"
TRAIN_RULE = "train"
RESTORE_RULES = ("evaluate", "evaluate_official")
"""Rules that restore a test split (wildcards ``dataset`` and ``steps``)."""
OFFICIAL_RESTORE_RULE = "evaluate_official"
COST_KEYS = ("process", "objective", "backbone", "network", "dim", "dim_mults", "batch_size", "grad_accum",
             "keep_checkpoints", "resize", "crop", "T")  # fmt: skip
"""TrainConfig keys that decide a run's network and its costs: runs equal in these share one count."""


# --------------------------------------------------------------------------------------------- the dry run


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: dict[str, str]


@dataclass(frozen=True)
class DryRun:
    counts: dict[str, int]
    """Jobs per rule, Snakemake's own job-stats table (``total`` left out)."""
    jobs: list[Job]


def base_config(snakefile: str | Path = SNAKEFILE) -> Path:
    """The Snakefile's own ``configfile``, which every ``--configfile`` extends."""
    return Path(snakefile).parent / SNAKEFILE_CONFIG


def merged_config(configfiles: Sequence[str | Path], base: str | Path = SNAKEFILE_CONFIG) -> dict[str, Any]:
    """The workflow's config: ``base`` updated by each file in turn, with Snakemake's own merge, and its folders
    (``results``, ``resources``, ``downloads``) filled in as the Snakefile does (:mod:`lrdm.paths`)."""
    from snakemake.utils import update_config

    from lrdm.paths import config_name, output_folders

    config: dict[str, Any] = {}
    for path in [base, *configfiles]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path, encoding="utf-8") as handle:
            update_config(config, yaml.safe_load(handle) or {})
    folders = output_folders(config, config_name(configfiles, base))
    return {**config, "results": folders.results, "resources": folders.resources, "downloads": folders.downloads}


def snakemake_command(configfiles: Sequence[str | Path], target: str, snakefile: str | Path) -> list[str]:
    """Snakemake's dry run of ``target`` (this Python's Snakemake, in the current folder).  The config files go
    after one ``--configfile``, in order: a second ``--configfile`` flag would replace the first's files."""
    files = ["--configfile", *map(str, configfiles)] if configfiles else []
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), target, "--dry-run", *files]


def parse_job_stats(text: str) -> dict[str, int]:
    """The first job-stats table of a Snakemake dry run (``{}`` when there is nothing to be done)."""
    lines = text.splitlines()
    if JOB_STATS not in lines:
        return {}
    counts = {}
    for line in lines[lines.index(JOB_STATS) + 3 :]:  # after the title, header and rule of dashes
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


RULE_LINE = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS_LINE = re.compile(r"^\s+wildcards: (.*)$")


def parse_jobs(text: str) -> list[Job]:
    """Every job block (``rule NAME:`` and its ``wildcards:`` line) of a Snakemake dry run."""
    jobs: list[Job] = []
    for line in text.splitlines():
        if match := RULE_LINE.match(line):
            jobs.append(Job(match.group(1), {}))
        elif (match := WILDCARDS_LINE.match(line)) and jobs:
            pairs = (item.partition("=") for item in match.group(1).split(", "))
            jobs[-1].wildcards.update({key: value for key, _, value in pairs})
    return jobs


def dry_run(configfiles: Sequence[str | Path], target: str = DEFAULT_TARGET, snakefile: str | Path = SNAKEFILE
            ) -> DryRun:  # fmt: skip
    """Snakemake's dry run of ``target``: its job counts and jobs.  A failing dry run raises with its last line."""
    if not Path(snakefile).is_file():
        raise FileNotFoundError(
            f"{snakefile} does not exist: run lrdm plan in the repository root, or pass --snakefile"
        )
    result = subprocess.run(snakemake_command(configfiles, target, snakefile), capture_output=True, text=True)
    text = result.stdout + "\n" + result.stderr
    if result.returncode != 0:
        detail = [line for line in text.splitlines() if line.strip()]
        raise LrdmError(f"snakemake --dry-run {target} failed: {detail[-1] if detail else 'no output'}")
    counts = parse_job_stats(text)
    jobs = parse_jobs(text)
    found = Counter(job.rule for job in jobs)
    if counts and found != Counter(counts):
        raise LrdmError(f"could not read the dry run's jobs: the job table counts {counts}, the job list {found}")
    return DryRun(counts, jobs)


# --------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetSize:
    train_pairs: float
    test_images: float
    train_pixels: float
    """Mean pixels of one training image."""
    source: str
    """How the sizes were found: the prepared index, or the registry's counts and a typical size."""


def _image_pixels(paths: Iterable[Path]) -> float:
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.width * image.height)
    return sum(sizes) / len(sizes) if sizes else math.nan


def dataset_size(config: dict[str, Any], name: str) -> DatasetSize:
    """Pairs, test images and training-image size of ``name``: read from its index when it is prepared,
    else the registry's expected counts and :data:`TYPICAL_SIZES` (or the synthetic ``size``)."""
    from lrdm.data.index import read_index
    from lrdm.data.registry import load_registry
    from lrdm.workflow import dataset_index_path

    spec = config["datasets"][name]
    index = Path(dataset_index_path(config, name))
    if index.is_file():
        frame = read_index(index)
        train = frame[frame["split"] == "train"]
        paths = [p if Path(p).is_absolute() else index.parent / p for p in train["input"].head(SIZE_SAMPLE)]
        return DatasetSize(len(train), int((frame["split"] == "test").sum()), _image_pixels(map(Path, paths)),
                           f"index {index}")  # fmt: skip
    if spec["source"] == "synthetic":
        side = spec.get("size", math.nan)
        return DatasetSize(math.nan, math.nan, side * side, "synthetic, not made yet: counts unknown")
    if spec["source"] == "registry":
        entry = load_registry()[name]
        height, width = TYPICAL_SIZES.get(name, (math.nan, math.nan))
        return DatasetSize(entry.expected_counts.get("train", math.nan), entry.expected_counts.get("test", math.nan),
                           height * width, "registry counts, typical image size")  # fmt: skip
    return DatasetSize(math.nan, math.nan, math.nan, "folders, not indexed yet: sizes unknown")


def train_size(run: Any) -> tuple[int, int]:
    """(height, width) of a training image as the network sees it: ``resize`` when set, else the crop."""
    side = run.resize if run.resize is not None else run.crop
    return side, side


def eval_size(config: dict[str, Any], name: str, size: DatasetSize) -> tuple[int, int]:
    """(height, width) of a test image as the network sees it: the dataset's ``eval_resize`` (the LRDM
    transform's size for ``lrdm``), else the typical image's square of equal area."""
    from lrdm.evaluation.evaluate import LRDM_TRANSFORM
    from lrdm.evaluation.metrics import LRDM_TEST_SIZE

    resize = config["datasets"][name].get("eval_resize")
    if resize == LRDM_TRANSFORM:
        return LRDM_TEST_SIZE, LRDM_TEST_SIZE
    if resize is not None:
        return int(resize), int(resize)
    if math.isnan(size.train_pixels):
        raise ConfigError(f"datasets.{name}: image size unknown; prepare it or set eval_resize", f"datasets.{name}")
    side = int(math.sqrt(size.train_pixels))
    return side, side


# --------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    target: str
    configfiles: list[str]
    counts: dict[str, int]
    tflops: float
    tflops_source: str
    training: pd.DataFrame
    """One row per (dataset, process, objective): runs, steps, FLOPs, GPU-hours, disk and memory."""
    restoring: pd.DataFrame
    """One row per (rule, dataset, steps): jobs, test images, FLOPs, GPU-hours."""
    missing: pd.DataFrame
    """One row per missing file: what, the file, where it comes from."""
    notes: list[str] = field(default_factory=list)


def measured_tflops(path: str | Path, step_flops_per_image: float) -> float | None:
    """Sustained TFLOP/s of the GPU check at ``path`` (``None`` when it is absent): its median images/s of
    one official-recipe optimiser step at batch 1, times ``step_flops_per_image``."""
    path = Path(path)
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    rows = frame[(frame["operation"] == CHECK_OPERATION) & (frame["mode"] == CHECK_MODE)
                 & (frame["case"].str.startswith(f"batch {CHECK_BATCH},"))]  # fmt: skip
    if rows.empty:
        raise LrdmError(f"{path} has no {CHECK_OPERATION} row of mode {CHECK_MODE} at batch {CHECK_BATCH}")
    return float(rows["images_per_s"].median()) * step_flops_per_image / TERA


def _run_configs(config: dict[str, Any], jobs: list[Job]) -> list[tuple[str, Any]]:
    from lrdm.workflow import Run, dataset_index_path, run_config

    max_rank = config.get("max_rank")
    runs = []
    for job in jobs:
        if job.rule != TRAIN_RULE:
            continue
        run = Run.from_wildcards(job.wildcards)
        index = dataset_index_path(config, run.dataset)
        runs.append((run.dataset, run_config(config, run, index, max_rank if isinstance(max_rank, int) else None)))
    return runs


def official_run_config(config: dict[str, Any], dataset: str) -> Any:
    """The config an ``official_weights`` import will most likely resolve to, before the checkpoint is there: the
    dataset's full-rank run of the default process (``train``, the dataset's ``train``), with the entry's ``set``
    keys over it.  What the plan counts an official evaluation's network with."""
    from lrdm.config import TrainConfig
    from lrdm.vocab import DEFAULT_OBJECTIVE, DEFAULT_PROCESS
    from lrdm.workflow import Run, dataset_index_path, official_weights, run_values

    run = Run(dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, "full", int(config["seeds"][0]))
    values = run_values(config, run, dataset_index_path(config, dataset), None)
    return TrainConfig.from_dict({**values, **official_weights(config)[dataset].get("set", {})})


def _cost_key(run: Any, eval_hw: tuple[int, int]) -> tuple:
    values = run.to_dict()
    return tuple(str(values[key]) for key in COST_KEYS) + (eval_hw,)


def _gpu_hours(flops: float, tflops: float) -> float:
    return flops / (tflops * TERA) / SECONDS_PER_HOUR


def missing_files(config: dict[str, Any], jobs: list[Job]) -> pd.DataFrame:
    """Dataset archives (of the datasets the dry run prepares) and official weights (of the datasets it
    imports) that are not in place, with where each goes and where it comes from: a Hub entry whose download the
    dry run plans is listed as downloaded by the workflow, with its size where the entry gives it (``size``) and
    its place in the Hugging Face cache where it is already there (no request to the Hub)."""
    from lrdm.data.registry import load_registry
    from lrdm.hub import cached_file
    from lrdm.workflow import is_hub_entry, official_hub_file, official_source, official_weights

    downloads = Path(config["downloads"])
    rows = []
    prepared = sorted({job.wildcards["dataset"] for job in jobs if job.rule == "prepare_dataset"})
    for name in prepared:
        if config["datasets"][name]["source"] != "registry":
            continue
        for source in load_registry()[name].sources:
            place = downloads / source.filename
            if not place.is_file():
                how = f"by hand, from {source.page}" if source.manual else f"downloaded by the workflow: {source.url}"
                rows.append({"what": f"dataset {name}", "file": str(place), "from": how})
    for job in jobs:
        if job.rule == "download_official":  # a Hub entry whose download the workflow has not recorded yet
            name = job.wildcards.get("dataset")
            file = official_hub_file(config, name)
            cached = cached_file(file)
            size = official_weights(config)[name].get("size")
            known = f", {size / GIGA:.2f} GB" if size else ", size known once downloaded"
            rows.append({"what": f"official_weights.{name}", "file": file.describe(),
                         "from": official_source(config, name)
                         + (f"; already in the Hugging Face cache: {cached}" if cached else known)})  # fmt: skip
        if job.rule == "import_official":
            name = job.wildcards.get("dataset")
            entry = official_weights(config).get(name, {})
            if not is_hub_entry(entry) and not Path(entry["file"]).is_file():
                rows.append({"what": f"official_weights.{name}.file", "file": entry["file"],
                             "from": official_source(config, name)})  # fmt: skip
    return pd.DataFrame(rows, columns=["what", "file", "from"])


def make_plan(configfiles: Sequence[str | Path], target: str = DEFAULT_TARGET, tflops: float | None = None,
              gpu_check: str | Path = GPU_CHECK_PARQUET, snakefile: str | Path = SNAKEFILE) -> Plan:  # fmt: skip
    """The plan of ``target`` under the config ``configfiles`` (see the module docstring), for the workflow
    ``snakefile`` run in the current folder (its relative ``results`` and ``resources``).  ``tflops``: the
    sustained throughput of one GPU; by default what the GPU check at ``gpu_check`` measured, else
    :data:`ASSUMED_TFLOPS`."""
    from lrdm.perf.cost import run_cost

    config = merged_config(configfiles, base_config(snakefile))
    run = dry_run(configfiles, target, snakefile)
    sizes: dict[str, DatasetSize] = {}
    costs: dict[tuple, Any] = {}
    notes = []

    def size_of(name: str) -> DatasetSize:
        if name not in sizes:
            sizes[name] = dataset_size(config, name)
        return sizes[name]

    def cost_of(run_cfg: Any, name: str) -> Any:
        hw = eval_size(config, name, size_of(name))
        key = _cost_key(run_cfg, hw)
        if key not in costs:
            costs[key] = run_cost(run_cfg, train_size(run_cfg), hw)
        return costs[key]

    runs = _run_configs(config, run.jobs)
    groups: dict[tuple, list] = {}
    for name, run_cfg in runs:
        groups.setdefault((name, run_cfg.process, run_cfg.objective), []).append(run_cfg)
    rows = []
    for (name, process, objective), members in groups.items():
        cost = cost_of(members[0], name)
        size = size_of(name)
        steps = sum(m.steps for m in members)
        rows.append({
            "dataset": name, "process": process, "objective": objective, "backbone": members[0].backbone,
            "runs": len(members), "steps_each": members[0].steps if len({m.steps for m in members}) == 1 else -1,
            "parameters_m": cost.parameters / 1e6, "step_tflop": cost.step_flops / TERA,
            "train_pflop": cost.step_flops * steps / 1e15,
            "checkpoint_gb": cost.checkpoint_bytes / GIGA, "run_disk_gb": cost.run_bytes / GIGA,
            "disk_gb": cost.run_bytes * len(members) / GIGA,
            "gpu_memory_gb": cost.gpu_bytes / GIGA,
            "host_memory_gb": size.train_pairs * IMAGES_PER_PAIR * size.train_pixels * RGB_BYTES / GIGA,
            "sizes_from": size.source,
            "_flops": cost.step_flops * steps,
        })  # fmt: skip
    training = pd.DataFrame(rows)

    run_by_dir = {}
    for name, run_cfg in runs:
        run_by_dir[(name, run_cfg.process, run_cfg.objective, run_cfg.rank_spec, str(run_cfg.seed))] = run_cfg
    rows = []
    for job in run.jobs:
        if job.rule not in RESTORE_RULES:
            continue
        w = job.wildcards
        name, steps = w["dataset"], int(w["steps"])
        run_cfg = run_by_dir.get((name, w.get("process"), w.get("objective"), w.get("rank_spec"), w.get("seed")))
        if run_cfg is None and job.rule == OFFICIAL_RESTORE_RULE:
            run_cfg = official_run_config(config, name)
            notes.append(f"{job.rule} {name}: the network counted is the config's train network with the "
                         f"official_weights.{name}.set keys (the checkpoint decides it at import)")  # fmt: skip
        if run_cfg is None:  # a run trained earlier: the dataset's first run
            run_cfg = next((r for n, r in runs if n == name), None)
        if run_cfg is None:
            notes.append(f"{job.rule} {name} steps {steps}: no run of this plan to count its network")
            continue
        cost = cost_of(run_cfg, name)
        images = size_of(name).test_images
        rows.append({"rule": job.rule, "dataset": name, "steps": steps, "jobs": 1, "test_images": images,
                     "restore_tflop": cost.restore_step_flops * steps / TERA,
                     "_flops": cost.restore_step_flops * steps * images})  # fmt: skip
    restoring = pd.DataFrame(rows, columns=["rule", "dataset", "steps", "jobs", "test_images", "restore_tflop",
                                            "_flops"])  # fmt: skip
    restoring = restoring.groupby(["rule", "dataset", "steps"], as_index=False).agg(
        jobs=("jobs", "sum"), test_images=("test_images", "first"), restore_tflop=("restore_tflop", "first"),
        _flops=("_flops", "sum"))  # fmt: skip

    if tflops is not None:
        source = f"--tflops {tflops:g}"
    else:
        paper = next(iter(costs.values()), None)
        measured = None
        if paper is not None and runs and Path(gpu_check).is_file():
            first = runs[0][1]
            measured = measured_tflops(gpu_check, paper.step_flops / (first.batch_size * first.grad_accum))
        if measured is not None:
            tflops, source = measured, f"measured by benchmarks/gpu-check.sh ({gpu_check})"
        else:
            tflops, source = ASSUMED_TFLOPS, (f"assumed (no {gpu_check}; run benchmarks/gpu-check.sh, or pass "
                                              "--tflops)")  # fmt: skip
    for frame in (training, restoring):
        if not frame.empty:
            frame["gpu_hours"] = frame["_flops"].map(lambda f: _gpu_hours(f, tflops))
    return Plan(
        target=target, configfiles=[str(p) for p in configfiles], counts=run.counts, tflops=tflops,
        tflops_source=source, training=training, restoring=restoring, missing=missing_files(config, run.jobs),
        notes=notes,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- output


def totals(plan: Plan) -> dict[str, float]:
    """The plan's headline numbers."""
    training, restoring = plan.training, plan.restoring
    train_hours = float(training["gpu_hours"].sum()) if not training.empty else 0.0
    restore_hours = float(restoring["gpu_hours"].sum()) if not restoring.empty else 0.0
    return {
        "jobs": sum(plan.counts.values()),
        "training_runs": int(training["runs"].sum()) if not training.empty else 0,
        "training_gpu_hours": train_hours,
        "restoring_gpu_hours": restore_hours,
        "gpu_hours": train_hours + restore_hours,
        "tflops": plan.tflops,
        "run_disk_gb": float(training["disk_gb"].sum()) if not training.empty else 0.0,
        "peak_gpu_memory_gb": float(training["gpu_memory_gb"].max()) if not training.empty else 0.0,
        "peak_host_memory_gb": float(training["host_memory_gb"].max()) if not training.empty else 0.0,
    }


def plan_frame(plan: Plan) -> pd.DataFrame:
    """The plan as one long table (``section``, ``item``, ``quantity``, ``value``): ``plan.csv``."""
    rows = [{"section": "jobs", "item": rule, "quantity": "jobs", "value": n} for rule, n in plan.counts.items()]
    for _, row in plan.training.iterrows():
        item = f"{row['dataset']}/{row['process']}/{row['objective']}"
        for quantity in ("runs", "steps_each", "parameters_m", "step_tflop", "train_pflop", "gpu_hours",
                         "checkpoint_gb", "run_disk_gb", "disk_gb", "gpu_memory_gb", "host_memory_gb"):  # fmt: skip
            rows.append({"section": "training", "item": item, "quantity": quantity, "value": row[quantity]})
    for _, row in plan.restoring.iterrows():
        item = f"{row['rule']}/{row['dataset']}/steps{row['steps']}"
        for quantity in ("jobs", "test_images", "restore_tflop", "gpu_hours"):
            rows.append({"section": "restoring", "item": item, "quantity": quantity, "value": row[quantity]})
    for quantity, value in totals(plan).items():
        rows.append({"section": "total", "item": plan.target, "quantity": quantity, "value": value})
    for _, row in plan.missing.iterrows():
        rows.append({"section": "missing", "item": row["what"], "quantity": row["file"], "value": math.nan})
    return pd.DataFrame(rows, columns=["section", "item", "quantity", "value"])


def _md_table(frame: pd.DataFrame, digits: int = 2) -> str:
    from lrdm.results.render import to_markdown

    if frame.empty:
        return "(none)\n"
    return to_markdown(frame.round(digits))


def render_markdown(plan: Plan) -> str:
    """``plan.md``: the headline numbers, then the tables."""
    total = totals(plan)
    files = " ".join(["--configfile", *plan.configfiles]) if plan.configfiles else ""
    training = plan.training.drop(columns=["_flops", "sizes_from"], errors="ignore")
    restoring = plan.restoring.drop(columns=["_flops"], errors="ignore")
    lines = [
        f"# Plan of `{plan.target}` ({files or 'config/config.yaml'})\n",
        f"- jobs: {total['jobs']} (Snakemake's dry run); training runs: {total['training_runs']}",
        f"- GPU-hours: {total['gpu_hours']:.1f} (training {total['training_gpu_hours']:.1f}, restoring "
        f"{total['restoring_gpu_hours']:.1f}) at {plan.tflops:.1f} TFLOP/s sustained, {plan.tflops_source}",
        f"- disk for the runs (checkpoints and model.pt): {total['run_disk_gb']:.1f} GB",
        f"- peak memory of one training process: GPU {total['peak_gpu_memory_gb']:.1f} GB (weights, gradients, "
        f"Adam, EMA and saved activations: a lower bound), host {total['peak_host_memory_gb']:.1f} GB (the "
        "decoded training split: an estimate)",
        "- FLOPs counted by torch.utils.flop_counter on the network as built (matrix products and convolutions); "
        "GPU-hours are FLOPs over the throughput, an estimate\n",
        "## Jobs per rule\n",
        _md_table(pd.DataFrame({"rule": list(plan.counts), "jobs": list(plan.counts.values())})),
        "\n## Training\n",
        _md_table(training),
        "\n## Restoring (evaluation)\n",
        _md_table(restoring),
        "\n## Missing files\n",
        _md_table(plan.missing),
    ]
    if plan.notes:
        lines += ["\n## Notes\n", *(f"- {note}" for note in plan.notes)]
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, results: str | Path) -> tuple[Path, Path]:
    """Writes ``<results>/plan.csv`` and ``<results>/plan.md`` (atomically); returns their paths."""
    from lrdm.files import write_text

    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = results / "plan.csv", results / "plan.md"
    write_text(csv_path, plan_frame(plan).to_csv(index=False))
    write_text(md_path, render_markdown(plan))
    return csv_path, md_path
