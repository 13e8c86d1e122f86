"""Benchmarks written to Parquet (never timed tests): the low-rank projection batched vs a per-sample
loop, and one training step of the two-network UNet with and without the projection.

    lrdm bench --preset cpu --out results/bench/cpu.parquet
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from .config import TrainConfig
from .lowrank import RankSpec, project_low_rank
from .process import build_network, build_process


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
BENCH_COLUMNS = ("device", "torch", "cpu", "threads", "operation", "batch", "size", "dim", "dim_mults", "repeats",
                 "seconds_median", "seconds_min", "images_per_s")


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


def _projection_ops(x: torch.Tensor, k: torch.Tensor) -> dict[str, Callable[[], object]]:
    def per_sample_loop() -> None:
        for b in range(x.shape[0]):
            project_low_rank(x[b:b + 1], k[b:b + 1])

    return {"projection_batched": lambda: project_low_rank(x, k), "projection_per_sample_loop": per_sample_loop}


def _train_step_ops(case: BenchCase, device: torch.device, generator: torch.Generator) -> dict[str, Callable[[], object]]:
    ops = {}
    for rank_spec, name in (("full", "train_step_full_rank"), ("poly_decrease-p3", "train_step_low_rank")):
        config = TrainConfig(crop=case.size, dim=case.dim, dim_mults=case.dim_mults, rank_spec=rank_spec)
        process = build_process(config)
        network = build_network(config, process).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
        shape = (case.batch, 3, case.size, case.size)
        x0 = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
        x_in = (x0 + 0.2 * torch.rand(shape, generator=generator).to(device)).clamp(-1, 1)
        noise = torch.randn(shape, generator=generator).to(device)
        t = torch.randint(0, config.T, (case.batch,), generator=generator).to(device)

        def step(network=network, optimizer=optimizer, process=process) -> None:
            loss = process.loss(network, x0, x_in, t, noise)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        ops[name] = step
    return ops


def run_benchmark(preset: str = "cpu", repeats: int = 5, device: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Times every operation of a preset; one row per (case, operation) with :data:`BENCH_COLUMNS`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown benchmark preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for case in PRESETS[preset]:
        x = torch.randn(case.batch, 3, case.size, case.size, generator=generator).to(dev)
        t = torch.randint(0, 1000, (case.batch,), generator=generator)
        k = RankSpec.parse("poly_decrease-p3").ranks(t, 1000, case.size, case.size).to(dev)
        ops = {**_projection_ops(x, k), **_train_step_ops(case, dev, generator)}
        for name, fn in ops.items():
            seconds = time_call(fn, dev, repeats)
            median = statistics.median(seconds)
            rows.append({
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(), "operation": name, "batch": case.batch, "size": case.size,
                "dim": case.dim, "dim_mults": "-".join(map(str, case.dim_mults)), "repeats": repeats,
                "seconds_median": median, "seconds_min": min(seconds), "images_per_s": case.batch / median,
            })
    return pd.DataFrame(rows, columns=list(BENCH_COLUMNS))


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case: loop/batched projection speed-up, and the projection's share of a low-rank training step."""
    keyed = frame.set_index(["batch", "size", "dim", "operation"])["seconds_median"].unstack("operation")
    return pd.DataFrame({
        "batched_speedup_vs_loop": keyed["projection_per_sample_loop"] / keyed["projection_batched"],
        "projection_share_of_train_step": keyed["projection_batched"] / keyed["train_step_low_rank"],
        "low_rank_step_overhead": keyed["train_step_low_rank"] / keyed["train_step_full_rank"] - 1,
    }).reset_index()
