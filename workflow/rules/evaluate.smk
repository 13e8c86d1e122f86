# Sampling + scoring per (run, steps): one Parquet row per test image, and the same restored images under
# the further protocols of the `protocols` target (an empty file when it asks for none). Evaluation runs on a GPU
# whenever training does (the same `gpu` resource as train.smk, one GPU), restoring `eval_batch` test images of
# one size at a time, and images larger than the tile policy's side in tiles (`eval_tile`), as `lrdm restore` does.

EVAL_GPUS = W.eval_gpus(config)


rule evaluate:
    input:
        model=rules.train.output.model,
        index=dataset_index,
    output:
        scores=P.score_path(RESULTS, RUN, "{steps}"),
        protocols=P.protocols_path(RESULTS, RUN, "{steps}"),
    params:
        protocol=lambda wildcards: config["datasets"][wildcards.dataset]["protocol"],
        eta=config["sampling"]["eta"],
        sampler=config["sampling"]["sampler"],
        resize=lambda wildcards: config["datasets"][wildcards.dataset].get("eval_resize"),
        scorings=lambda wildcards: W.protocol_scorings(config, wildcards.dataset),
        batch=W.eval_batch(config),
        tile=W.eval_tile(config),
        max_test_images=lambda wildcards: config["datasets"][wildcards.dataset].get("max_test_images"),
    threads: config.get("train_threads", 1)
    resources:
        gpu=EVAL_GPUS,
    conda:
        "../envs/lrdm.yaml"
    log:
        P.evaluate_log_path(LOGS, RUN, "{steps}"),
    benchmark:
        P.evaluate_benchmark_path(RESULTS, RUN, "{steps}")
    script:
        "../scripts/evaluate.py"
