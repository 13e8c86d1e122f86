# Datasets: the embedded synthetic sets (scikit-image photographs) and, for config/paper.yaml, the
# registry of real benchmarks.


rule prepare_dataset:
    output:
        index=f"{RESOURCES}/data/{{dataset}}/index.parquet",
    params:
        spec=lambda wildcards: W.dataset_params(config, wildcards.dataset),  # canonical: reordering reruns nothing
    conda:
        "../envs/lrdm.yaml"
    log:
        "logs/data/{dataset}.log",
    script:
        "../scripts/make_data.py"
