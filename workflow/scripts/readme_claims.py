from pathlib import Path

import pandas as pd

from lrdm.results import readme
from lrdm.results.render import to_markdown
from lrdm.results.scores import read_scores
from lrdm.targets import CLAIMS
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
folder = Path(outputs.claims).parent
documents = [folder, Path(params.repo) / "README.md", Path(params.repo) / "docs"]  # where the fragments go
info = readme.provenance(params.configfiles, params.repo, ignore=documents)
footer = readme.provenance_line(info, "readme_claims")
claims = pd.read_csv(inputs.table)
scores = read_scores(inputs.scores)
tables_md = {
    CLAIMS: readme.claims_fragment(claims),
    "claims_seeds": to_markdown(readme.claims_seeds_frame(scores, params.spec, params.steps)),
    "claims_timing": to_markdown(readme.benchmark_frame(params.benchmarks)),
}
for path in readme.write_fragments(tables_md, folder, footer) + readme.write_fragments(
    {"claims_verdicts": readme.verdicts_text(claims)}, folder
):
    print(path)
