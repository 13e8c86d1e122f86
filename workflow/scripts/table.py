from pathlib import Path

from lrdm.results import render
from lrdm.results.scores import read_scores
from lrdm.targets import build_target_table
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
name = snakemake.wildcards.name  # noqa: F821
scores = read_scores(snakemake.input.scores)  # noqa: F821
config = snakemake.config  # noqa: F821
frame, caption = build_target_table(name, scores, config["targets"][name], config["sampling"]["steps"])
for path in render.write_table(frame, Path(snakemake.output.csv).with_suffix(""), caption):  # noqa: F821
    print(path)
