# One training run. One GPU (the rule's `gpu` resource, from config key `train_gpus`): trains in this process.
# More: writes the resolved run config and starts one process per GPU (`accelerate launch --multi_gpu -m
# lrdm.cli train`), or on a machine without CUDA as many CPU processes (torchrun, gloo); each global batch is
# split between them (lrdm/training/trainer.py).
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lrdm.config import save_config
from lrdm.training.trainer import train
from lrdm.workflow import (
    free_port,
    gpu_environment,
    launch_command,
    log_to_file,
    run_config,
    run_max_rank,
    train_options,
)

log_to_file(snakemake.log)
print(f"gpu environment: {json.dumps(gpu_environment())}")
w = snakemake.wildcards
config = run_config(
    snakemake.config,
    w.dataset,
    w.process,
    w.objective,
    w.rank_spec,
    int(w.seed),
    index=snakemake.input.index,
    max_rank=run_max_rank(snakemake.config, snakemake.input.spectrum),
)
run_dir = str(Path(snakemake.output.model).parent)
gpus = int(getattr(snakemake.resources, "gpu", 1))
options = {**train_options(snakemake.config), "restart_on_change": True}  # params changed: Snakemake reruns
if gpus == 1:
    torch.set_num_threads(snakemake.threads)
    print(train(config, run_dir, progress=False, **options))
else:
    cpu = config.device == "cpu" or not torch.cuda.is_available()
    if not cpu and torch.cuda.device_count() < gpus:
        raise ValueError(
            f"this run asks for {gpus} GPUs (config key train_gpus, the train rule's gpu resource) but the job "
            f"sees {torch.cuda.device_count()} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})"
        )
    if cpu:
        print(f"no CUDA device: training on {gpus} CPU processes (gloo)")
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, snakemake.threads // gpus))}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "run.yaml"
        save_config(config, config_path)
        command = launch_command(str(config_path), run_dir, gpus, cpu=cpu, port=free_port(), **options)
        print("launch:", shlex.join(command), flush=True)
        subprocess.run(command, stdout=sys.stdout, stderr=subprocess.STDOUT, env=env, check=True)
