"""Does a performance option change the results?  Short training runs and sampler outputs, written to Parquet.

An option is kept only if quality is unchanged (issue: performance):

* **training** options (``projection_solver: gram``, DataLoader workers, bf16 on CUDA, ``torch.compile``)
  train the embedded default's rain model for a few hundred steps next to the reference settings (``svd``,
  fp32, data in the loop, eager).  The late loss of each option is compared with the noise between two
  seeds of the reference;
* **sampling** options (bf16 autocast on CUDA, ``torch.compile``) restore the test split with the reference
  model and are compared with the eager fp32 output (largest pixel difference, PSNR between the two).

    lrdm quality --steps 300 --out results/bench/quality.parquet
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lrdm.config import TrainConfig
from lrdm.core.device import pick_device
from lrdm.core.nets import compile_unets
from lrdm.data.paired import PairedImageDataset
from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
from lrdm.paths import INDEX_FILE
from lrdm.training.rundir import LOSS_FILE, MODEL_FILE, load_model
from lrdm.training.trainer import TrainOptions, train

QUALITY_MODEL = {
    "crop": 32,
    "dim": 16,
    "dim_mults": (1, 2, 4),
    "batch_size": 8,
    "lr": 1e-3,
    "beta2_sum": 0.01,
    "rank_spec": "poly_decrease-p3",
    "ema_start": 50,
    "ema_update_every": 1,
    "log_every": 1,
}
"""The embedded default's synthetic-rain run (config/config.yaml), logging every step."""
QUALITY_DATA_SIZE = 64  # patch side of the synthetic rain pairs, as in the embedded default
QUALITY_SAMPLING_STEPS = 5
REFERENCE = "reference"
SUMMARY_COLUMNS = (
    "variant", "kind", "device", "steps", "seed_noise", "late_loss", "late_loss_diff", "max_abs_loss_diff",
    "max_abs_output_diff", "output_psnr_db",
)  # fmt: skip


@dataclass(frozen=True)
class TrainingVariant:
    overrides: dict[str, Any]  # TrainConfig keys
    options: TrainOptions = TrainOptions()


def training_variants(device: torch.device, compile_model: bool) -> dict[str, TrainingVariant]:
    """The training options to check; ``reference`` is the reference code's way (SVD, fp32, eager)."""
    svd = {"projection_solver": "svd", "mixed_precision": "no"}
    gram = {**svd, "projection_solver": "gram"}
    variants = {
        REFERENCE: TrainingVariant(svd),
        "gram": TrainingVariant(gram),
        "data_workers": TrainingVariant(svd, TrainOptions(data_workers=2)),
    }
    if device.type == "cuda":
        variants["gram_bf16"] = TrainingVariant({**gram, "mixed_precision": "bf16"})
    if compile_model:
        variants["compiled"] = TrainingVariant(svd, TrainOptions(compile_model=True))
    return variants


def late_loss(losses: pd.Series) -> float:
    """Mean loss over the second half of a run's steps."""
    return float(losses.iloc[len(losses) // 2 :].mean())


def _sampling_outputs(model: Path, index: Path, device: torch.device, compile_model: bool) -> dict[str, torch.Tensor]:
    """Test-split restorations ``(N, 3, H, W)`` in [-1, 1]: eager fp32 and each sampling option."""
    _, network, process = load_model(model, device)
    test = PairedImageDataset(index, split="test")
    x_in = test.get_batch(range(len(test)))["input"].to(device)

    def run(autocast: bool) -> torch.Tensor:
        generator = torch.Generator(device).manual_seed(0)
        bf16 = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.no_grad(), bf16:
            return process.sample(network, x_in, QUALITY_SAMPLING_STEPS, generator=generator).float()

    outputs = {REFERENCE: run(autocast=False)}
    if device.type == "cuda":
        outputs["sampling_bf16"] = run(autocast=True)
    if compile_model:
        compile_unets(network)
        run(autocast=False)  # compilation
        outputs["sampling_compiled"] = run(autocast=False)
    return outputs


def _output_row(name: str, output: torch.Tensor, reference: torch.Tensor, device: torch.device) -> dict[str, Any]:
    mse = float(((output - reference) / 2).square().mean())  # images in [0, 1]
    return {
        "variant": name,
        "kind": "sampling",
        "device": device.type,
        "steps": QUALITY_SAMPLING_STEPS,
        "max_abs_output_diff": float((output - reference).abs().max() / 2),
        "output_psnr_db": float("inf") if mse == 0 else float(-10 * np.log10(mse)),
    }


def quality_check(
    steps: int = 300, seeds: tuple[int, int] = (0, 1), device: str = "auto", compile_model: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trains every :func:`training_variants` entry (the reference with both ``seeds``, the others with the
    first) and compares sampling options on the reference model.

    Returns ``(summary, losses)``: ``summary`` has :data:`SUMMARY_COLUMNS` (``late_loss_diff`` is the
    variant's late loss minus the reference's at the same seed, ``seed_noise`` the absolute difference
    between the reference's two seeds); ``losses`` has one row per (variant, seed, step).
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    dev = pick_device(device)
    curves, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_dataset(root / "data", "rain", SynthesisOptions(size=QUALITY_DATA_SIZE))
        index = root / "data" / INDEX_FILE
        base = TrainConfig(index=str(index), steps=steps, checkpoint_every=steps, device=dev.type, **QUALITY_MODEL)
        variants = training_variants(dev, compile_model)
        for name, variant in variants.items():
            for seed in seeds if name == REFERENCE else seeds[:1]:
                run_dir = root / "runs" / f"{name}-seed{seed}"
                config = base.replace(seed=seed, **variant.overrides)
                train(config, run_dir, variant.options, progress=False)
                log = pd.read_csv(run_dir / LOSS_FILE)
                curves.append(pd.DataFrame({"variant": name, "seed": seed, "step": log["step"], "loss": log["loss"]}))
        losses = pd.concat(curves, ignore_index=True)
        first = losses[losses["seed"] == seeds[0]].pivot(index="step", columns="variant", values="loss")
        reference_seeds = losses[losses["variant"] == REFERENCE].pivot(index="step", columns="seed", values="loss")
        noise = abs(late_loss(reference_seeds[seeds[0]]) - late_loss(reference_seeds[seeds[1]]))
        for name in variants:
            summary.append({
                "variant": name,
                "kind": "training",
                "device": dev.type,
                "steps": steps,
                "seed_noise": noise,
                "late_loss": late_loss(first[name]),
                "late_loss_diff": late_loss(first[name]) - late_loss(first[REFERENCE]),
                "max_abs_loss_diff": float((first[name] - first[REFERENCE]).abs().max()),
            })  # fmt: skip
        model = root / "runs" / f"{REFERENCE}-seed{seeds[0]}" / MODEL_FILE
        outputs = _sampling_outputs(model, index, dev, compile_model)
        reference = outputs.pop(REFERENCE)
        summary.extend(_output_row(name, output, reference, dev) for name, output in outputs.items())
    return pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS)), losses
