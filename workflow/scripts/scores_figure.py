from pathlib import Path

from lrdm.results import plots, tables
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
scores = tables.read_scores(snakemake.input.scores)  # noqa: F821
stem = Path(snakemake.output.png).with_suffix("")  # noqa: F821
plot = {"rank_sweep": plots.plot_rank_sweep, "steps": plots.plot_steps}[snakemake.wildcards.name]  # noqa: F821
print(plot(scores, stem))
