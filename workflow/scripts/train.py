# One training run (lrdm.training.launch.train_run): in this job's process on one GPU, else one process per GPU
# of the rule's `gpu` resource (config key `train_gpus`), each global batch split between them.
import json
from pathlib import Path

from lrdm.targets import Run
from lrdm.training.launch import gpu_environment, train_run
from lrdm.workflow import log_to_file, run_config, run_max_rank, train_options

log_to_file(snakemake.log)
print(f"gpu environment: {json.dumps(gpu_environment())}")
config = run_config(
    snakemake.config,
    Run.from_wildcards(snakemake.wildcards),
    index=snakemake.input.index,
    max_rank=run_max_rank(snakemake.config, snakemake.input.spectrum),
)
train_run(
    config,
    Path(snakemake.output.model).parent,
    int(getattr(snakemake.resources, "gpu", 1)),
    threads=snakemake.threads,
    **train_options(snakemake.config),
    restart_on_change=True,  # params changed: Snakemake reruns
)
