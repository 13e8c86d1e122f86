"""Starting one training run on the GPUs its job was given (top-level config key ``train_gpus``, the train rule's
``gpu`` resource): in this process on one GPU, else one process per GPU (``accelerate launch --multi_gpu``), or
on a machine without CUDA as many CPU processes (torchrun, gloo); :mod:`lrdm.training.trainer` splits each
global batch between them."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lrdm.config import TrainConfig, save_config
from lrdm.errors import STOPPED_EXIT, ConfigError, TrainingStopped
from lrdm.training.stopping import signal_name, stop_on_signals
from lrdm.training.trainer import TrainOptions, train

GPU_ENVIRONMENT = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")
"""Variables a training job logs (``gpu environment: {...}``) so a log shows which GPUs it was given."""




def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for the rendezvous of one multi-process run)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def launch_command(
    config_path: str,
    run_dir: str,
    num_processes: int,
    *,
    cpu: bool = False,
    port: int | None = None,
    python: str | None = None,
    options: TrainOptions | None = None,
) -> list[str]:
    """Command that trains one run on ``num_processes`` processes of this machine.

    GPUs: ``accelerate launch --multi_gpu`` (one process per visible GPU, NCCL).  ``cpu``: torchrun
    (``torch.distributed.run``; processes on CPU, gloo), because ``accelerate launch --cpu`` starts several
    CPU processes only through MPI.  Either way every process runs ``lrdm train --config --run-dir`` on the
    same config; ``lrdm.training.trainer`` splits each global batch between them.  ``options``
    (:class:`~lrdm.training.trainer.TrainOptions`) become the command's options, for every process.
    """
    options = options or TrainOptions()
    python = python or sys.executable
    port = port or free_port()
    if cpu:
        launcher = [python, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(num_processes)]
        launcher += ["--master_addr", "127.0.0.1", "--master_port", str(port), "-m"]
    else:
        launcher = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes)]
        # launcher defaults only; the run's own mixed_precision (lrdm.training.trainer) is passed to
        # Accelerator explicitly
        launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        launcher += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "-m"]
    command = ["lrdm.cli", "train", "--config", str(config_path), "--run-dir", str(run_dir)]
    command += ["--data-workers", str(options.data_workers), *(["--compile"] if options.compile_model else [])]
    command += ["--restart-on-change"] if options.restart_on_change else []
    command += ["--resume-from", str(options.resume_from)] if options.resume_from is not None else []
    return [*launcher, *command]


def gpu_environment() -> dict[str, str | None]:
    """The GPU-related environment of this process (see :data:`GPU_ENVIRONMENT`)."""
    return {name: os.environ.get(name) for name in GPU_ENVIRONMENT}


def train_run(
    config: TrainConfig,
    run_dir: str | Path,
    gpus: int,
    *,
    threads: int = 1,
    options: TrainOptions | None = None,
) -> None:
    """Trains ``config`` into ``run_dir`` on ``gpus`` GPUs with ``threads`` CPU threads in all.

    One GPU: :func:`lrdm.training.trainer.train` in this process.  More: writes the resolved config to a
    temporary file and runs :func:`launch_command` (GPUs, or CPU processes when the run's device is ``cpu`` or
    CUDA is missing); a job that sees fewer GPUs than ``gpus`` raises ``ValueError`` naming ``train_gpus``.
    ``options``: as in :func:`lrdm.training.trainer.train`.

    A stop signal (:mod:`lrdm.training.stopping`) raises :class:`TrainingStopped` once the run checkpointed: in this
    process by :func:`~lrdm.training.trainer.train`; with several processes, this one only waits for them (they get
    the signal as it does: Ctrl-C reaches the foreground process group, SLURM signals every process of the job step,
    and the launcher passes it on) and reports their stop.
    """
    if gpus == 1:
        torch.set_num_threads(threads)
        print(train(config, run_dir, options, progress=False))
        return
    cpu = config.device == "cpu" or not torch.cuda.is_available()
    if not cpu and torch.cuda.device_count() < gpus:
        raise ConfigError(
            f"this run asks for {gpus} GPUs (config key train_gpus, the train rule's gpu resource) but the job "
            f"sees {torch.cuda.device_count()} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})",
            "train_gpus",
        )
    if cpu:
        print(f"no CUDA device: training on {gpus} CPU processes (gloo)")
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // gpus))}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "run.yaml"
        save_config(config, config_path)
        command = launch_command(str(config_path), str(run_dir), gpus, cpu=cpu, port=free_port(), options=options)
        print("launch:", shlex.join(command), flush=True)
        with stop_on_signals() as stop:  # waits for the processes, which checkpoint and stop on the same signal
            done = subprocess.run(command, stdout=sys.stdout, stderr=subprocess.STDOUT, env=env)
    if done.returncode == 0:
        return
    if stop.signum is not None or done.returncode == STOPPED_EXIT:
        how = f"by {signal_name(stop.signum)}" if stop.signum is not None else "by a signal"
        raise TrainingStopped(
            f"the {gpus} processes of {run_dir} stopped {how} (exit status {done.returncode}); their checkpoint "
            "and line are above; the next run resumes there"
        )
    raise subprocess.CalledProcessError(done.returncode, command)
