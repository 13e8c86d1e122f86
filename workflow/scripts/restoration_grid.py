from pathlib import Path

import torch

from lrdm.data.paired import PairedImageDataset
from lrdm.evaluation.evaluate import EvaluationOptions, protocol_label, restore_rows
from lrdm.evaluation.inference import Sampling
from lrdm.results.plots import plot_restoration_grid
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params = snakemake.params  # noqa: F821
test_images = len(PairedImageDataset(snakemake.input.index, split="test", crop=None, flip=False, cache=False))  # noqa: F821
options = EvaluationOptions(
    Sampling(params.steps, eta=params.eta, sampler=params.sampler),  # the evaluate rule's sampling
    protocol=params.protocol,
    resize=params.resize,  # the main table's scoring: the same transform, so the same PSNRs as its score rows
    tile=params.tile,  # as the evaluate rule: the same PSNRs as the score rows
)
rows, psnrs = restore_rows(
    dict(zip(params.labels, snakemake.input.models)),  # noqa: F821
    snakemake.input.index,  # noqa: F821
    range(min(params.images, test_images)),  # the first images, all of a smaller test split
    options,
)
out = Path(snakemake.output.png).with_suffix("")  # noqa: F821
scoring = protocol_label(params.protocol, params.resize)
print(plot_restoration_grid(rows, psnrs, snakemake.wildcards.dataset, out, scoring))  # noqa: F821
