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

A signal (SIGTERM, SIGINT, SIGUSR1) stops a run cleanly: the optimiser step in flight finishes, every process
agreeing on it, a checkpoint is written there (bit-exact resume, as from a periodic one), one line says where, and
:class:`~lrdm.errors.TrainingStopped` is raised (:mod:`lrdm.training.stopping`).

The run directory (its files, lock, changed configs, checkpoints, ``load_model``) is :mod:`lrdm.training.rundir`.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import logging
import math
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from accelerate import Accelerator
from ema_pytorch import EMA
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lrdm.config import TrainConfig
from lrdm.core.device import pick_device
from lrdm.core.lowrank import PCABasis, fit_pca_basis
from lrdm.core.nets import compile_unets
from lrdm.core.prediction import TrainingExample
from lrdm.core.process import build_network, build_process
from lrdm.core.sampling import SEED_STRIDE, image_generator
from lrdm.core.schedules import check_timesteps
from lrdm.data.paired import PairedImageDataset, sample_batch
from lrdm.errors import ConfigError, TrainingDiverged, TrainingStopped
from lrdm.files import exclusive_lock, save_torch
from lrdm.training.progress import progress_line
from lrdm.training.rundir import (
    BASIS_FILE,
    LOCK_FILE,
    LOSS_COLUMNS,
    LOSS_FILE,
    MODEL_FILE,
    TENSORBOARD_DIR,
    VALIDATION_COLUMNS,
    VALIDATION_FILE,
    list_checkpoints,
    open_run_dir,
    save_checkpoint,
    start_log,
)
from lrdm.training.stopping import StopRequest, agreed_stop, ignore_stop_signals, signal_name, stop_on_signals

logger = logging.getLogger(__name__)

BASIS_STREAM = SEED_STRIDE - 1  # stream index of the crops that fit the dataset_pca basis
PREFETCH_BATCHES = 2  # batches each data worker prepares ahead
LOSS_HISTORY = 100  # recent losses whose median the divergence test compares against
MIN_LOSS_HISTORY = 4  # losses seen before the divergence test uses divergence_factor
EARLY_DIVERGENCE_FACTOR = 1e6
"""Until :data:`MIN_LOSS_HISTORY` losses are recorded (the first steps of a run, or of a resume whose losses.csv holds
fewer), a loss above this multiple (or ``divergence_factor`` if larger) of the median of the losses before it is
divergence: a jump by 10^6 stops training at any step, from the second on."""


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): ``lr`` after a linear warm-up over ``lr_warmup`` steps,
    then constant (the official recipe) or cosine-decayed to 0 at ``config.steps``.  A pure function of the step,
    so a resumed run continues on the same curve."""
    warm = min(1.0, (step + 1) / config.lr_warmup) if config.lr_warmup else 1.0
    cosine = config.lr_schedule == "cosine"  # else "constant": TrainConfig admits only LR_SCHEDULES
    decay = 0.5 * (1.0 + math.cos(math.pi * step / config.steps)) if cosine else 1.0
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
        worker_init_fn=ignore_stop_signals if workers else None,  # the main process stops them
    )


def resolve_mixed_precision(config: TrainConfig, accelerator_device: torch.device) -> str:
    if config.mixed_precision == "auto":
        return "bf16" if accelerator_device.type == "cuda" else "no"
    return config.mixed_precision


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
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    factor = network.downsample_factor
    device = next(network.parameters()).device
    psnrs, ssims = [], []
    for number, item in enumerate(items):
        height, width = (size - size % factor for size in item["input"].shape[-2:])
        x_in = item["input"][None, :, :height, :width].to(device)
        generator = image_generator(seed, number, device)
        out = process.sample(network, x_in, steps, generator=generator)[0]
        pred = ((out.clamp(-1, 1) + 1) / 2).movedim(0, -1).double().cpu().numpy()
        target = ((item["target"][:, :height, :width] + 1) / 2).movedim(0, -1).double().numpy()
        psnrs.append(float(peak_signal_noise_ratio(target, pred, data_range=1.0)))
        ssims.append(float(structural_similarity(pred, target, channel_axis=-1, data_range=1.0)))
    return {"val_psnr": sum(psnrs) / len(psnrs), "val_ssim": sum(ssims) / len(ssims)}


def tensorboard_tracker(config: TrainConfig) -> str | None:
    """accelerate's ``log_with`` for config key ``tensorboard``: ``"tensorboard"`` (the package must be installed:
    ``pip install -e '.[tensorboard]'``) or ``None``."""
    if not config.tensorboard:
        return None
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "config key 'tensorboard' is true but the tensorboard package is missing: pip install -e '.[tensorboard]'",
            "tensorboard",
        )
    return "tensorboard"


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train` runs a config, beside the config itself: the options of ``lrdm train`` (and of each
    process :func:`lrdm.training.launch.launch_command` starts); none of them changes the weights.

    ``resume_from`` names a checkpoint to resume from (missing -> ``FileNotFoundError``; None: the newest in the
    run directory).  ``restart_on_change``: a config that differs from the one saved in the run directory starts
    afresh (the old files set aside) instead of being refused; more ``steps`` alone continue either way.
    ``data_workers`` processes prepare batches ahead (0: in the training loop).  ``compile_model`` compiles the
    UNets (:func:`lrdm.core.nets.compile_unets`; the EMA copy stays eager).
    """

    resume_from: str | Path | None = None
    restart_on_change: bool = False
    data_workers: int = 0
    compile_model: bool = False

    def __post_init__(self) -> None:
        if self.data_workers < 0:
            raise ValueError(f"data_workers must be >= 0, got {self.data_workers}")


