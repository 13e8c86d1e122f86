from pathlib import Path

from lrdm.results.plots import plot_losses
from lrdm.training.trainer import LOSS_FILE
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
run = Path(snakemake.input.model).parent  # noqa: F821
title = "/".join(run.parts[-5:])
print(plot_losses(run / LOSS_FILE, Path(snakemake.output.png).with_suffix(""), title))  # noqa: F821
