from pathlib import Path

import torch

from lrdm.evaluation.evaluate import protocol_label, restore_examples
from lrdm.results.plots import plot_rank_grid
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params = snakemake.params  # noqa: F821
images, psnrs = restore_examples(
    dict(zip(params.labels, snakemake.input.models)),  # noqa: F821
    snakemake.input.index,  # noqa: F821
    steps=params.steps,
    eta=params.eta,  # the sampling of the evaluate rule: the same PSNRs as the score rows
    sampler=params.sampler,
    protocol=params.protocol,  # the rank-sweep table's scoring of this dataset
    resize=params.resize,
    tile=params.tile,  # as the evaluate rule: the same PSNRs as the score rows
)
out = Path(snakemake.output.png).with_suffix("")  # noqa: F821
print(plot_rank_grid(images, out, psnrs, protocol_label(params.protocol, params.resize)))
