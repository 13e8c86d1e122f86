# One training run per (dataset, process, objective, rank_spec, seed). Checkpoints live beside the
# declared output (not declared themselves), so a killed or failed job resumes where it stopped.


def spectrum_summary_if_auto(wildcards):
    if config.get("max_rank") == "auto":
        return [f"{RESULTS}/spectrum/{wildcards.dataset}/summary.parquet"]
    return []


rule train:
    input:
        index=dataset_index,
        spectrum=spectrum_summary_if_auto,
    output:
        model=f"{RESULTS}/runs/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}/model.pt",
    threads: config.get("train_threads", 1)
    log:
        "logs/train/{dataset}/{process}/{objective}/{rank_spec}/seed{seed}.log",
    script:
        "../scripts/train.py"
