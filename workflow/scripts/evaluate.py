import torch

from lrdm.evaluation.evaluate import EvaluationOptions, evaluate_protocols
from lrdm.evaluation.inference import Sampling
from lrdm.workflow import log_to_file

log_to_file(snakemake.log)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params = snakemake.params  # noqa: F821
options = EvaluationOptions(
    Sampling(int(snakemake.wildcards.steps), eta=params.eta, sampler=params.sampler),  # noqa: F821
    protocol=params.protocol,
    resize=params.resize,
    batch=params.batch,
    limit=params.max_test_images,
    tile=params.tile,
    progress=True,
)
frame, protocols = evaluate_protocols(snakemake.input.model, snakemake.input.index, options, params.scorings)  # noqa: F821
frame.to_parquet(snakemake.output.scores, index=False)  # noqa: F821
protocols.to_parquet(snakemake.output.protocols, index=False)  # noqa: F821
print(frame[["psnr", "ssim", "input_psnr", "input_ssim"]].mean().to_string())
