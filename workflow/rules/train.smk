# One training run per (dataset, process, objective, rank_spec, seed). Checkpoints live beside the
# declared output (not declared themselves), so a killed or failed job resumes where it stopped.
# A run uses `train_gpus` GPUs (config key, default 1): the `gpu` resource below (what SLURM allocates); the
# script starts one process per GPU of that resource (`accelerate launch`), sharing each global batch (docs/cluster.md);
# W.check_config (Snakefile) checks that train_gpus divides every run's batch_size.

TRAIN_GPUS = W.train_gpus(config)


rule train:
    input:
        index=dataset_index,
        spectrum=spectrum_summary_if_auto,
    output:
        model=P.model_path(RESULTS, RUN),
    params:
        # the resolved run config, canonical: editing it reruns exactly this run (which restarts afresh)
        run=lambda wildcards: W.train_params(config, T.Run.from_wildcards(wildcards)),
    threads: config.get("train_threads", 1)
    resources:
        gpu=TRAIN_GPUS,
    conda:
        "../envs/lrdm.yaml"
    log:
        P.train_log_path(LOGS, RUN),
    benchmark:  # wall time and peak RSS of the job (docs/results.md)
        P.train_benchmark_path(RESULTS, RUN)
    script:
        "../scripts/train.py"
