import json

from lrdm.files import write_text
from lrdm.hub import hub_download
from lrdm.workflow import log_to_file, official_hub_file

log_to_file(snakemake.log)  # noqa: F821
file = official_hub_file(snakemake.config, snakemake.wildcards.dataset)  # noqa: F821
download = hub_download(file)
write_text(snakemake.output.record, json.dumps(download.record(), indent=1) + "\n")  # noqa: F821
print(f"{file.describe()} -> {download.path} (sha256 {download.sha256}, {download.size} bytes)")
