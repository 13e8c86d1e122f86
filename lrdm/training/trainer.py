"""Training loop: Adam, EMA, gradient clipping, gradient accumulation, bf16 autocast on GPU, ``accelerate`` for
several GPUs, atomic checkpoints with automatic resume, deterministic by seed.

Gradient accumulation (``grad_accum`` = N): each optimizer step draws N micro-batches of ``batch_size`` (one
global draw of ``N·batch_size`` samples, split in order) and back-propagates each micro-batch's loss divided
by N, as the official RDDM Trainer does (``gradient_accumulate_every``); the gradient is then that of the
mean loss over the ``N·batch_size`` samples, clipped once.  ``grad_accum: 1`` draws exactly what it always did.

Determinism and exact resume: every step draws its global batch (images, crops, flips), timesteps and
noise from a generator seeded by ``(seed, step)`` alone, so a run resumed from a checkpoint repeats exactly
the steps an uninterrupted run would have taken.

Several processes (``accelerate launch`` / torchrun, DDP): ``batch_size`` is the global batch; every process
draws the same global batch and trains on its contiguous share of ``batch_size / num_processes`` samples, and
DDP averages the gradients, so N processes take the same steps as one process with the same global batch (up
to floating-point reduction order).  The learning rate is not rescaled.  Rank 0 writes checkpoints and logs;
a checkpoint resumes on any number of processes.

Data: ``data_workers`` DataLoader worker processes prepare the next batches (decode, crop, flip, noise) while
the current step runs, into pinned memory when training on a GPU; each step's batch is still a function of
``(seed, step)`` alone, so the weights do not depend on the number of workers.

Run directory layout::

    run_dir/.lock                 held (``flock``) by the one trainer of this directory; holds its PID
    run_dir/config.yaml           resolved TrainConfig (a different config is refused, or with
                                  ``restart_on_change`` starts afresh; more ``steps`` alone continue)
    run_dir/checkpoints/step-N.pt model, EMA, optimiser and step (the last ``keep_checkpoints`` kept;
                                  one that does not load is renamed ``step-N.pt.corrupt``)
    run_dir/superseded/<time>/    the files of an earlier config, set aside by a restart
    run_dir/losses.csv            step, loss, seconds (appended; truncated to the checkpoint on resume)
    run_dir/tensorboard/          the same losses as TensorBoard scalars (config key ``tensorboard: true``)
    run_dir/validation.csv        step, val_psnr, val_ssim every ``val_every`` steps (config key; 0: none)
    run_dir/model.pt              final EMA weights + config (the output the sampler reads)
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import logging
import math
import os
import pickle
import re
import statistics
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from ema_pytorch import EMA
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lrdm.config import TrainConfig, load_config, save_config
from lrdm.core.lowrank import PCABasis, fit_pca_basis
from lrdm.core.nets import TermNetwork, compile_unets
from lrdm.core.process import build_network, build_process
from lrdm.core.schedules import check_timesteps
from lrdm.data.paired import PairedImageDataset, sample_batch
from lrdm.errors import CheckpointError, ConfigError, TrainingDiverged
from lrdm.files import exclusive_lock, save_torch, write_text
from lrdm.training.progress import progress_line

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)\.pt$")
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
LOSS_FILE = "losses.csv"
TENSORBOARD_DIR = "tensorboard"
"""Folder of the run directory that holds the TensorBoard event files (config key ``tensorboard``)."""
LOSS_COLUMNS = ("step", "loss", "seconds")
VALIDATION_FILE = "validation.csv"
VALIDATION_COLUMNS = ("step", "val_psnr", "val_ssim")
"""``validation.csv`` (config key ``val_every``): RGB PSNR (peak 1) and SSIM (scikit-image, channel-wise, data
range 1) of the EMA model on the first ``val_images`` test images, a quick indicator, not an evaluation protocol."""
BASIS_FILE = "basis.pt"
SEED_STRIDE = 1_000_003  # large prime separating per-step seed streams of different ranks
BASIS_STREAM = SEED_STRIDE - 1  # stream index of the crops that fit the dataset_pca basis
PREFETCH_BATCHES = 2  # batches each data worker prepares ahead
LOCK_FILE = ".lock"
SUPERSEDED_DIR = "superseded"  # files of an earlier config, set aside by a restart
CORRUPT_SUFFIX = ".corrupt"  # appended to a checkpoint that does not load
CONTINUABLE_KEYS = ("steps",)  # keys whose increase continues a run instead of restarting it
LOSS_HISTORY = 100  # recent losses whose median the divergence test compares against
MIN_LOSS_HISTORY = 4  # losses seen before the divergence test uses divergence_factor
EARLY_DIVERGENCE_FACTOR = 1e6
"""Until :data:`MIN_LOSS_HISTORY` losses are recorded (the first steps of a run, or of a resume whose losses.csv holds
fewer), a loss above this multiple (or ``divergence_factor`` if larger) of the median of the losses before it is
divergence: a jump by 10^6 stops training at any step, from the second on."""
CHECKPOINT_KEYS = ("step", "model", "ema", "optimizer")
MODEL_KEYS = ("config", "ema")
CHANNELS_LAST_DEVICES = ("cuda",)
"""Devices on which a loaded model runs in channels_last (tensor-core convolutions; on the CPU it does not pay)."""


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): ``lr`` after a linear warm-up over ``lr_warmup`` steps,
    then constant (the official recipe) or cosine-decayed to 0 at ``config.steps``.  A pure function of the step,
    so a resumed run continues on the same curve."""
    warm = min(1.0, (step + 1) / config.lr_warmup) if config.lr_warmup else 1.0
    if config.lr_schedule == "constant":
        decay = 1.0
    elif config.lr_schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
    else:
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")
    return config.lr * warm * decay


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """CPU generator for one training step (the only randomness a step uses); ``stream`` separates other uses."""
    return torch.Generator().manual_seed(seed * SEED_STRIDE * SEED_STRIDE + stream * SEED_STRIDE + step)


