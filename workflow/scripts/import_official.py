from pathlib import Path

from lrdm.errors import ManualDownloadRequired
from lrdm.workflow import (
    is_hub_entry,
    log_to_file,
    official_overrides,
    official_weights,
    placed_official_file,
    read_download_record,
)

dataset = snakemake.wildcards.dataset  # noqa: F821
provenance = {}
if is_hub_entry(official_weights(snakemake.config)[dataset]):  # noqa: F821
    log_to_file(snakemake.log)  # noqa: F821
    record = read_download_record(snakemake.input.checkpoint[0])  # noqa: F821
    checkpoint = record["path"]
    provenance = {"official_source": record["source"], "official_commit": record["commit"]}
else:
    # checked before the log takes stderr: a missing file's message (what, from where, where to) shows in the
    # terminal, and is written to the log that Snakemake points at
    try:
        checkpoint = placed_official_file(snakemake.config, dataset)  # noqa: F821
    except ManualDownloadRequired as err:
        Path(snakemake.log[0]).write_text(f"{err}\n")  # noqa: F821
        raise
    log_to_file(snakemake.log)  # noqa: F821

from lrdm.training.official_checkpoint import import_checkpoint  # noqa: E402

run_dir = Path(snakemake.output.model).parent  # noqa: F821
overrides = official_overrides(snakemake.config, dataset)  # noqa: F821
model = import_checkpoint(checkpoint, run_dir, overrides, provenance=provenance)
print(f"{checkpoint} imported as {model}")
