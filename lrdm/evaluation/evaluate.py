"""Restore a test split with a trained run and score every image (one Parquet row per image)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lrdm.data.paired import PairedImageDataset, to_model_space
from lrdm.errors import NonFiniteOutputError
from lrdm.evaluation.columns import RESULT_COLUMNS
from lrdm.evaluation.metrics import imresize, score, to_uint8
from lrdm.files import write_png
from lrdm.training.trainer import SEED_STRIDE, load_model


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def image_generator(seed: int, image_number: int, device: torch.device) -> torch.Generator:
    """Generator of the start noise for test image ``image_number``: scores do not depend on which or
    how many other images are evaluated."""
    return torch.Generator(device=device).manual_seed(seed * SEED_STRIDE + image_number)


def pad_to_multiple(x: torch.Tensor, factor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pads ``(B, C, H, W)`` on the bottom/right so H and W divide by ``factor``; returns the
    padded tensor and the original ``(H, W)``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % factor, -width % factor
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x, (height, width)


@torch.no_grad()
def restore(
    network, process, x_in: torch.Tensor, steps: int, eta: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Restores ``x_in`` ``(B, 3, H, W)`` in [-1, 1] of any size -> ``(B, 3, H, W)`` in [-1, 1]."""
    padded, (height, width) = pad_to_multiple(x_in, network.downsample_factor)
    out = process.sample(network, padded, steps, eta=eta, generator=generator)
    return out[..., :height, :width]


def check_finite(restored: torch.Tensor, model_path: str | Path, image: str) -> torch.Tensor:
    """``restored`` unchanged, or :class:`NonFiniteOutputError` naming the model and the image."""
    if not bool(torch.isfinite(restored).all()):
        raise NonFiniteOutputError(
            f"model {model_path} produced NaN or infinite values restoring {image}: its weights are probably "
            "diverged; retrain the run"
        )
    return restored


def evaluate_run(
    model_path: str | Path,
    index: str | Path,
    steps: int,
    split: str = "test",
    protocol: str = "derain_y",
    eta: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    save_dir: str | Path | None = None,
    limit: int | None = None,
    resize: int | None = None,
) -> pd.DataFrame:
    """Restores every image of ``split`` with ``steps`` sampling steps and scores it against its target.

    The start noise of image ``i`` comes from :func:`image_generator`.  ``resize`` is RDDM's policy: the input
    is resized to ``resize × resize`` (MATLAB-style bicubic) before restoration and the ground truth to the
    output's size for scoring; the ``protocol`` column then reads e.g. ``rgb@256``.  The ``istd`` protocol
    takes each pair's shadow mask from the index.  Returns one row per image with :data:`RESULT_COLUMNS`,
    plus any further metrics of the protocol (e.g. ``mae_all``, ``mae_shadow``, ``mae_nonshadow``).
    """
    model_path = Path(model_path)
    dev = pick_device(device)
    config, network, process = load_model(model_path, dev)
    rank = config.rank
    dataset = PairedImageDataset(index, split=split, crop=None, flip=False, cache=False)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows = []
    for i in range(count):
        item = dataset[i]
        degraded = to_uint8(item["input"])
        if resize is not None:
            degraded = imresize(degraded, (resize, resize))
        x_in = to_model_space(degraded)[None].to(dev)
        generator = image_generator(seed, i, dev)
        began = time.perf_counter()
        restored = restore(network, process, x_in, steps, eta=eta, generator=generator)
        check_finite(restored, model_path, f"image {item['image_id']!r} ({dataset.rows.iloc[i]['input']})")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        pred, target = to_uint8(restored[0].cpu()), to_uint8(item["target"])
        options = {"resize": resize}
        if protocol == "istd":
            options["mask"] = item["mask"][0].numpy() > 0
        restored_score = score(pred, target, protocol, **options)
        input_score = score(degraded, target, protocol, **options)
        if save_dir is not None:
            write_png(Path(save_dir) / f"{item['image_id']}.png", pred)
        rows.append(
            {
                "dataset": config.extra.get("dataset", Path(index).parent.name),
                "run": model_path.parent.name,
                "process": config.process,
                "objective": config.objective,
                "rank_spec": config.rank_spec,
                "scheduler": rank.kind,
                "order": rank.order,
                "rank": rank.rank,
                "steps": steps,
                "eta": eta,
                "seed": config.seed,
                "image_id": str(item["image_id"]),
                "psnr": restored_score["psnr"],
                "ssim": restored_score["ssim"],
                **{key: value for key, value in restored_score.items() if key not in ("psnr", "ssim")},
                "input_psnr": input_score["psnr"],
                "input_ssim": input_score["ssim"],
                "protocol": protocol if resize is None else f"{protocol}@{resize}",
                "seconds": seconds,
            }
        )
    extra = [key for key in (rows[0] if rows else {}) if key not in RESULT_COLUMNS]
    frame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    return frame.astype({"order": "Int64", "rank": "Int64"})


def restore_examples(
    models: dict[str, str | Path],
    index: str | Path,
    steps: int,
    image_number: int = 0,
    split: str = "test",
    protocol: str = "derain_y",
    seed: int = 0,
    device: str = "auto",
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Restores one test image with several runs (LRDM Fig. 7).

    Returns uint8 ``(H, W, 3)`` images keyed ``GT``, ``Input`` and each label of ``models``, and the
    PSNR of every image but ``GT`` against it.
    """
    dev = pick_device(device)
    item = PairedImageDataset(index, split=split, crop=None, flip=False, cache=False)[image_number]
    target = to_uint8(item["target"])
    images = {"GT": target, "Input": to_uint8(item["input"])}
    for label, model_path in models.items():
        _, network, process = load_model(model_path, dev)
        restored = restore(
            network, process, item["input"][None].to(dev), steps, generator=image_generator(seed, image_number, dev)
        )
        check_finite(restored, model_path, f"image {item['image_id']!r} of {index}")
        images[label] = to_uint8(restored[0].cpu())
    psnrs = {label: score(image, target, protocol)["psnr"] for label, image in images.items() if label != "GT"}
    return images, psnrs
