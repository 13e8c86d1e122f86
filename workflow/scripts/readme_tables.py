from pathlib import Path

from lrdm.results import readme
from lrdm.results.render import to_markdown
from lrdm.results.scores import read_scores
from lrdm.targets import PROTOCOLS
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
folder = Path(outputs.scores).parent
documents = [folder, Path(params.repo) / "README.md", Path(params.repo) / "docs"]  # where the fragments go
info = readme.provenance(params.configfiles, params.repo, ignore=documents)
footer = readme.provenance_line(info)
summary = readme.scores_summary(read_scores(inputs.scores), params.steps)
scores = readme.scores_frame(summary, params.protocols, params.order)
tables_md = {
    "setup": to_markdown(readme.run_setup_frame(Path(m).parent for m in inputs.models)),
    "scores": readme.scores_fragment(scores, readme.scores_caption(summary, params.steps)),
    "timing": to_markdown(readme.benchmark_frame(params.benchmarks)),
}
if inputs.protocols:
    tables_md[PROTOCOLS] = readme.protocols_fragment(read_scores(inputs.protocols))
prose = {
    "gains": readme.gains_text(scores),
    "restorations": readme.image_lines(outputs.restorations),
    "losses": readme.image_lines(outputs.losses),
}
for path in readme.write_fragments(tables_md, folder, footer) + readme.write_fragments(prose, folder):
    print(path)
copies = list(zip(inputs.restorations, outputs.restorations)) + list(zip(inputs.losses, outputs.losses))
for path in readme.copy_files(copies):
    print(path)
