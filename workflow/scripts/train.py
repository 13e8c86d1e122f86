import torch

from lrdm.train import train
from lrdm.workflow import log_to_file, run_config, run_max_rank

log_to_file(snakemake.log)  # noqa: F821
w = snakemake.wildcards  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
config = run_config(
    snakemake.config,
    w.dataset,
    w.process,
    w.objective,
    w.rank_spec,
    int(w.seed),  # noqa: F821
    index=snakemake.input.index,  # noqa: F821
    max_rank=run_max_rank(snakemake.config, snakemake.input.spectrum),  # noqa: F821
)
print(train(config, snakemake.output.model.rsplit("/", 1)[0], progress=False))  # noqa: F821
