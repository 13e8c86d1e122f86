"""A training run's directory: its files, its lock, a changed config, checkpoints and the trained model.

Files::

    run_dir/.lock                 held (``flock``) by the one trainer of this directory; holds its PID
    run_dir/config.yaml           resolved TrainConfig (a different config is refused, or with
                                  ``restart_on_change`` starts afresh; more ``steps`` alone continue)
    run_dir/checkpoints/step-N.pt model, EMA, optimiser and step (the last ``keep_checkpoints`` kept;
                                  one that does not load is renamed ``step-N.pt.corrupt``); also written
                                  at the step where a signal stopped the run (lrdm.training.stopping)
    run_dir/superseded/<time>/    the files of an earlier config, set aside by a restart
    run_dir/losses.csv            step, loss, seconds (appended; truncated to the checkpoint on resume)
    run_dir/tensorboard/          the same losses as TensorBoard scalars (config key ``tensorboard: true``)
    run_dir/validation.csv        step, val_psnr, val_ssim every ``val_every`` steps (config key; 0: none)
    run_dir/basis.pt              the ``dataset_pca`` basis (config key ``basis``)
    run_dir/model.pt              final EMA weights + config (the output the sampler reads)

A writer killed mid-write (``kill -9``, a lost node) leaves its temporary file (``.step-N.pt.<pid>.<uuid>.tmp``,
:mod:`lrdm.files`); the next trainer of the directory removes them once it holds the lock, and logs the bytes freed.

The training loop itself is :mod:`lrdm.training.trainer`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from ema_pytorch import EMA

from lrdm.config import TrainConfig, load_config, save_config
from lrdm.core.lowrank import PCABasis
from lrdm.core.nets import TermNetwork
from lrdm.core.process import build_network, build_process
from lrdm.errors import CheckpointError, ConfigError
from lrdm.files import remove_temporaries, save_torch, write_text
from lrdm.paths import MODEL_FILE as MODEL_FILE  # the run directory's model file (lrdm.paths owns the name)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)\.pt$")
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
LOCK_FILE = ".lock"
SUPERSEDED_DIR = "superseded"  # files of an earlier config, set aside by a restart
CORRUPT_SUFFIX = ".corrupt"  # appended to a checkpoint that does not load
CONTINUABLE_KEYS = ("steps",)  # keys whose increase continues a run instead of restarting it
CHECKPOINT_KEYS = ("step", "model", "ema", "optimizer")
MODEL_KEYS = ("config", "ema")
CHANNELS_LAST_DEVICES = ("cuda",)
"""Devices on which a loaded model runs in channels_last (tensor-core convolutions; on the CPU it does not pay)."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``run_dir/checkpoints/step-N.pt`` of ``step`` (zero-padded, so the names sort by step)."""
    return run_dir / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def remove_stale_temporaries(run_dir: Path) -> tuple[int, int]:
    """Removes the temporary files that killed writers left in ``run_dir`` and its ``checkpoints/`` (the caller
    holds the run's lock, which every writer of these folders holds), logging how many bytes that freed:
    ``-> (files, bytes)``."""
    counts = [remove_temporaries(folder) for folder in (run_dir, run_dir / CHECKPOINT_DIR)]
    files, freed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if files:
        logger.warning("%s: removed %d stale temporary file(s) of killed writers, %d bytes freed (%.1f MB)",
                       run_dir, files, freed, freed / 1e6)  # fmt: skip
    return files, freed


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoints/step-N.pt`` of ``run_dir``, oldest first (none: empty)."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m[1]), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


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
            "use a new run directory, delete the old one, or restart it (lrdm train --restart-on-change)",
            differing[0],
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


def open_run_dir(
    run_dir: Path,
    config: TrainConfig,
    accelerator: Accelerator,
    resume_from: str | Path | None,
    restart_on_change: bool,
) -> dict[str, Any] | None:
    """Readies ``run_dir`` for ``config`` (the main process, which holds its lock: reconciles a changed config,
    saves the config) and returns the state every process resumes from (None: start at step 0)."""
    state = None
    if accelerator.is_main_process:
        remove_stale_temporaries(run_dir)
        reconcile_run_dir(run_dir, config, restart_on_change)
        (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        save_config(config, run_dir / CONFIG_FILE)
        state = load_resume_state(run_dir, resume_from, set_aside_corrupt=True)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        state = load_resume_state(run_dir, resume_from, set_aside_corrupt=False)
    return state


def start_log(path: Path, last_step: int, columns: tuple[str, ...]) -> None:
    """Readies the CSV log ``path`` for appending from ``last_step``: drops its rows after that step (a resumed
    run rewrites them), and writes the header of ``columns`` when the file does not exist."""
    truncate_log(path, last_step, columns)
    if not path.exists():
        write_text(path, ",".join(columns) + "\n")


def truncate_log(path: Path, last_step: int, columns: tuple[str, ...] = LOSS_COLUMNS) -> None:
    """Keeps the rows of the CSV log ``path`` up to ``last_step`` (nothing to do when it does not exist)."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= last_step]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def save_checkpoint(
    accelerator: Accelerator, network, ema: EMA, optimizer, step: int, run_dir: Path, config: TrainConfig
) -> Path:
    """Writes ``checkpoints/step-N.pt`` of ``step`` (the main process, after every process got there) and
    deletes all but the last ``keep_checkpoints``; -> its path (on every process)."""
    path = checkpoint_path(run_dir, step)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return path
    state = {
        "step": step,
        "model": accelerator.unwrap_model(network).state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    save_torch(state, path)
    for _, old in list_checkpoints(run_dir)[: -config.keep_checkpoints]:
        old.unlink()
    return path


EMA_PREFIX = "ema_model."
"""Prefix of the EMA network's weights in a checkpoint's ``ema`` state (``ema_pytorch.EMA.state_dict``)."""


def model_from_checkpoint(checkpoint: str | Path, config: TrainConfig, model_path: str | Path) -> Path:
    """Writes the EMA network of a periodic checkpoint as a model file (``model.pt``'s keys, for
    :func:`load_model`), e.g. to score a run part-way through its training; -> ``model_path``."""
    state = load_checkpoint(Path(checkpoint), ("ema", "step"))
    weights = {key[len(EMA_PREFIX) :]: value for key, value in state["ema"].items() if key.startswith(EMA_PREFIX)}
    save_torch({"config": config.to_dict(), "ema": weights, "step": state["step"]}, Path(model_path))
    return Path(model_path)


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
