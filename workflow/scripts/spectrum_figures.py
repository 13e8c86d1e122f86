from pathlib import Path

import pandas as pd

from lrdm.data.index import read_index
from lrdm.results.spectrum import plot_residual_grid, plot_spectrum_curves
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
split = snakemake.params.split  # noqa: F821
curves = pd.read_parquet(snakemake.input.curves)  # noqa: F821
print(plot_spectrum_curves(curves, Path(snakemake.output.fig3).with_suffix("")))  # noqa: F821
index = read_index(snakemake.input.index)  # noqa: F821
first = index.loc[index["split"] == split, "image_id"].iloc[0]
print(
    plot_residual_grid(
        snakemake.input.index,
        first,
        snakemake.params.ranks,  # noqa: F821
        Path(snakemake.output.fig2).with_suffix(""),
        split=split,
    )
)  # noqa: F821
