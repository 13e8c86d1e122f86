from pathlib import Path

from lrdm.results.scores import read_scores
from lrdm.targets import TARGETS
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
scores = read_scores(snakemake.input.scores)  # noqa: F821
stem = Path(snakemake.output.png).with_suffix("")  # noqa: F821
print(TARGETS[snakemake.wildcards.name].plot(scores, stem))  # noqa: F821
