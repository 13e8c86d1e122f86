from pathlib import Path

from lrdm.results import render, tables
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
name = snakemake.wildcards.name  # noqa: F821
scores = tables.read_scores(snakemake.input.scores)  # noqa: F821
config = snakemake.config  # noqa: F821
frame, caption = tables.build_target_table(name, scores, config["targets"][name], config["sampling"]["steps"])
for path in render.write_table(frame, Path(snakemake.output.csv).with_suffix(""), caption):  # noqa: F821
    print(path)
