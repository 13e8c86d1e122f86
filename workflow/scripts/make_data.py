import json
from pathlib import Path

from lrdm.data.index import read_index
from lrdm.data.prepare import prepare, prepare_folders
from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)
spec = json.loads(snakemake.params.spec)  # canonical JSON (lrdm.workflow.canonical)
name = snakemake.wildcards.dataset
out = Path(snakemake.output.index)
if spec["source"] == "registry":
    written = prepare(
        name,
        snakemake.config["resources"],
        progress=False,
        expected_pairs=spec.get("expected_pairs"),
        downloads=snakemake.config["downloads"],
    )
    if written.resolve() != out.resolve():
        raise ValueError(f"dataset {name!r}: the registry wrote {written}, the workflow expects {out}")
elif spec["source"] == "folders":
    written = prepare_folders(name, spec, out.parent)
    print(f"{len(read_index(written))} pairs indexed from {spec['folders']}")
else:
    sizes = {key: spec[key] for key in ("size", "patches_per_image", "test_patches_per_image") if key in spec}
    frame = make_synthetic_dataset(out.parent, spec["task"], SynthesisOptions(seed=0, **sizes))
    print(f"{len(frame)} pairs written")
