"""Restore a test split with a trained run and score every image (one Parquet row per image)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lrdm.core.device import pick_device
from lrdm.data.paired import PairedImageDataset, from_model_space, to_unit_float
from lrdm.errors import ConfigError
from lrdm.evaluation.columns import RESULT_COLUMNS
from lrdm.evaluation.inference import Restorer, Sampling, batches_by_tiling, network_shape, restore_with_tiling
from lrdm.evaluation.metrics import LRDM_TEST_SIZE, imresize, lrdm_test_resize, score
from lrdm.evaluation.tiling import AUTO, TileRequest, choose_tiling
from lrdm.files import write_png
from lrdm.paths import run_tail
from lrdm.training.rundir import load_model
from lrdm.vocab import OFFICIAL_RUN, PROTOCOLS

LRDM_TRANSFORM = "lrdm"
"""``resize`` value selecting the LRDM test transform (:func:`lrdm.evaluation.protocols.lrdm_y.lrdm_test_resize`)."""


def run_identity(model_path: str | Path, config: Any) -> str:
    """The ``run`` column of a score row: which trained run within its dataset the scores belong to.

    The authors' weights imported by the workflow (a model in a folder named :data:`lrdm.vocab.OFFICIAL_RUN`)
    are ``official``; any other model is its run's folder below ``runs/<dataset>/`` (:data:`lrdm.paths.RUN_TAIL`)
    from its own resolved config, so two runs of one dataset never share a ``run``.
    """
    if Path(model_path).parent.name == OFFICIAL_RUN:
        return OFFICIAL_RUN
    return run_tail(config.process, config.objective, config.rank_spec, config.seed)


def protocol_label(protocol: str, resize: int | str | None) -> str:
    """The ``protocol`` column: the protocol, and the test-time transform after ``@`` (``derain_y@256``,
    ``lrdm_y@lrdm256``; nothing when images are scored at their own size)."""
    if resize is None:
        return protocol
    if resize == LRDM_TRANSFORM:
        return f"{protocol}@{LRDM_TRANSFORM}{LRDM_TEST_SIZE}"
    return f"{protocol}@{resize}"


def check_resize(resize: int | str | None) -> None:
    """``None``, a positive int (RDDM's policy) or ``"lrdm"``; anything else raises naming the value."""
    if resize is None or resize == LRDM_TRANSFORM:
        return
    if isinstance(resize, bool) or not isinstance(resize, int) or resize < 1:
        raise ValueError(f"resize must be None, a positive integer or {LRDM_TRANSFORM!r}, got {resize!r}")


def parse_protocol_label(label: str) -> tuple[str, int | str | None]:
    """Inverse of :func:`protocol_label`: ``"rgb@256"`` -> ``("rgb", 256)``, ``"lrdm_y@lrdm256"`` ->
    ``("lrdm_y", "lrdm")``, ``"derain_y"`` -> ``("derain_y", None)``.  Unknown names raise ``ValueError``."""
    protocol, at, transform = label.partition("@")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol label {label!r}: unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if not at:
        return protocol, None
    if transform == f"{LRDM_TRANSFORM}{LRDM_TEST_SIZE}":
        return protocol, LRDM_TRANSFORM
    if transform.isdigit() and int(transform) > 0:
        return protocol, int(transform)
    raise ValueError(
        f"protocol label {label!r}: the part after '@' must be a size (RDDM's resize policy) or "
        f"'{LRDM_TRANSFORM}{LRDM_TEST_SIZE}' (the LRDM test transform)"
    )


def _score_pair(
    pred: np.ndarray, unit: np.ndarray, target: np.ndarray, label: str, mask: np.ndarray | None
) -> dict[str, float]:
    """Scores a restored image (uint8 ``pred`` and its float ``unit`` in [0, 1]) under ``label``, applying
    the label's transform to the restored image and the ground truth (post hoc: the network saw the image at
    its own size; the LRDM transform resizes the rounded image, so ``lrdm_y`` scores it rounded there)."""
    protocol, resize = parse_protocol_label(label)
    if resize == LRDM_TRANSFORM:  # PIL's bicubic takes the rounded image
        return score(lrdm_test_resize(pred), lrdm_test_resize(target), protocol)
    prediction = unit if protocol == "lrdm_y" else pred
    options = {"resize": resize, **({"mask": mask} if protocol == "istd" else {})}
    return score(prediction, target, protocol, **options)


@dataclass(frozen=True)
class EvaluationOptions:
    """How a run is evaluated (:func:`evaluate_protocols`, :func:`evaluate_run`, :func:`restore_rows`).

    ``sampling``: steps, seed of the start noise, ``eta`` and sampler (:class:`lrdm.evaluation.inference.Sampling`);
    ``split``: the index's rows restored; ``protocol``: the primary protocol; ``resize``: the test-time transform
    (None, RDDM's size, or ``"lrdm"``; see :func:`evaluate_run`); ``tile``: the tile policy (``"auto"``, a side in
    pixels, or None, whole images); ``device``: ``auto``, ``cpu``, ``cuda[:N]``; ``batch``: test images of one size
    restored together; ``limit``: the first images only; ``save_dir``: a folder for the restored PNGs;
    ``progress``: a bar over the images.  :func:`restore_rows` restores one image at a time and saves nothing, so
    it reads neither ``batch``, ``limit``, ``save_dir`` nor ``progress``.
    """

    sampling: Sampling
    split: str = "test"
    protocol: str = "derain_y"
    resize: int | str | None = None
    tile: int | str | None = AUTO
    device: str = "auto"
    batch: int = 1
    limit: int | None = None
    save_dir: str | Path | None = None
    progress: bool = False

    @classmethod
    def of(cls, steps: int, **keywords: Any) -> EvaluationOptions:
        """Options from keyword arguments: the fields of :class:`Sampling` but ``steps`` (``seed``, ``eta``,
        ``sampler``) and those of this class; an unknown keyword raises ``TypeError`` naming it."""
        sampling_keys = {item.name for item in fields(Sampling)} - {"steps"}
        sampling = {key: keywords.pop(key) for key in list(keywords) if key in sampling_keys}
        return cls(Sampling(steps, **sampling), **keywords)


def evaluate_run(model_path: str | Path, index: str | Path, steps: int, **options: Any) -> pd.DataFrame:
    """Restores every image of ``split`` with ``steps`` sampling steps and scores it against its target.

    ``options`` are the fields of :class:`EvaluationOptions` and of its ``sampling`` (``split``, ``protocol``,
    ``eta``, ``seed``, ``sampler``, ``device``, ``save_dir``, ``limit``, ``resize``, ``batch``, ``tile``,
    ``progress``) with their defaults (:meth:`EvaluationOptions.of`).

    Each image goes through the network as ``lrdm restore`` sends it (:mod:`lrdm.evaluation.inference`): whole
    when it is within the tile policy's side, else in tiles (``tile``: ``"auto"``, the policy of
    :func:`lrdm.evaluation.tiling.auto_tile`; a side in pixels; or None, whole images).  The start noise of
    image ``i`` comes from :func:`lrdm.core.sampling.image_generator`; the sampler is the one named by
    ``sampler`` (:data:`lrdm.core.samplers.SAMPLERS`; ``default``: the run's process's own), recorded in the
    ``sampler`` column.  ``resize`` is RDDM's policy: the input
    is resized to ``resize × resize`` (MATLAB-style bicubic) before restoration and the ground truth to the
    output's size for scoring; the ``protocol`` column then reads e.g. ``rgb@256``.  ``resize="lrdm"`` is the
    LRDM test transform: input and ground truth both go through :func:`lrdm_test_resize` (column
    ``lrdm_y@lrdm256``).  ``lrdm_y`` scores the network's float output unrounded (as the LRDM code does);
    the other protocols score it rounded to uint8, as a saved PNG.  The ``istd`` protocol
    takes each pair's shadow mask from the index.  Consecutive test images of one size are restored ``batch`` at
    a time (each with its own noise generator, so the batch changes no noise); ``progress`` shows a bar over the
    images; ``seconds`` is the batch's time over its size; ``limit`` evaluates the first images only (column
    ``max_test_images``).  Returns one row per image with :data:`RESULT_COLUMNS`,
    plus any further metrics of the protocol (e.g. ``mae_all``, ``mae_shadow``, ``mae_nonshadow``).
    """
    return evaluate_protocols(model_path, index, EvaluationOptions.of(steps, **options))[0]


def evaluate_protocols(
    model_path: str | Path, index: str | Path, options: EvaluationOptions, scorings: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`evaluate_run` under ``options``, and the same restored images scored once more under each of
    ``scorings``.

    ``scorings`` are protocol labels (``derain_y``, ``derain_y@256``, ``lrdm_y@lrdm256``; see
    :func:`parse_protocol_label`).  Their transforms apply to the restored image and the ground truth, so the
    images are restored once, at the size the primary evaluation gives the network; this needs
    ``options.resize`` None.  Returns the primary frame and a frame of the same columns with one row per image and
    scoring (empty without ``scorings``).
    """
    protocol, resize, batch, limit = options.protocol, options.resize, options.batch, options.limit
    steps, save_dir = options.sampling.steps, options.save_dir
    check_resize(resize)
    if resize == LRDM_TRANSFORM and protocol == "istd":
        raise ValueError("protocol 'istd' needs resize None or N: the LRDM test transform has no mask counterpart")
    for label in scorings:
        parse_protocol_label(label)
    if scorings and resize is not None:
        raise ValueError(f"further scorings {list(scorings)} need the images restored at their own size (resize None)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"eval_batch must be a positive integer, got {batch!r}", "eval_batch")
    model_path = Path(model_path)
    dev = pick_device(options.device)
    config, network, process = load_model(model_path, dev)
    restorer = Restorer(network, process, dev, options.sampling, model_path)
    request, shape = TileRequest(options.tile, AUTO, batch), network_shape(config, network)
    rank = config.rank
    dataset = PairedImageDataset(index, split=options.split, crop=None, flip=False, cache=False)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows, further = [], []
    keys_of_run = {
        "dataset": config.extra.get("dataset", Path(index).parent.name),
        "run": run_identity(model_path, config),
        "process": config.process,
        "objective": config.objective,
        "rank_spec": config.rank_spec,
        "scheduler": rank.kind,
        "order": rank.order,
        "rank": rank.rank,
        "steps": steps,
        "eta": options.sampling.eta,
        "seed": config.seed,
        "sampler": restorer.sampler.name,
        "max_test_images": limit,
    }

    def load(i: int) -> dict[str, Any]:
        item = dataset[i]
        degraded, target = protocol_inputs(item, resize)
        mask = item["mask"][0].numpy() > 0 if "mask" in item else None
        height, width = degraded.shape[:2]
        return {
            "number": i,
            "image_id": str(item["image_id"]),
            "file": dataset.rows.iloc[i]["input"],
            "degraded": degraded,
            "target": target,
            "mask": mask,
            "plan": choose_tiling(height, width, shape, math.inf, request, name=str(dataset.rows.iloc[i]["input"])),
        }

    def score_one(entry: dict[str, Any], restored: torch.Tensor, seconds: float) -> None:
        pred, unit = from_model_space(restored.cpu()), to_unit_float(restored)
        degraded, target, mask = entry["degraded"], entry["target"], entry["mask"]
        restored_score, input_score = score_restored(restored, degraded, target, protocol, resize, mask)
        if save_dir is not None:
            write_png(Path(save_dir) / f"{entry['image_id']}.png", pred)
        keys = {**keys_of_run, "image_id": entry["image_id"]}
        rows.append(_score_row(keys, restored_score, input_score, protocol_label(protocol, resize), seconds))
        unit_input = degraded.astype(np.float32) / np.float32(255.0)
        for label in scorings:
            further.append(
                _score_row(
                    keys,
                    _score_pair(pred, unit, target, label, mask),
                    _score_pair(degraded, unit_input, target, label, mask),
                    label,
                    seconds,
                )
            )

    description = f"evaluate {model_path.parent.name} steps {steps}"
    bar = tqdm(total=count, desc=description, unit="img", disable=not options.progress)
    entries = (load(i) for i in range(count))
    for group in batches_by_tiling(entries, lambda entry: entry["plan"], lambda entry: entry["degraded"].shape):
        began = time.perf_counter()
        images, numbers = [entry["degraded"] for entry in group], [entry["number"] for entry in group]
        names = [f"image {entry['image_id']!r} ({entry['file']})" for entry in group]
        restored = restore_with_tiling(restorer, images, numbers, group[0]["plan"], names)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - began) / len(group)
        for entry, image in zip(group, restored):
            score_one(entry, image, seconds)
        bar.update(len(group))
    bar.close()
    return _score_frame(rows), _score_frame(further)


def protocol_inputs(item: dict[str, Any], resize: int | str | None) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 degraded input the network restores and the ground truth it is scored against, for a dataset
    item under the test-time transform ``resize`` (see :func:`evaluate_run`)."""
    degraded, target = from_model_space(item["input"]), from_model_space(item["target"])
    if resize == LRDM_TRANSFORM:
        return lrdm_test_resize(degraded), lrdm_test_resize(target)
    if resize is not None:
        return imresize(degraded, (resize, resize)), target
    return degraded, target


def score_restored(
    restored: torch.Tensor,
    degraded: np.ndarray,
    target: np.ndarray,
    protocol: str,
    resize: int | str | None,
    mask: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The metrics of a restored model-space image and of its degraded input (:func:`protocol_inputs`) against
    the ground truth under ``protocol`` and ``resize``, as the score files hold them (``lrdm_y`` scores the
    float output unrounded, the other protocols the uint8 image)."""
    prediction = to_unit_float(restored) if protocol == "lrdm_y" else from_model_space(restored.cpu())
    return _protocol_score(prediction, target, protocol, resize, mask), _protocol_score(
        degraded, target, protocol, resize, mask
    )


def _protocol_score(
    image: np.ndarray, target: np.ndarray, protocol: str, resize: int | str | None, mask: np.ndarray | None
) -> dict[str, float]:
    extra = {"mask": mask} if protocol == "istd" else {}
    return score(image, target, protocol, resize=None if resize == LRDM_TRANSFORM else resize, **extra)


def _score_row(
    keys: dict[str, Any], restored: dict[str, float], degraded: dict[str, float], label: str, seconds: float
) -> dict[str, Any]:
    return {
        **keys,
        "psnr": restored["psnr"],
        "ssim": restored["ssim"],
        **{key: value for key, value in restored.items() if key not in ("psnr", "ssim")},
        "input_psnr": degraded["psnr"],
        "input_ssim": degraded["ssim"],
        "protocol": label,
        "seconds": seconds,
    }


def _score_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    extra = [key for key in (rows[0] if rows else {}) if key not in RESULT_COLUMNS]
    frame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    return frame.astype({"order": "Int64", "rank": "Int64", "max_test_images": "Int64"})


def restore_rows(
    models: dict[str, str | Path], index: str | Path, image_numbers: Sequence[int], options: EvaluationOptions
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, float]]]:
    """Restores the test images ``image_numbers`` with several runs (LRDM Fig. 7, the restoration grids).

    Returns, per image, uint8 ``(H, W, 3)`` images keyed ``GT``, ``Input`` and each label of ``models``, and
    the PSNR of every image but ``GT`` against it, scored as :func:`evaluate_run` scores it under the same
    ``options`` (the same test-time transform, sampler, noise and ``tile`` policy, so the same PSNR as the image's
    score row); the images shown are the transformed ones.  Each model is loaded once.
    """
    protocol, resize, tile = options.protocol, options.resize, options.tile
    check_resize(resize)
    dev = pick_device(options.device)
    dataset = PairedImageDataset(index, split=options.split, crop=None, flip=False, cache=False)
    items = [dataset[number] for number in image_numbers]
    pairs = [protocol_inputs(item, resize) for item in items]
    masks = [item["mask"][0].numpy() > 0 if "mask" in item else None for item in items]
    rows = [{"GT": target, "Input": degraded} for degraded, target in pairs]
    psnrs = [
        {"Input": _protocol_score(degraded, target, protocol, resize, mask)["psnr"]}
        for (degraded, target), mask in zip(pairs, masks)
    ]
    for label, model_path in models.items():
        config, network, process = load_model(model_path, dev)
        shape, request = network_shape(config, network), TileRequest(tile, AUTO, 1)
        restorer = Restorer(network, process, dev, options.sampling, model_path)
        for number, item, (degraded, target), mask, row, psnr in zip(image_numbers, items, pairs, masks, rows, psnrs):
            name = f"image {item['image_id']!r}"
            plan = choose_tiling(*degraded.shape[:2], shape, math.inf, request, name=name)
            restored = restore_with_tiling(restorer, [degraded], [number], plan, [f"{name} of {index}"])
            row[label] = from_model_space(restored[0].cpu())
            psnr[label] = score_restored(restored[0], degraded, target, protocol, resize, mask)[0]["psnr"]
    return rows, psnrs


def restore_examples(
    models: dict[str, str | Path], index: str | Path, steps: int, image_number: int = 0, **options: Any
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """:func:`restore_rows` of one test image (LRDM Fig. 7): its images and PSNRs; ``options`` are the keyword
    arguments of :meth:`EvaluationOptions.of` (``split``, ``protocol``, ``seed``, ``eta``, ``sampler``, ``device``,
    ``resize``, ``tile``)."""
    rows, psnrs = restore_rows(models, index, [image_number], EvaluationOptions.of(steps, **options))
    return rows[0], psnrs[0]
