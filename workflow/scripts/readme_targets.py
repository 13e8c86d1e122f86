from lrdm.files import write_text
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
write_text(snakemake.output.targets, snakemake.params.table)  # noqa: F821
print(snakemake.output.targets)  # noqa: F821
