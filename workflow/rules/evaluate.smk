# Sampling + scoring per (run, steps): one Parquet row per test image.


rule evaluate:
    input:
        model=f"{RESULTS}/runs/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}/model.pt",
        index=dataset_index,
    output:
        scores=f"{RESULTS}/scores/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}/steps{{steps}}.parquet",
    params:
        protocol=lambda wildcards: config["datasets"][wildcards.dataset]["protocol"],
        eta=config["sampling"].get("eta", 0.0),
        resize=lambda wildcards: config["datasets"][wildcards.dataset].get("eval_resize"),
    threads: config.get("train_threads", 1)
    conda:
        "../envs/lrdm.yaml"
    log:
        "logs/evaluate/{dataset}/{process}/{objective}/{rank_spec}/seed{seed}/steps{steps}.log",
    script:
        "../scripts/evaluate.py"
