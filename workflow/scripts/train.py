# One training run (lrdm.training.launch.train_run): in this job's process on one GPU, else one process per GPU
# of the rule's `gpu` resource (config key `train_gpus`), each global batch split between them. Stopped by a signal
# (SLURM's --signal ahead of the time limit, preemption), it checkpoints and exits with STOPPED_EXIT: the job fails,
# Snakemake's `retries` resubmit it (profiles/slurm) and the run resumes there.
import json
import sys
from pathlib import Path

from lrdm.errors import STOPPED_EXIT, TrainingStopped
from lrdm.targets import Run
from lrdm.training.launch import gpu_environment, train_run
from lrdm.training.trainer import TrainOptions
from lrdm.workflow import log_to_file, run_config, run_max_rank, train_options

log_to_file(snakemake.log)
print(f"gpu environment: {json.dumps(gpu_environment())}")
config = run_config(
    snakemake.config,
    Run.from_wildcards(snakemake.wildcards),
    index=snakemake.input.index,
    max_rank=run_max_rank(snakemake.config, snakemake.input.spectrum),
)
try:
    train_run(
        config,
        Path(snakemake.output.model).parent,
        int(getattr(snakemake.resources, "gpu", 1)),
        threads=snakemake.threads,
        # restart_on_change: the run's params changed, so Snakemake reruns the job
        options=TrainOptions(**train_options(snakemake.config), restart_on_change=True),
    )
except TrainingStopped as stopped:  # its line is in the log; the console (the SLURM job's output) gets it too
    print(stopped, file=sys.__stderr__, flush=True)
    sys.exit(STOPPED_EXIT)
