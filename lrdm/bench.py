"""Benchmarks written to Parquet (never timed tests).

Per case (batch, image size, UNet width) it times:

* the low-rank projection: batched SVD, batched Gram eigendecomposition, and the reference code's way
  (a full ``torch.linalg.svd`` per sample, fp32);
* one training step: ``reference`` (batch 1, per-sample full SVD, fp32, two UNets, no compilation, as the
  reference LRDM code trains), ``full_rank`` (no projection) and ``optimised`` (batched Gram projection, bf16
  autocast and channels_last on a GPU, ``torch.compile`` when asked);
* sampling at 1, 2, 5 and 10 steps, with model FLOPs counted by ``torch.utils.flop_counter`` and the
  model FLOP utilisation (MFU) against the GPU's bf16 peak where it is known;
* metric throughput of ``derain_y`` at 256² and 481×321.

    lrdm bench --preset cpu --out results/bench/cpu.parquet
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig
from .lowrank import PER_IMAGE_SVD, Projector, RankSpec, project_low_rank
from .metrics import score_batch
from .process import build_network, build_process
from .schedules import DEFAULT_T


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
METRIC_SIZES = {"tiny": [(32, 32)], "cpu": [(256, 256), (321, 481)], "gpu": [(256, 256), (321, 481)]}
METRIC_IMAGES = 8
BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 tensor-core peak (FLOP/s) by GPU model, for MFU."""
BENCH_COLUMNS = (
    "device", "torch", "cpu", "threads", "case", "operation", "mode", "batch", "size", "dim", "dim_mults", "steps",
    "repeats", "seconds_median", "seconds_min", "images_per_s", "flops_per_image", "mfu", "peak_memory_mb",
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


def reference_projection(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The reference code's projection: a full fp32 ``torch.linalg.svd`` of every sample, one at a time."""
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

    batch: int
    rank_spec: str
    projector: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    fast: bool  # bf16 autocast + channels_last on CUDA, torch.compile if requested


def _train_modes(case: BenchCase) -> dict[str, StepMode]:
    low_rank = "poly_decrease-p3"
    return {
        "reference": StepMode(1, low_rank, reference_projection, fast=False),
        "full_rank": StepMode(case.batch, "full", PER_IMAGE_SVD, fast=True),
        "optimised": StepMode(case.batch, low_rank, Projector(solver="gram"), fast=True),
    }


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


def _autocast(device: torch.device, fast: bool) -> contextlib.AbstractContextManager:
    if fast and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _network(case: BenchCase, rank_spec: str, device: torch.device, fast: bool, compile_model: bool):
    config = TrainConfig(crop=case.size, dim=case.dim, dim_mults=case.dim_mults, rank_spec=rank_spec)
    process = build_process(config)
    network = build_network(config, process).to(device)
    if fast and device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    if fast and compile_model:
        network.unets = torch.nn.ModuleList(torch.compile(u) for u in network.unets)
    return process, network


def _train_step(case: BenchCase, mode: StepMode, device: torch.device, generator: torch.Generator,
                compile_model: bool) -> Callable[[], object]:  # fmt: skip
    process, network = _network(case, mode.rank_spec, device, mode.fast, compile_model)
    process.projector = mode.projector  # the mode decides how Q_k is computed
    optimizer = torch.optim.Adam(network.parameters(), lr=TrainConfig().lr)
    data = _data(mode.batch, case.size, device, generator)

    def step() -> None:
        with _autocast(device, mode.fast):
            loss = process.loss(network, data["x0"], data["x_in"], data["t"], data["noise"])
        loss.backward()
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


def _row(device: torch.device, case: BenchCase, operation: str, mode: str, batch: int, seconds: list[float],
         steps: int | None = None, flops_per_image: float = float("nan"), size: int | None = None) -> dict:  # fmt: skip
    median = statistics.median(seconds)
    peak_memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    images_per_s = batch / median
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "case": case_name(case),
        "operation": operation,
        "mode": mode,
        "batch": batch,
        "size": case.size if size is None else size,
        "dim": case.dim,
        "dim_mults": "-".join(map(str, case.dim_mults)),
        "steps": steps,
        "repeats": len(seconds),
        "seconds_median": median,
        "seconds_min": min(seconds),
        "images_per_s": images_per_s,
        "flops_per_image": flops_per_image,
        "mfu": flops_per_image * images_per_s / _peak_flops(device),
        "peak_memory_mb": peak_memory,
    }


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _sampling_rows(case, device, generator, repeats, compile_model) -> list[dict]:
    process, network = _network(case, "poly_decrease-p3", device, fast=True, compile_model=compile_model)
    network.eval()
    x_in = _data(case.batch, case.size, device, generator)["x_in"]
    rows = []
    for steps in SAMPLING_STEPS:

        @torch.no_grad()
        def run(steps=steps) -> torch.Tensor:
            with _autocast(device, True):
                return process.sample(network, x_in, steps)

        with FlopCounterMode(display=False) as counter:
            run()
        _reset_memory(device)
        seconds = time_call(run, device, repeats)
        flops = counter.get_total_flops() / case.batch
        rows.append(_row(device, case, "sampling", "optimised", case.batch, seconds, steps, flops))
    return rows


def _metric_rows(preset: str, case: BenchCase, device: torch.device, repeats: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for height, width in METRIC_SIZES[preset]:
        shape = (METRIC_IMAGES, height, width, 3)
        target = rng.integers(0, 256, shape, dtype=np.uint8)
        noisy = np.clip(target + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
        seconds = time_call(lambda a=noisy, b=target: score_batch(a, b, "derain_y"), torch.device("cpu"), repeats)
        rows.append(_row(torch.device("cpu"), case, "metric_derain_y", "batched", METRIC_IMAGES, seconds,
                         size=height * 1000 + width))  # fmt: skip
    return rows


def run_benchmark(preset: str = "cpu", repeats: int = 5, device: str = "auto", seed: int = 0,
                  compile_model: bool = False) -> pd.DataFrame:  # fmt: skip
    """Times every operation of a preset; one row per (case, operation, mode, steps) with :data:`BENCH_COLUMNS`.

    Metric rows encode the image size as ``height * 1000 + width`` in ``size``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown benchmark preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for case in PRESETS[preset]:
        x = torch.randn(case.batch, 3, case.size, case.size, generator=generator).to(dev)
        t = torch.randint(0, DEFAULT_T, (case.batch,), generator=generator)
        k = RankSpec.parse("poly_decrease-p3").ranks(t, DEFAULT_T, case.size, case.size).to(dev)
        projections = {
            "reference": lambda x=x, k=k: reference_projection(x, k),
            "batched_svd": lambda x=x, k=k: project_low_rank(x, k, solver="svd"),
            "batched_gram": lambda x=x, k=k: project_low_rank(x, k, solver="gram"),
        }
        for mode, fn in projections.items():
            _reset_memory(dev)
            rows.append(_row(dev, case, "projection", mode, case.batch, time_call(fn, dev, repeats)))
        for mode, step_mode in _train_modes(case).items():
            step = _train_step(case, step_mode, dev, generator, compile_model)
            _reset_memory(dev)
            rows.append(_row(dev, case, "train_step", mode, step_mode.batch, time_call(step, dev, repeats)))
        rows.extend(_sampling_rows(case, dev, generator, repeats, compile_model))
    rows.extend(_metric_rows(preset, PRESETS[preset][0], dev, repeats, seed))
    return pd.DataFrame(rows, columns=list(BENCH_COLUMNS))


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case: training images/s optimised vs reference, the projection's share of an optimised step, and
    the batched projections' speed-up over the reference per-sample SVD."""
    keyed = frame[frame["operation"].isin(["projection", "train_step"])]
    seconds = keyed.pivot_table(index="case", columns=["operation", "mode"], values="seconds_median")
    speed = keyed.pivot_table(index="case", columns=["operation", "mode"], values="images_per_s")
    return pd.DataFrame({
        "train_speedup_vs_reference": speed[("train_step", "optimised")] / speed[("train_step", "reference")],
        "projection_share_of_step": seconds[("projection", "batched_gram")] / seconds[("train_step", "optimised")],
        "low_rank_step_overhead": seconds[("train_step", "optimised")] / seconds[("train_step", "full_rank")]
        - 1,
        "gram_speedup_vs_reference_projection": seconds[("projection", "reference")]
        / seconds[("projection", "batched_gram")],
        "svd_speedup_vs_reference_projection": seconds[("projection", "reference")]
        / seconds[("projection", "batched_svd")],
    }).reset_index()  # fmt: skip