def draw_batch(
    dataset: PairedImageDataset, batch_size: int, T: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One global training batch: ``(x0, x_in, t, noise)``, images ``(B, 3, crop, crop)`` in [-1, 1], ``t`` ``(B,)``."""
    batch = sample_batch(dataset, batch_size, generator)
    t = check_timesteps(torch.randint(0, T, (batch_size,), generator=generator), T, lowest=0)  # the edge: on the CPU
    noise = torch.randn(batch["target"].shape, generator=generator)
    return batch["target"], batch["input"], t, noise


class StepBatches(Dataset):
    """Map-style view of a run's training batches: item ``step`` is that step's global batch
    (:func:`draw_batch` with :func:`step_generator`), cut to this process's ``shard`` of samples.

    A :class:`~torch.utils.data.DataLoader` over ``range(start, end)`` then draws batches ahead in worker
    processes without changing what any step sees.
    """

    def __init__(
        self, dataset: PairedImageDataset, batch_size: int, T: int, seed: int, shard: slice | torch.Tensor
    ) -> None:
        self.dataset, self.batch_size, self.T, self.seed, self.shard = dataset, batch_size, T, seed, shard

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        drawn = draw_batch(self.dataset, self.batch_size, self.T, step_generator(self.seed, step))
        if isinstance(self.shard, slice) and self.shard == slice(0, self.batch_size):
            return drawn
        return tuple(v[self.shard].clone() for v in drawn)  # clone: do not ship the whole batch between processes


def process_shard(batch_size: int, grad_accum: int, share: int, process_index: int) -> slice | torch.Tensor:
    """The samples of a step's global draw (``grad_accum`` micro-batches of ``batch_size``, in order) that one
    process trains on: its contiguous ``share`` of every micro-batch, micro-batch after micro-batch."""
    mine = slice(process_index * share, (process_index + 1) * share)
    if grad_accum == 1:
        return mine
    return torch.cat([torch.arange(batch_size)[mine] + j * batch_size for j in range(grad_accum)])


def batch_loader(batches: StepBatches, start: int, end: int, workers: int, pin_memory: bool) -> DataLoader:
    """Yields ``batches[step]`` for ``step`` in ``[start, end)``, prepared by ``workers`` processes (0: inline)."""
    return DataLoader(
        batches,
        batch_size=None,  # items are whole batches already
        sampler=range(start, end),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
    )


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m[1]), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


def resolve_mixed_precision(config: TrainConfig, accelerator_device: torch.device) -> str:
    if config.mixed_precision == "auto":
        return "bf16" if accelerator_device.type == "cuda" else "no"
    return config.mixed_precision


def config_changes(run_dir: Path, config: TrainConfig) -> list[str]:
    """Keys in which ``config`` differs from the one saved in ``run_dir`` (none when nothing is saved)."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return []
    saved = load_config(path).to_dict()
    current = config.to_dict()
    return sorted(k for k in current if saved.get(k) != current[k])


def set_aside(run_dir: Path) -> Path:
    """Moves every file of ``run_dir`` (but the lock and earlier set-aside files) to a new
    ``run_dir/superseded/<UTC time>/`` and returns that folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = run_dir / SUPERSEDED_DIR / stamp
    aside.mkdir(parents=True)
    for entry in run_dir.iterdir():
        if entry.name not in (LOCK_FILE, SUPERSEDED_DIR):
            os.replace(entry, aside / entry.name)
    return aside


def reconcile_run_dir(run_dir: Path, config: TrainConfig, restart_on_change: bool) -> None:
    """Makes ``run_dir`` hold only files of ``config``: continues when only ``steps`` grew, otherwise (a
    changed config) raises :class:`ConfigError`, or with ``restart_on_change`` sets the old files aside."""
    differing = config_changes(run_dir, config)
    if not differing:
        return
    found = list_checkpoints(run_dir)
    if set(differing) <= set(CONTINUABLE_KEYS) and (not found or found[-1][0] <= config.steps):
        logger.warning("%s: steps raised to %d; continuing from the newest checkpoint", run_dir, config.steps)
        return
    if not restart_on_change:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} was written by a run with a different config (keys {differing}); "
            "use a new run directory, delete the old one, or restart it (lrdm train --restart-on-change)"
        )
    aside = set_aside(run_dir)
    logger.warning("%s: config changed (keys %s); the old files are set aside in %s, starting afresh",
                   run_dir, differing, aside)  # fmt: skip


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def load_checkpoint(path: Path, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Loads a checkpoint (``weights_only``) that must hold ``keys``; any failure names the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: truncated, not a PyTorch file, refused by the safe unpickler, or lacking ``keys``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused is None:
            raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint (it does not unpickle)") from None
        raise CheckpointError(
            f"{path} was refused by the safe loader (weights_only=True): it holds a {refused[1]} object, not only "
            "tensors and plain containers; load only checkpoints written by lrdm"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({_first_line(err)})") from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this package: it lacks {missing}")
    return state


def load_resume_state(run_dir: Path, resume_from: str | Path | None, set_aside_corrupt: bool) -> dict[str, Any] | None:
    """State to resume from: ``resume_from`` if given (must load), else the newest checkpoint of ``run_dir``
    that loads.  Newer ones that do not load are renamed ``*.corrupt`` (when ``set_aside_corrupt``: the main
    process) and reported."""
    if resume_from is not None:
        return load_checkpoint(Path(resume_from), CHECKPOINT_KEYS)
    skipped = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path, CHECKPOINT_KEYS)
        except CheckpointError as err:
            if set_aside_corrupt:
                corrupt = path.with_name(path.name + CORRUPT_SUFFIX)
                os.replace(path, corrupt)
                logger.warning("%s; renamed it to %s", err, corrupt.name)
            skipped.append(path)
            continue
        if skipped and set_aside_corrupt:
            logger.warning("resuming %s from %s: newer checkpoint(s) %s did not load", run_dir, path,
                           ", ".join(str(p) for p in skipped))  # fmt: skip
        return state
    if skipped and set_aside_corrupt:
        logger.warning("no checkpoint of %s loads (%s); starting from step 0", run_dir,
                       ", ".join(str(p) for p in skipped))  # fmt: skip
    return None


def divergence(loss: float, history: deque[float], factor: float) -> str | None:
    """Why ``loss`` means the run diverged, or None: non-finite, or, from the second step on, above ``factor``
    times the (lower) median of ``history`` (the accepted losses before it; an exploded loss never enters it),
    the multiple being at least :data:`EARLY_DIVERGENCE_FACTOR` while ``history`` holds fewer than
    :data:`MIN_LOSS_HISTORY` losses."""
    if not math.isfinite(loss):
        return f"loss became {loss}"
    if not history:
        return None
    median = statistics.median_low(history)
    if len(history) >= MIN_LOSS_HISTORY:
        if loss > factor * median:
            return (
                f"loss exploded to {loss:.3g}, above {factor:g} x its running median {median:.3g} "
                "(config key divergence_factor),"
            )
        return None
    limit = max(factor, EARLY_DIVERGENCE_FACTOR)
    if loss > limit * median:
        return f"loss exploded to {loss:.3g}, above {limit:g} x the median {median:.3g} of the losses before it,"
    return None


def recorded_losses(path: Path, limit: int = LOSS_HISTORY) -> deque[float]:
    """The last ``limit`` losses of a run's ``losses.csv`` (empty when it does not exist): the history a resumed
    run's divergence test starts from."""
    history: deque[float] = deque(maxlen=limit)
    if path.exists():
        with open(path, newline="") as handle:
            losses = (float(row["loss"]) for row in csv.DictReader(handle))
            history.extend(loss for loss in losses if math.isfinite(loss))
    return history


def weights_finite(network: torch.nn.Module) -> bool:
    return bool(torch.stack([p.detach().isfinite().all() for p in network.parameters()]).all())


def _diverged(reason: str, step: int, run_dir: Path) -> TrainingDiverged:
    last = list_checkpoints(run_dir)
    return TrainingDiverged(
        f"{reason} at step {step} of {run_dir}; no model.pt was written; the last good checkpoint is "
        f"{last[-1][1] if last else 'none (no checkpoint written yet)'}"
    )


def _truncate_loss_log(path: Path, last_step: int, columns: tuple[str, ...] = LOSS_COLUMNS) -> None:
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= last_step]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def fit_basis_for_run(config: TrainConfig, dataset: PairedImageDataset) -> PCABasis:
    """Fits the ``dataset_pca`` basis on crops of the training residuals (deterministic by seed)."""
    batches = []
    for step in range(max(1, len(dataset) // config.batch_size)):
        batch = sample_batch(dataset, config.batch_size, step_generator(config.seed, step, BASIS_STREAM))
        batches.append(batch["input"] - batch["target"])
    return fit_pca_basis(batches)


@torch.inference_mode()
def validation_scores(network, process, items: list[dict[str, Any]], steps: int, seed: int) -> dict[str, float]:
    """Mean RGB PSNR (peak 1) and SSIM of ``network`` on test ``items`` (cropped to the network's multiple), each
    image's start noise from its own generator -> ``{"val_psnr", "val_ssim"}``."""
    from skimage.metrics import structural_similarity

    factor = network.downsample_factor
    device = next(network.parameters()).device
    psnrs, ssims = [], []
    for number, item in enumerate(items):
        height, width = (size - size % factor for size in item["input"].shape[-2:])
        x_in = item["input"][None, :, :height, :width].to(device)
        generator = torch.Generator(device=device).manual_seed(seed * SEED_STRIDE + number)
        out = process.sample(network, x_in, steps, generator=generator)[0]
        pred = ((out.clamp(-1, 1) + 1) / 2).movedim(0, -1).double().cpu().numpy()
        target = ((item["target"][:, :height, :width] + 1) / 2).movedim(0, -1).double().numpy()
        psnrs.append(10 * math.log10(1.0 / max(float(((pred - target) ** 2).mean()), 1e-12)))
        ssims.append(float(structural_similarity(pred, target, channel_axis=-1, data_range=1.0)))
    return {"val_psnr": sum(psnrs) / len(psnrs), "val_ssim": sum(ssims) / len(ssims)}


def tensorboard_tracker(config: TrainConfig) -> str | None:
    """accelerate's ``log_with`` for config key ``tensorboard``: ``"tensorboard"`` (the package must be installed:
    ``pip install -e '.[tensorboard]'``) or ``None``."""
    if not config.tensorboard:
        return None
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "config key 'tensorboard' is true but the tensorboard package is missing: pip install -e '.[tensorboard]'"
        )
    return "tensorboard"


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume_from: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
    data_workers: int = 0,
    compile_model: bool = False,
    restart_on_change: bool = False,
) -> Path:
    """Trains one run into ``run_dir`` and returns the path of the final ``model.pt``.

    Resumes automatically from the newest checkpoint in ``run_dir``; ``resume_from`` names a
    checkpoint explicitly (missing -> ``FileNotFoundError``).  ``stop_after`` ends the process after
    that many steps (for tests of interruption).  ``data_workers`` processes prepare batches ahead
    (0: in the training loop); the result does not depend on it.  ``compile_model`` compiles the UNets
    (:func:`lrdm.core.nets.compile_unets`; the EMA copy stays eager).  A config that differs from the one
    saved in ``run_dir`` is refused, or with ``restart_on_change`` starts afresh (the old files set aside);
    more ``steps`` alone continue.  The main process holds ``run_dir``'s lock throughout (a second trainer
    raises :class:`RunLockedError`).  Raises :class:`TrainingDiverged` on a non-finite or exploding loss
    (``divergence_factor``) or non-finite weights, without writing ``model.pt``.
    """
    if data_workers < 0:
        raise ValueError(f"data_workers must be >= 0, got {data_workers}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu_only = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
    probe = torch.device("cpu" if cpu_only else "cuda")
    accelerator = Accelerator(
        cpu=cpu_only,
        mixed_precision=resolve_mixed_precision(config, probe),
        log_with=tensorboard_tracker(config),
        project_dir=run_dir,
    )
    with contextlib.ExitStack() as stack:
        if accelerator.is_main_process:
            stack.enter_context(exclusive_lock(run_dir / LOCK_FILE, f"run directory {run_dir}"))
        return _train_locked(
            config, run_dir, accelerator, resume_from, stop_after, progress, data_workers, compile_model,
            restart_on_change,
        )  # fmt: skip


def _train_locked(
    config: TrainConfig,
    run_dir: Path,
    accelerator: Accelerator,
    resume_from: str | Path | None,
    stop_after: int | None,
    progress: bool | None,
    data_workers: int,
    compile_model: bool,
    restart_on_change: bool,
) -> Path:
    """:func:`train` once the main process holds the run directory's lock."""
    state = None
    if accelerator.is_main_process:
        reconcile_run_dir(run_dir, config, restart_on_change)
        (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        save_config(config, run_dir / CONFIG_FILE)
        state = load_resume_state(run_dir, resume_from, set_aside_corrupt=True)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        state = load_resume_state(run_dir, resume_from, set_aside_corrupt=False)
    if config.tensorboard:  # after a changed config's old files (its event files too) were set aside
        accelerator.init_trackers(TENSORBOARD_DIR)
    torch.manual_seed(config.seed)  # initial weights
    if config.batch_size % accelerator.num_processes:
        raise ConfigError(
            f"config key 'batch_size' ({config.batch_size}) is the global batch and must be divisible by the "
            f"number of processes ({accelerator.num_processes})",
            "batch_size",
        )
    share = config.batch_size // accelerator.num_processes

    dataset = PairedImageDataset(
        config.index,
        split="train",
        crop=None if config.resize is not None else config.crop,
        resize=config.resize,
        flip=config.flip,
        cache=True,
    )
    basis = None
    if config.basis == "dataset_pca":
        basis_path = run_dir / BASIS_FILE
        if basis_path.exists():
            basis = PCABasis.load(basis_path)
        else:
            basis = fit_basis_for_run(config, dataset)
            if accelerator.is_main_process:
                basis.save(basis_path)
    process = build_process(config, basis)
    network = build_network(config, process)
    ema = EMA(
        network,
        beta=config.ema_decay,
        update_after_step=config.ema_start,
        update_every=config.ema_update_every,
        include_online_model=False,
    )
    if compile_model:
        compile_unets(network)  # after the EMA's deep copy
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, betas=config.adam_betas)

    start = 0
    if state is not None:
        network.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    log_path = run_dir / LOSS_FILE
    if accelerator.is_main_process:
        _truncate_loss_log(log_path, start)
        if not log_path.exists():
            write_text(log_path, ",".join(LOSS_COLUMNS) + "\n")
    validation_path = run_dir / VALIDATION_FILE
    val_items: list[dict[str, Any]] = []
    if config.val_every and accelerator.is_main_process:
        _truncate_loss_log(validation_path, start, VALIDATION_COLUMNS)
        if not validation_path.exists():
            write_text(validation_path, ",".join(VALIDATION_COLUMNS) + "\n")
        test = PairedImageDataset(config.index, split="test", crop=None, flip=False, cache=False)
        val_items = [test[i] for i in range(min(config.val_images, len(test)))]
    accelerator.wait_for_everyone()

    ema.to(accelerator.device)
    network, optimizer = accelerator.prepare(network, optimizer)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    began = time.perf_counter()
    bar = tqdm(
        range(start, end),
        initial=start,
        total=config.steps,
        desc=run_dir.name,
        disable=(not accelerator.is_main_process) if progress is None else not progress,
    )
    mine = process_shard(config.batch_size, config.grad_accum, share, accelerator.process_index)
    if data_workers and start < end:
        dataset.preload()  # one decoded copy, shared by the forked workers
    batches = StepBatches(dataset, config.batch_size * config.grad_accum, process.T, config.seed, mine)
    loader = batch_loader(batches, start, end, data_workers, pin_memory=accelerator.device.type == "cuda")
    history = recorded_losses(log_path)  # a resumed run is judged against the losses before it
    with open(log_path, "a", newline="") if accelerator.is_main_process else contextlib.nullcontext() as log_handle:
        writer = csv.writer(log_handle) if log_handle is not None else None
        for step, drawn in zip(bar, loader):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            micro_batches = zip(*(v.to(accelerator.device, non_blocking=True).chunk(config.grad_accum) for v in drawn))
            mean_loss = 0.0
            for micro, (x0, x_in, t, noise) in enumerate(micro_batches):
                last_micro = micro == config.grad_accum - 1
                # gradients are averaged across processes once, at the last micro-batch
                with contextlib.nullcontext() if last_micro else accelerator.no_sync(network):
                    with accelerator.autocast():
                        loss = process.loss(network, x0, x_in, t, noise) / config.grad_accum
                    mean_loss += accelerator.reduce(loss.detach(), reduction="mean").item()
                    if not math.isfinite(mean_loss):  # before its backward pass; the optimizer has not stepped
                        raise _diverged(f"loss became {mean_loss}", step + 1, run_dir)
                    accelerator.backward(loss)
            if (reason := divergence(mean_loss, history, config.divergence_factor)) is not None:
                raise _diverged(reason, step + 1, run_dir)
            history.append(mean_loss)
            accelerator.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not weights_finite(network):
                raise _diverged("non-finite weights appeared", step + 1, run_dir)
            ema.update()
            done = step + 1
            if accelerator.is_main_process and (done % config.log_every == 0 or done == end):
                elapsed = time.perf_counter() - began
                writer.writerow([done, f"{mean_loss:.6g}", f"{elapsed:.3f}"])
                logger.info("%s: %s", run_dir, progress_line(done, config.steps, mean_loss, done - start, elapsed))
                if config.tensorboard:
                    accelerator.log({"loss": mean_loss}, step=done)
                log_handle.flush()
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            if val_items and done % config.val_every == 0:
                scores = validation_scores(ema.ema_model, process, val_items, config.val_steps, config.seed)
                with open(validation_path, "a", newline="") as handle:
                    csv.writer(handle).writerow([done, *(f"{scores[k]:.6g}" for k in VALIDATION_COLUMNS[1:])])
                if config.tensorboard:
                    accelerator.log(scores, step=done)
                bar.set_postfix(loss=f"{mean_loss:.4f}", val_psnr=f"{scores['val_psnr']:.2f}")
            if done % config.checkpoint_every == 0 or done == end:
                _save_checkpoint(accelerator, network, ema, optimizer, done, run_dir, config)
    bar.close()
    if config.tensorboard:
        accelerator.end_training()
    model_path = run_dir / MODEL_FILE
    if end == config.steps and accelerator.is_main_process:
        save_torch({"config": config.to_dict(), "ema": ema.ema_model.state_dict(), "step": end}, model_path)
    accelerator.wait_for_everyone()
    return model_path


def _save_checkpoint(
    accelerator: Accelerator, network, ema: EMA, optimizer, step: int, run_dir: Path, config: TrainConfig
) -> None:
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    state = {
        "step": step,
        "model": accelerator.unwrap_model(network).state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    save_torch(state, run_dir / CHECKPOINT_DIR / f"step-{step:08d}.pt")
    for _, old in list_checkpoints(run_dir)[: -config.keep_checkpoints]:
        old.unlink()


def load_model(model_path: str | Path, device: str | torch.device = "cpu") -> tuple[TrainConfig, TermNetwork, Any]:
    """Loads a trained run's EMA network and process: -> ``(config, network in eval mode, process)``; on CUDA the
    network is in channels_last (:data:`CHANNELS_LAST_DEVICES`)."""
    model_path = Path(model_path)
    state = load_checkpoint(model_path, MODEL_KEYS)
    try:
        config = TrainConfig.from_dict(state["config"])
    except ValueError as err:
        raise CheckpointError(f"{model_path} holds an invalid run config: {err}") from None
    basis_path = model_path.parent / BASIS_FILE
    basis = PCABasis.load(basis_path) if config.basis == "dataset_pca" else None
    process = build_process(config, basis)
    network = build_network(config, process)
    try:
        network.load_state_dict(state["ema"])
    except RuntimeError as err:
        raise CheckpointError(f"{model_path}: its weights do not fit its config ({_first_line(err)})") from None
    network = network.to(device).eval()
    if torch.device(device).type in CHANNELS_LAST_DEVICES:
        network = network.to(memory_format=torch.channels_last)
    return config, network, process
