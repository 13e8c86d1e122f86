import json
from pathlib import Path

from lrdm.results import plots
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
spec = json.loads(snakemake.params.spec)  # noqa: F821
print(
    plots.plot_rank_schedules(
        spec.get("T", 1000),
        spec.get("max_rank", 256),
        spec.get("orders", [1, 2, 3, 4, 5]),
        Path(snakemake.output.png).with_suffix(""),
    )
)  # noqa: F821
