from lrdm.results.spectrum import analyse_residuals
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
curves, summary = analyse_residuals(
    snakemake.input.index, split=snakemake.params.split, dataset=snakemake.wildcards.dataset
)  # noqa: F821
curves.to_parquet(snakemake.output.curves, index=False)  # noqa: F821
summary.to_parquet(snakemake.output.summary, index=False)  # noqa: F821
print(summary[["k90", "k99", "top10_magnitude_ratio"]].describe().to_string())
