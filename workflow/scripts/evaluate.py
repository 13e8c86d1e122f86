import torch

from lrdm.evaluation.evaluate import evaluate_protocols
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
frame, protocols = evaluate_protocols(
    snakemake.input.model,
    snakemake.input.index,
    int(snakemake.wildcards.steps),  # noqa: F821
    snakemake.params.scorings,  # noqa: F821
    protocol=snakemake.params.protocol,
    eta=snakemake.params.eta,
    resize=snakemake.params.resize,  # noqa: F821
    batch=snakemake.params.batch,  # noqa: F821
    limit=snakemake.params.max_test_images,  # noqa: F821
    tile=snakemake.params.tile,  # noqa: F821
    progress=True,
)
frame.to_parquet(snakemake.output.scores, index=False)  # noqa: F821
protocols.to_parquet(snakemake.output.protocols, index=False)  # noqa: F821
print(frame[["psnr", "ssim", "input_psnr", "input_ssim"]].mean().to_string())
