# Datasets: the embedded synthetic sets (scikit-image photographs), for config/paper.yaml the registry of real
# benchmarks, and your own paired folders (`source: folders`, whose images are the rule's inputs).


rule prepare_dataset:
    input:
        images=lambda wildcards: W.dataset_files(config, wildcards.dataset),
    output:
        index=P.dataset_index_path(RESOURCES, "{dataset}"),
    params:
        spec=lambda wildcards: W.dataset_params(config, wildcards.dataset),  # canonical: reordering reruns nothing
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/data/{{dataset}}.log",
    script:
        "../scripts/make_data.py"
