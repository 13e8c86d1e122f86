from pathlib import Path

from lrdm.results.plots import plot_loss_comparison
from lrdm.training.rundir import LOSS_FILE
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
dataset = snakemake.wildcards.dataset  # noqa: F821
runs = [Path(model).parent for model in snakemake.input.models]  # noqa: F821
losses = {"/".join(run.parts[-4:]): run / LOSS_FILE for run in runs}  # process/objective/rank_spec/seed
out_stem = Path(snakemake.output.png).with_suffix("")  # noqa: F821
for path in plot_loss_comparison(losses, out_stem, f"{dataset}: training loss of every run"):
    print(path)
