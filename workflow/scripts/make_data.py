from pathlib import Path

from lrdm.data import make_synthetic_dataset
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
spec = snakemake.params.spec  # noqa: F821
if spec["source"] != "synthetic":
    raise ValueError(
        f"dataset {snakemake.wildcards.dataset!r}: source {spec['source']!r} needs the dataset registry "  # noqa: F821
        "(download and preparation of the real benchmarks), which this version does not include yet"
    )
sizes = {key: spec[key] for key in ("size", "patches_per_image", "test_patches_per_image") if key in spec}
frame = make_synthetic_dataset(Path(snakemake.output.index).parent, spec["task"], seed=0, **sizes)  # noqa: F821
print(f"{len(frame)} pairs written")
