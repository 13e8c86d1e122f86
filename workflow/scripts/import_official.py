from pathlib import Path

from lrdm.errors import ManualDownloadRequired
from lrdm.workflow import log_to_file, official_overrides, placed_official_file

dataset = snakemake.wildcards.dataset  # noqa: F821
# checked before the log takes stderr: a missing file's message (what, from where, where to) shows in the
# terminal, and is written to the log that Snakemake points at
try:
    checkpoint = placed_official_file(snakemake.config, dataset)  # noqa: F821
except ManualDownloadRequired as err:
    Path(snakemake.log[0]).write_text(f"{err}\n")  # noqa: F821
    raise
log_to_file(snakemake.log)  # noqa: F821

from lrdm.training.official import import_checkpoint  # noqa: E402

run_dir = Path(snakemake.output.model).parent  # noqa: F821
model = import_checkpoint(checkpoint, run_dir, official_overrides(snakemake.config, dataset))  # noqa: F821
print(f"{checkpoint} imported as {model}")
