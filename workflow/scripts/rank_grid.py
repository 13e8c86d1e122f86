from pathlib import Path

import torch

from lrdm.evaluation.evaluate import restore_examples
from lrdm.results.plots import plot_rank_grid
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
images, psnrs = restore_examples(
    dict(zip(snakemake.params.labels, snakemake.input.models)),
    snakemake.input.index,  # noqa: F821
    steps=snakemake.params.steps,  # noqa: F821
)
print(plot_rank_grid(images, Path(snakemake.output.png).with_suffix(""), psnrs))  # noqa: F821