@dataclass(frozen=True)
class _Request:
    """One call of :func:`train`, as its steps pass it on."""

    config: TrainConfig
    run_dir: Path
    options: TrainOptions
    progress: bool | None
    stop_after: int | None


def train(
    config: TrainConfig,
    run_dir: str | Path,
    options: TrainOptions | None = None,
    *,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> Path:
    """Trains one run into ``run_dir`` and returns the path of the final ``model.pt``.

    Resumes automatically from the newest checkpoint in ``run_dir`` (or ``options.resume_from``; see
    :class:`TrainOptions`, default: none set).  ``progress``: a progress bar (None: on the main process).
    ``stop_after`` ends the process after that many steps (for tests of interruption).  A config that differs
    from the one saved in ``run_dir`` is refused (unless ``options.restart_on_change``).  The main process holds
    ``run_dir``'s lock throughout (a second trainer raises :class:`RunLockedError`).  Raises
    :class:`TrainingDiverged` on a non-finite or exploding loss (``divergence_factor``) or non-finite weights,
    without writing ``model.pt``.  SIGTERM, SIGINT or SIGUSR1 (:data:`~lrdm.training.stopping.STOP_SIGNALS`) stop
    it after the step in flight with a checkpoint there and one line on stderr: :class:`TrainingStopped` (a
    second SIGINT: ``KeyboardInterrupt`` at once).
    """
    request = _Request(config, Path(run_dir), options or TrainOptions(), progress, stop_after)
    with stop_on_signals() as stop:
        return _train_signalled(request, stop)


def _train_signalled(request: _Request, stop: StopRequest) -> Path:
    """:func:`train` while the stop signals only set ``stop``."""
    config, run_dir = request.config, request.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    probe = pick_device(config.device)
    accelerator = Accelerator(
        cpu=probe.type == "cpu",
        mixed_precision=resolve_mixed_precision(config, probe),
        log_with=tensorboard_tracker(config),
        project_dir=run_dir,
    )
    with contextlib.ExitStack() as stack:
        if accelerator.is_main_process:
            stack.enter_context(exclusive_lock(run_dir / LOCK_FILE, f"run directory {run_dir}"))
        return _train_locked(request, accelerator, stop)


@dataclass
class _Training:
    """What one run trains with, built (and resumed) by :func:`_setup`."""

    config: TrainConfig
    run_dir: Path
    accelerator: Accelerator
    dataset: PairedImageDataset
    process: Any
    network: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    start: int  # the step the run resumes from
    share: int  # samples of each micro-batch that this process trains on


def _train_locked(request: _Request, accelerator: Accelerator, stop: StopRequest) -> Path:
    """:func:`train` once the main process holds the run directory's lock."""
    config, run_dir, options = request.config, request.run_dir, request.options
    state = open_run_dir(run_dir, config, accelerator, options.resume_from, options.restart_on_change)
    run = _setup(config, run_dir, accelerator, state, options.compile_model)
    val_items = _start_logs(run)
    accelerator.wait_for_everyone()

    run.ema.to(accelerator.device)
    run.network, run.optimizer = accelerator.prepare(run.network, run.optimizer)
    end = config.steps if request.stop_after is None else min(config.steps, run.start + request.stop_after)
    began = time.perf_counter()
    bar = tqdm(
        range(run.start, end),
        initial=run.start,
        total=config.steps,
        desc=run_dir.name,
        disable=(not accelerator.is_main_process) if request.progress is None else not request.progress,
    )
    mine = process_shard(config.batch_size, config.grad_accum, run.share, accelerator.process_index)
    if options.data_workers and run.start < end:
        run.dataset.preload()  # one decoded copy, shared by the forked workers
    batches = StepBatches(run.dataset, config.batch_size * config.grad_accum, run.process.T, config.seed, mine)
    loader = batch_loader(batches, run.start, end, options.data_workers, pin_memory=accelerator.device.type == "cuda")
    log_path = run_dir / LOSS_FILE
    history = recorded_losses(log_path)  # a resumed run is judged against the losses before it
    stopped_by = None
    with open(log_path, "a", newline="") if accelerator.is_main_process else contextlib.nullcontext() as log_handle:
        for step, drawn in zip(bar, loader):
            mean_loss = _train_step(run, step, drawn, history)
            done = step + 1
            if accelerator.is_main_process and (done % config.log_every == 0 or done == end):
                _log_loss(run, done, mean_loss, time.perf_counter() - began, log_handle)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            if val_items and done % config.val_every == 0:
                scores = _validate(run, done, val_items)
                bar.set_postfix(loss=f"{mean_loss:.4f}", val_psnr=f"{scores['val_psnr']:.2f}")
            periodic = done % config.checkpoint_every == 0 or done == end
            if periodic:
                checkpoint = _checkpoint(run, done)
            if done < end and (stopped_by := agreed_stop(stop, accelerator)) is not None:
                if not periodic:  # the same writer as the periodic checkpoints: the resume is bit-exact
                    checkpoint = _checkpoint(run, done)
                break
    bar.close()
    if stopped_by is not None:
        raise _stopped(run, stopped_by, done, checkpoint)
    return _finish(run, end)


def _checkpoint(run: _Training, done: int) -> Path:
    """Writes the run's checkpoint after step ``done`` (:func:`lrdm.training.rundir.save_checkpoint`)."""
    return save_checkpoint(
        run.accelerator, run.network, run.ema, run.optimizer, step=done, run_dir=run.run_dir, config=run.config
    )


def _stopped(run: _Training, signum: int, done: int, checkpoint: Path) -> TrainingStopped:
    """Ends the trackers and prints (the main process) the one line of a run stopped by ``signum`` after step
    ``done`` with its ``checkpoint``; -> the error to raise."""
    if run.config.tensorboard:
        run.accelerator.end_training()
    line = (
        f"stopped by {signal_name(signum)} at step {done} of {run.run_dir}; checkpoint {checkpoint}; "
        "the next run resumes there"
    )
    if run.accelerator.is_main_process:
        print(line, file=sys.stderr, flush=True)
    return TrainingStopped(line)


def _setup(
    config: TrainConfig, run_dir: Path, accelerator: Accelerator, state: dict[str, Any] | None, compile_model: bool
) -> _Training:
    """Seeds the initial weights and builds the dataset, the process, the network, its EMA and the optimizer,
    resumed from ``state`` when given."""
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
        residual_scale=config.residual_scale,
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
    return _Training(
        config=config, run_dir=run_dir, accelerator=accelerator, dataset=dataset, process=process, network=network,
        ema=ema, optimizer=optimizer, start=start, share=share,
    )  # fmt: skip


def _start_logs(run: _Training) -> list[dict[str, Any]]:
    """Readies ``losses.csv`` (and ``validation.csv``) to continue from the run's start step (the main process) and
    returns the validation images (none on the other processes, or without ``val_every``)."""
    if not run.accelerator.is_main_process:
        return []
    start_log(run.run_dir / LOSS_FILE, run.start, LOSS_COLUMNS)
    if not run.config.val_every:
        return []
    start_log(run.run_dir / VALIDATION_FILE, run.start, VALIDATION_COLUMNS)
    test = PairedImageDataset(run.config.index, split="test", crop=None, flip=False, cache=False)
    return [test[i] for i in range(min(run.config.val_images, len(test)))]


def _train_step(run: _Training, step: int, drawn: tuple[torch.Tensor, ...], history: deque[float]) -> float:
    """One optimizer step on the global batch ``drawn`` (its ``grad_accum`` micro-batches); returns its mean loss.

    Raises:
        TrainingDiverged: the loss is non-finite or exploded (:func:`divergence`), or the weights became non-finite.
    """
    config, accelerator, network, optimizer = run.config, run.accelerator, run.network, run.optimizer
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    micro_batches = zip(*(v.to(accelerator.device, non_blocking=True).chunk(config.grad_accum) for v in drawn))
    mean_loss = 0.0
    for micro, tensors in enumerate(micro_batches):
        last_micro = micro == config.grad_accum - 1
        # gradients are averaged across processes once, at the last micro-batch
        with contextlib.nullcontext() if last_micro else accelerator.no_sync(network):
            with accelerator.autocast():
                loss = run.process.loss(network, TrainingExample(*tensors)) / config.grad_accum
            mean_loss += accelerator.reduce(loss.detach(), reduction="mean").item()
            if not math.isfinite(mean_loss):  # before its backward pass; the optimizer has not stepped
                raise _diverged(f"loss became {mean_loss}", step + 1, run.run_dir)
            accelerator.backward(loss)
    if (reason := divergence(mean_loss, history, config.divergence_factor)) is not None:
        raise _diverged(reason, step + 1, run.run_dir)
    history.append(mean_loss)
    accelerator.clip_grad_norm_(network.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if not weights_finite(network):
        raise _diverged("non-finite weights appeared", step + 1, run.run_dir)
    run.ema.update()
    return mean_loss


def _log_loss(run: _Training, done: int, mean_loss: float, elapsed: float, log_handle: TextIO) -> None:
    """Appends step ``done``'s loss to ``losses.csv`` (open as ``log_handle``), the log and TensorBoard."""
    csv.writer(log_handle).writerow([done, f"{mean_loss:.6g}", f"{elapsed:.3f}"])
    logger.info("%s: %s", run.run_dir, progress_line(done, run.config.steps, mean_loss, done - run.start, elapsed))
    if run.config.tensorboard:
        run.accelerator.log({"loss": mean_loss}, step=done)
    log_handle.flush()


def _validate(run: _Training, done: int, val_items: list[dict[str, Any]]) -> dict[str, float]:
    """Scores the EMA model on ``val_items`` after step ``done`` into ``validation.csv`` (and TensorBoard)."""
    scores = validation_scores(run.ema.ema_model, run.process, val_items, run.config.val_steps, run.config.seed)
    with open(run.run_dir / VALIDATION_FILE, "a", newline="") as handle:
        csv.writer(handle).writerow([done, *(f"{scores[k]:.6g}" for k in VALIDATION_COLUMNS[1:])])
    if run.config.tensorboard:
        run.accelerator.log(scores, step=done)
    return scores


def _finish(run: _Training, end: int) -> Path:
    """Ends the trackers and, when the run reached ``steps``, writes ``model.pt`` (the EMA weights); -> its path."""
    if run.config.tensorboard:
        run.accelerator.end_training()
    model_path = run.run_dir / MODEL_FILE
    if end == run.config.steps and run.accelerator.is_main_process:
        save_torch({"config": run.config.to_dict(), "ema": run.ema.ema_model.state_dict(), "step": end}, model_path)
    run.accelerator.wait_for_everyone()
    return model_path
