"""Benchmarks written to Parquet (never timed tests).

Per case (batch, image size, UNet width) it times:

* the low-rank projection: batched SVD, batched Gram eigendecomposition, and ``per_sample_full_svd`` (a full
  fp32 ``torch.linalg.svd`` per sample, one at a time, as the official code computes it);
* one training step in each of :func:`train_modes`: from ``per_sample_svd_b1`` (per-sample full SVD, batch 1,
  eager, fp32, the project's network) and ``official_recipe`` (the official recipe re-implemented with this
  project's code: backbone ``rddm_unetres``, batch 1 with gradient accumulation 2, gradient clipping 1.0, Adam
  betas (0.9, 0.99), per-sample full SVD, fp32, eager) to ``optimised`` (what ``lrdm train`` runs) and the
  further options (channels_last, ``torch.compile``).  The official code itself is not run;
* preparing one training batch in the loop, and the whole ``lrdm train`` loop with inline data, with
  DataLoader workers and (``--compile``) compiled;
* sampling at 1, 2, 5 and 10 steps (every count from 1 to 10 in the ``gpu`` preset), with model FLOPs
  counted by ``torch.utils.flop_counter`` and the model FLOP utilisation (MFU) against the GPU's bf16 peak
  where it is known;
* metric throughput of ``derain_y`` at 256² and 481×321;
* hashing the files of one global batch of pairs (input and target), the check every image gets against
  its index sha256 the first time a process reads it, as a share of an optimised training step and of
  restoring one image at :data:`SHARE_SAMPLING_STEPS` steps (the evaluation of one image).

    lrdm bench --preset cpu --out results/bench/cpu.parquet
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from lrdm.config import TrainConfig
from lrdm.core.device import pick_device
from lrdm.core.lowrank import PER_IMAGE_SVD, Projector, project_low_rank, spec_ranks
from lrdm.core.nets import check_backbone, compile_unets
from lrdm.core.prediction import TrainingExample
from lrdm.core.process import build_network, build_process
from lrdm.core.schedules import DEFAULT_T
from lrdm.data.index import read_index, sha256_mismatch
from lrdm.data.paired import PairedImageDataset
from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
from lrdm.evaluation.metrics import score_batch
from lrdm.paths import INDEX_FILE
from lrdm.training.rundir import LOSS_FILE
from lrdm.training.trainer import StepBatches, TrainOptions, train
from lrdm.vocab import OFFICIAL_BACKBONE, RankSpec, check_choice


@dataclass(frozen=True)
class BenchCase:
    batch: int
    size: int
    dim: int
    dim_mults: tuple[int, ...]


PRESETS = {
    "tiny": [BenchCase(2, 16, 8, (1, 2))],  # CI: checks the schema only
    "cpu": [BenchCase(8, 32, 16, (1, 2, 4)), BenchCase(8, 64, 16, (1, 2, 4))],  # the embedded default's model
    "gpu": [BenchCase(1, 256, 64, (1, 2, 4, 8)), BenchCase(8, 256, 64, (1, 2, 4, 8))],  # the paper's model
}
SAMPLING_STEPS = (1, 2, 5, 10)
PRESET_SAMPLING_STEPS = {"tiny": SAMPLING_STEPS, "cpu": SAMPLING_STEPS, "gpu": tuple(range(1, 11))}
"""Sampling steps timed per preset: on a GPU every count from 1 to 10 (``benchmarks/gpu-check.sh``)."""
METRIC_SIZES = {"tiny": [(32, 32)], "cpu": [(256, 256), (321, 481)], "gpu": [(256, 256), (321, 481)]}
METRIC_IMAGES = 8
LOOP_WORKERS = {"tiny": 1, "cpu": 1, "gpu": 4}
SHARE_SAMPLING_STEPS = 5
"""Sampling steps of the evaluation the hashing cost is compared with (the workflow's ``sampling.steps``)."""
"""DataLoader workers of the ``train_loop`` rows that prepare data ahead (beside the inline ones)."""
LOOP_WARMUP = 3  # training-loop steps not timed (worker start, allocator warm-up)
COMPILE_WARMUP = 3  # untimed calls of a compiled network (compilation, CUDA-graph recording)
SAMPLING_COMPILE_MODE = {"cuda": "reduce-overhead", "cpu": "default"}
BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 tensor-core peak (FLOP/s) by GPU model, for MFU."""
PRECISIONS = ("auto", "fp32", "bf16")
"""``--precision``: ``auto`` runs the optimised modes and sampling under bf16 autocast on CUDA only (what
``lrdm train`` does with ``mixed_precision: auto``); ``fp32`` never autocasts; ``bf16`` always does (on the
CPU too).  The ``per_sample_svd_b1`` and ``official_recipe`` modes are fp32 whatever the choice."""
BASELINE_MODE = "per_sample_svd_b1"
"""The training-step mode the speed-ups are measured against: per-sample full SVD, batch 1, eager, fp32, the
project's network (``ddpm_unet`` unless ``--backbone`` says otherwise)."""
OFFICIAL_RECIPE = "official_recipe"
OFFICIAL_GRAD_ACCUM = 2
OFFICIAL_GRAD_CLIP = 1.0
OFFICIAL_ADAM_BETAS = (0.9, 0.99)
"""The official deraining recipe (RDDM's Trainer): its UnetRes, batch 1 accumulated over 2 micro-batches,
gradient-norm clipping 1.0, Adam betas (0.9, 0.99), fp32."""
LOOP_MIXED_PRECISION = {"auto": "auto", "fp32": "no", "bf16": "bf16"}
"""The ``mixed_precision`` config of the ``train_loop`` rows for each :data:`PRECISIONS` choice."""
BENCH_COLUMNS = (
    "device", "torch", "cpu", "threads", "backbone", "precision", "case", "operation", "mode", "batch", "size",
    "dim", "dim_mults", "steps", "repeats", "seconds_median", "seconds_min", "images_per_s", "flops_per_image",
    "mfu", "peak_memory_mb",
)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls after ``warmup`` untimed ones (synchronising the GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        _sync(device)
        seconds.append(time.perf_counter() - began)
    return seconds


def per_sample_projection(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The official code's projection: a full fp32 ``torch.linalg.svd`` of every sample, one at a time."""
    out = []
    for b in range(x.shape[0]):
        U, S, Vh = torch.linalg.svd(x[b].float(), full_matrices=True)
        r = S.shape[-1]
        S = S * (torch.arange(r, device=x.device) < k[b]).float()
        out.append((U[..., :, :r] * S[..., None, :]) @ Vh[..., :r, :])
    return torch.stack(out).to(x.dtype)


@dataclass(frozen=True)
class StepMode:
    """How a training step runs."""

    batch: int  # per micro-batch
    rank_spec: str
    projector: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    autocast: bool = False  # bf16 autocast
    channels_last: bool = False  # channels_last UNet weights and activations
    compile: bool = False  # torch.compile of each UNet
    backbone: str | None = None  # None: the benchmark's backbone
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float | None = None  # gradient-norm clipping (None: none)
    adam_betas: tuple[float, float] = TrainConfig().adam_betas

    @property
    def images(self) -> int:
        """Images per optimizer step."""
        return self.batch * self.grad_accum


def uses_autocast(device: torch.device, precision: str) -> bool:
    """Whether the optimised modes and sampling run under bf16 autocast (:data:`PRECISIONS`)."""
    check_choice(precision, PRECISIONS, "benchmark precision")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def train_modes(case: BenchCase, device: torch.device, compile_model: bool, precision: str = "auto"
                ) -> dict[str, StepMode]:  # fmt: skip
    """The training-step modes of one case, from the per-sample ways to the optimised one.

    ``per_sample_svd_b1`` (:data:`BASELINE_MODE`): per-sample full SVD, batch 1, eager, fp32, the project's
    network, no gradient clipping or accumulation.  ``official_recipe``: the official recipe
    (:data:`OFFICIAL_BACKBONE`, batch 1 × :data:`OFFICIAL_GRAD_ACCUM` micro-batches, clipping
    :data:`OFFICIAL_GRAD_CLIP`, Adam betas :data:`OFFICIAL_ADAM_BETAS`, per-sample full SVD, fp32, eager), run
    by this project's code; the official code itself is not run.  ``batched``: the case's batch, same
    projection; ``optimised``: batched Gram projection, bf16 autocast as ``precision`` says (on CUDA by
    default), which is what ``lrdm train`` runs with ``projection_solver: gram``; ``full_rank``: the optimised
    step without projection; ``channels_last`` adds channels_last to ``optimised``, and with ``compile_model``
    ``compiled`` adds ``torch.compile``.
    """
    low_rank = "poly_decrease-p3"
    optimised = StepMode(case.batch, low_rank, Projector(solver="gram"), autocast=uses_autocast(device, precision))
    modes = {
        BASELINE_MODE: StepMode(1, low_rank, per_sample_projection),
        OFFICIAL_RECIPE: StepMode(
            1, low_rank, per_sample_projection, backbone=OFFICIAL_BACKBONE, grad_accum=OFFICIAL_GRAD_ACCUM,
            grad_clip=OFFICIAL_GRAD_CLIP, adam_betas=OFFICIAL_ADAM_BETAS,
        ),  # fmt: skip
        "batched": StepMode(case.batch, low_rank, per_sample_projection),
        "optimised": optimised,
        "full_rank": replace(optimised, rank_spec="full", projector=PER_IMAGE_SVD),
    }
    modes["channels_last"] = replace(optimised, channels_last=True)
    if compile_model:
        modes["compiled"] = replace(optimised, compile=True)
    return modes


def _data(batch: int, size: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (batch, 3, size, size)
    x0 = torch.rand(shape, generator=generator) * 2 - 1
    x_in = (x0 + 0.2 * torch.rand(shape, generator=generator)).clamp(-1, 1)
    return {
        "x0": x0.to(device),
        "x_in": x_in.to(device),
        "noise": torch.randn(shape, generator=generator).to(device),
        "t": torch.randint(0, DEFAULT_T, (batch,), generator=generator).to(device),
    }


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _network(case: BenchCase, rank_spec: str, device: torch.device, channels_last: bool = False,
             compile_mode: str | None = None, backbone: str = "ddpm_unet"):  # fmt: skip
    """``(process, network)`` of a case; ``compile_mode``: ``torch.compile`` mode of each UNet (None: eager)."""
    config = TrainConfig(
        crop=case.size, dim=case.dim, dim_mults=case.dim_mults, rank_spec=rank_spec, backbone=backbone
    )
    process = build_process(config)
    network = build_network(config, process).to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    if compile_mode is not None:
        compile_unets(network, compile_mode)
    return process, network


def _train_step(case: BenchCase, mode: StepMode, device: torch.device, generator: torch.Generator,
                backbone: str = "ddpm_unet") -> Callable[[], object]:  # fmt: skip
    """One optimizer step of ``mode``: ``grad_accum`` micro-batches of ``mode.batch``, each loss divided by
    ``grad_accum`` as the trainer does, then clipping (if any) and Adam."""
    compile_mode = "default" if mode.compile else None
    process, network = _network(case, mode.rank_spec, device, mode.channels_last, compile_mode,
                                mode.backbone or backbone)  # fmt: skip
    process.projector = mode.projector  # the mode decides how Q_k is computed
    optimizer = torch.optim.Adam(network.parameters(), lr=TrainConfig().lr, betas=mode.adam_betas)
    micro = [_data(mode.batch, case.size, device, generator) for _ in range(mode.grad_accum)]

    def step() -> None:
        for data in micro:
            with _autocast(device, mode.autocast):
                loss = process.loss(network, TrainingExample(**data)) / mode.grad_accum
            loss.backward()
        if mode.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(network.parameters(), mode.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def case_name(case: BenchCase) -> str:
    return f"batch {case.batch}, {case.size}px, dim {case.dim} x{'-'.join(map(str, case.dim_mults))}"


def _peak_flops(device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    name = torch.cuda.get_device_name(device)
    return next((peak for model, peak in BF16_PEAK_FLOPS.items() if model in name), float("nan"))


@dataclass(frozen=True)
class Timing:
    """One timed operation: ``seconds`` of each repeat, ``batch`` images each; ``size`` (None: the case's) and, for
    sampling, ``steps`` and the FLOPs per image of one run."""

    operation: str
    mode: str
    batch: int
    seconds: list[float]
    steps: int | None = None
    flops_per_image: float = float("nan")
    size: int | None = None


@dataclass(frozen=True)
class _Bench:
    """What every operation of one :func:`run_benchmark` call is timed with."""

    device: torch.device
    repeats: int
    generator: torch.Generator
    compile_model: bool
    backbone: str
    precision: str


def _row(device: torch.device, case: BenchCase, timing: Timing) -> dict:
    """One result row; ``backbone`` and ``precision`` are filled in by :func:`run_benchmark`."""
    seconds = timing.seconds
    median = statistics.median(seconds)
    peak_memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    images_per_s = timing.batch / median
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "backbone": None,
        "precision": None,
        "case": case_name(case),
        "operation": timing.operation,
        "mode": timing.mode,
        "batch": timing.batch,
        "size": case.size if timing.size is None else timing.size,
        "dim": case.dim,
        "dim_mults": "-".join(map(str, case.dim_mults)),
        "steps": timing.steps,
        "repeats": len(seconds),
        "seconds_median": median,
        "seconds_min": min(seconds),
        "images_per_s": images_per_s,
        "flops_per_image": timing.flops_per_image,
        "mfu": timing.flops_per_image * images_per_s / _peak_flops(device),
        "peak_memory_mb": peak_memory,
    }


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _sampling_rows(case: BenchCase, bench: _Bench, step_counts: tuple[int, ...] = SAMPLING_STEPS) -> list[dict]:
    """Sampling at ``step_counts`` steps, the whole batch at once under ``torch.inference_mode``: ``optimised``
    (eager; bf16 autocast as ``bench.precision`` says) and, with ``bench.compile_model``, ``compiled``
    (``torch.compile``; mode ``reduce-overhead``, i.e. CUDA graphs, on CUDA).  FLOPs are counted on the eager
    network."""
    device, backbone = bench.device, bench.backbone
    autocast = uses_autocast(device, bench.precision)
    x_in = _data(case.batch, case.size, device, bench.generator)["x_in"]
    process, eager = _network(case, "poly_decrease-p3", device, backbone=backbone)
    networks = {"optimised": eager}
    if bench.compile_model:
        compile_mode = SAMPLING_COMPILE_MODE[device.type]
        compiled = _network(case, "poly_decrease-p3", device, compile_mode=compile_mode, backbone=backbone)[1]
        compiled.load_state_dict(eager.state_dict())
        networks["compiled"] = compiled
    rows = []
    for steps in step_counts:
        flops = None
        for mode, network in networks.items():
            network.eval()

            @torch.inference_mode()
            def run(steps=steps, network=network) -> torch.Tensor:
                with _autocast(device, autocast):
                    return process.sample(network, x_in, steps)

            if flops is None:
                with FlopCounterMode(display=False) as counter:
                    run()
                flops = counter.get_total_flops() / case.batch
            _reset_memory(device)
            seconds = time_call(run, device, bench.repeats, warmup=COMPILE_WARMUP if mode == "compiled" else 1)
            rows.append(_row(device, case, Timing("sampling", mode, case.batch, seconds, steps, flops)))
    return rows


def _data_rows(case: BenchCase, data_dir: Path, repeats: int) -> list[dict]:
    """Seconds to prepare one global training batch (decode from the cache, crop, flip, timesteps, noise)
    in the training loop, as ``lrdm train`` does with ``data_workers: 0``."""
    dataset = PairedImageDataset(data_dir / INDEX_FILE, split="train", crop=case.size, flip=True, cache=True)
    batches = StepBatches(dataset, case.batch, DEFAULT_T, seed=0, shard=slice(0, case.batch))
    steps = iter(range(repeats + 1))
    seconds = time_call(lambda: batches[next(steps)], torch.device("cpu"), repeats)
    return [_row(torch.device("cpu"), case, Timing("data_batch", "inline", case.batch, seconds))]


def _hash_rows(case: BenchCase, data_dir: Path, repeats: int) -> list[dict]:
    """Seconds to check the files of ``case.batch`` training pairs (input and target) against their index
    sha256, as :class:`~lrdm.data.paired.PairedImageDataset` does when it first reads them."""
    rows = read_index(data_dir / INDEX_FILE).query("split == 'train'")
    pairs = [rows.iloc[i % len(rows)] for i in range(case.batch)]

    def check() -> None:
        for row in pairs:
            for column in ("input", "target"):
                if sha256_mismatch(row[column], row[f"{column}_sha256"]) is not None:
                    raise ValueError(f"benchmark data changed while timing: {row[column]}")

    seconds = time_call(check, torch.device("cpu"), repeats)
    return [_row(torch.device("cpu"), case, Timing("image_hash", "first_read", case.batch, seconds))]


def _loop_rows(case: BenchCase, data_dir: Path, bench: _Bench, workers: int) -> list[dict]:
    """The whole ``lrdm train`` loop (data, step, gradient clipping, EMA, loss check) on the optimised settings:
    mode ``workers0`` prepares data inline, ``workers<N>`` in N DataLoader processes, ``compiled`` compiles the
    UNets (inline data).  Per-step seconds from ``losses.csv``; ``train_warmup`` rows hold the seconds of the
    first :data:`LOOP_WARMUP` steps (worker start, compilation), which ``train_loop`` leaves out."""
    device, repeats = bench.device, bench.repeats
    config = TrainConfig(
        index=str(data_dir / INDEX_FILE), crop=case.size, dim=case.dim, dim_mults=case.dim_mults,
        batch_size=case.batch, rank_spec="poly_decrease-p3", projection_solver="gram", steps=LOOP_WARMUP + repeats,
        log_every=1, checkpoint_every=LOOP_WARMUP + repeats, keep_checkpoints=1, device=device.type,
        backbone=bench.backbone, mixed_precision=LOOP_MIXED_PRECISION[bench.precision],
    )  # fmt: skip
    modes = {f"workers{count}": (count, False) for count in sorted({0, workers})}
    if bench.compile_model:
        modes["compiled"] = (0, True)
    rows = []
    for mode, (count, compiled) in modes.items():
        with tempfile.TemporaryDirectory() as run_dir:
            _reset_memory(device)
            train(config, run_dir, TrainOptions(data_workers=count, compile_model=compiled), progress=False)
            elapsed = pd.read_csv(Path(run_dir) / LOSS_FILE)["seconds"].to_numpy()
        warmup = Timing("train_warmup", mode, case.batch * LOOP_WARMUP, [elapsed[LOOP_WARMUP - 1]])
        loop = Timing("train_loop", mode, case.batch, np.diff(elapsed)[LOOP_WARMUP - 1 :].tolist())
        rows.extend(_row(device, case, timing) for timing in (warmup, loop))
    return rows


def _metric_rows(preset: str, case: BenchCase, device: torch.device, repeats: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for height, width in METRIC_SIZES[preset]:
        shape = (METRIC_IMAGES, height, width, 3)
        target = rng.integers(0, 256, shape, dtype=np.uint8)
        noisy = np.clip(target + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
        seconds = time_call(lambda a=noisy, b=target: score_batch(a, b, "derain_y"), torch.device("cpu"), repeats)
        timing = Timing("metric_derain_y", "batched", METRIC_IMAGES, seconds, size=height * 1000 + width)
        rows.append(_row(torch.device("cpu"), case, timing))
    return rows


def run_benchmark(preset: str = "cpu", repeats: int = 5, device: str = "auto", seed: int = 0,
                  compile_model: bool = False, backbone: str = "ddpm_unet", precision: str = "auto"
                  ) -> pd.DataFrame:  # fmt: skip
    """Times every operation of a preset; one row per (case, operation, mode, steps) with :data:`BENCH_COLUMNS`.

    ``backbone``: the network of every mode but ``official_recipe`` (which always runs
    :data:`OFFICIAL_BACKBONE`); ``precision``: one of :data:`PRECISIONS`.  Metric rows encode the image size as
    ``height * 1000 + width`` in ``size``.
    """
    check_choice(preset, PRESETS, "benchmark preset")
    check_backbone(backbone)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(seed)
    bench = _Bench(dev, repeats, generator, compile_model, backbone, precision)
    rows = []
    for case in PRESETS[preset]:
        x = torch.randn(case.batch, 3, case.size, case.size, generator=generator).to(dev)
        t = torch.randint(0, DEFAULT_T, (case.batch,), generator=generator)
        k = spec_ranks(RankSpec.parse("poly_decrease-p3"), t, DEFAULT_T, case.size, case.size).to(dev)
        projections = {
            "per_sample_full_svd": lambda x=x, k=k: per_sample_projection(x, k),
            "batched_svd": lambda x=x, k=k: project_low_rank(x, k, solver="svd"),
            "batched_gram": lambda x=x, k=k: project_low_rank(x, k, solver="gram"),
        }
        for mode, fn in projections.items():
            _reset_memory(dev)
            rows.append(_row(dev, case, Timing("projection", mode, case.batch, time_call(fn, dev, repeats))))
        for mode, step_mode in train_modes(case, dev, compile_model, precision).items():
            step = _train_step(case, step_mode, dev, generator, backbone)
            _reset_memory(dev)
            warmup = COMPILE_WARMUP if step_mode.compile else 1
            seconds = time_call(step, dev, repeats, warmup)
            rows.append({
                **_row(dev, case, Timing("train_step", mode, step_mode.images, seconds)),
                "backbone": step_mode.backbone, "precision": "bf16" if step_mode.autocast else "fp32",
            })  # fmt: skip
        rows.extend(_sampling_rows(case, bench, PRESET_SAMPLING_STEPS[preset]))
        with tempfile.TemporaryDirectory() as data_dir:
            # patches twice the crop, so crops are drawn at random positions as in training
            patches = SynthesisOptions(size=2 * case.size, patches_per_image=2, test_patches_per_image=1)
            make_synthetic_dataset(data_dir, "rain", patches)
            rows.extend(_data_rows(case, Path(data_dir), repeats))
            rows.extend(_hash_rows(case, Path(data_dir), repeats))
            rows.extend(_loop_rows(case, Path(data_dir), bench, LOOP_WORKERS[preset]))
    rows.extend(_metric_rows(preset, PRESETS[preset][0], dev, repeats, seed))
    frame = pd.DataFrame(rows, columns=list(BENCH_COLUMNS))
    frame["backbone"] = frame["backbone"].fillna(backbone)
    frame["precision"] = frame["precision"].fillna(precision)
    return frame


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case (one row each):

    * ``speedup_<mode>``: training-step images/s of each mode over :data:`BASELINE_MODE` (per-sample full SVD,
      batch 1, eager, fp32, the project's network);
    * ``projection_share_of_step``: batched Gram projection seconds / optimised step seconds;
    * ``low_rank_step_overhead``: optimised step / full-rank step - 1;
    * ``gram_speedup_vs_per_sample_svd``, ``svd_speedup_vs_per_sample_svd``: over ``per_sample_full_svd``;
    * ``data_inline_share_of_step``: one batch prepared inline / optimised step;
    * ``loop_speedup_<mode>``: training-loop images/s of ``workers<N>`` (DataLoader workers) and ``compiled`` over
      ``workers0`` (inline data, eager);
    * ``hash_share_of_step``: hashing one global batch's files / optimised step (paid once per image and process,
      so a bound: over a run it is amortised across every later step);
    * ``hash_share_of_evaluation``: hashing one pair's files / restoring one image at
      :data:`SHARE_SAMPLING_STEPS` sampling steps.
    """
    seconds = frame.pivot_table(index="case", columns=["operation", "mode"], values="seconds_median")
    speed = frame.pivot_table(index="case", columns=["operation", "mode"], values="images_per_s")
    out = {
        f"speedup_{mode}": speed[("train_step", mode)] / speed[("train_step", BASELINE_MODE)]
        for mode in speed["train_step"].columns
        if mode != BASELINE_MODE
    }
    optimised_step = seconds[("train_step", "optimised")]
    out["projection_share_of_step"] = seconds[("projection", "batched_gram")] / optimised_step
    out["low_rank_step_overhead"] = optimised_step / seconds[("train_step", "full_rank")] - 1
    for solver in ("gram", "svd"):
        out[f"{solver}_speedup_vs_per_sample_svd"] = (
            seconds[("projection", "per_sample_full_svd")] / seconds[("projection", f"batched_{solver}")]
        )
    out["data_inline_share_of_step"] = seconds[("data_batch", "inline")] / optimised_step
    loops = speed["train_loop"]
    for mode in loops.columns.drop("workers0"):
        out[f"loop_speedup_{mode}"] = loops[mode] / loops["workers0"]
    out["hash_share_of_step"] = seconds[("image_hash", "first_read")] / optimised_step
    sampling = frame.query("operation == 'sampling' and mode == 'optimised' and steps == @SHARE_SAMPLING_STEPS")
    per_image = (sampling["seconds_median"] / sampling["batch"]).groupby(sampling["case"]).mean()
    hash_per_pair = seconds[("image_hash", "first_read")] / frame.query("operation == 'image_hash'").groupby("case")[
        "batch"
    ].first()
    out["hash_share_of_evaluation"] = hash_per_pair / per_image
    return pd.DataFrame(out).reset_index()
