"""The columns of a per-image score file (torch-free: the table rules read them)."""

SCORE_KEY_COLUMNS = (
    "dataset",
    "run",
    "process",
    "objective",
    "rank_spec",
    "scheduler",
    "order",
    "rank",
    "steps",
    "eta",
    "seed",
    "image_id",
    "psnr",
    "ssim",
    "input_psnr",
    "input_ssim",
)
"""Columns that identify a score row and hold its metrics: what the tables read (:mod:`lrdm.results.scores`)."""
RESULT_COLUMNS = (*SCORE_KEY_COLUMNS, "sampler", "protocol", "seconds", "max_test_images")
"""Columns of a per-image score file (``sampler``: the sampler of :data:`lrdm.core.samplers.SAMPLERS` that restored
the image, config key ``sampling.sampler``; ``max_test_images``: the limit on the test images evaluated, config key
``datasets.<name>.max_test_images``; missing when all were)."""
