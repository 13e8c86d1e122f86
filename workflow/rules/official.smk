# The authors' weights (config key official_weights), placed by hand or downloaded from the Hugging Face Hub
# (lrdm.hub, into the Hugging Face cache): each is imported into a run directory (lrdm.training.official_checkpoint) and
# evaluated by the evaluate rule's own script and settings, for the main table's "RDDM/LRDM, official weights
# (evaluated here)" rows. A placed file is an input only once it is there, so a dry run plans the import either
# way; a missing file fails the job with the manual-download message.


rule download_official:
    output:
        record=f"{RESOURCES}/official/{{dataset}}/{W.DOWNLOAD_RECORD}",
    params:
        entry=lambda wildcards: W.official_params(config, wildcards.dataset),  # an edited entry downloads again
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/official/{{dataset}}/download.log",
    script:
        "../scripts/download_official.py"


rule import_official:
    input:
        checkpoint=official_input,
    output:
        model=f"{RESULTS}/runs/{{dataset}}/{V.OFFICIAL_RUN}/model.pt",
    params:
        entry=lambda wildcards: W.official_params(config, wildcards.dataset),  # an edited entry reimports
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/official/{{dataset}}/import.log",
    script:
        "../scripts/import_official.py"


use rule evaluate as evaluate_official with:
    input:
        model=f"{RESULTS}/runs/{{dataset}}/{V.OFFICIAL_RUN}/model.pt",
        index=dataset_index,
    output:
        scores=f"{RESULTS}/scores/{{dataset}}/{V.OFFICIAL_RUN}/steps{{steps}}.parquet",
        protocols=f"{RESULTS}/scores/{{dataset}}/{V.OFFICIAL_RUN}/steps{{steps}}.protocols.parquet",
    log:
        f"{LOGS}/evaluate/{{dataset}}/official/steps{{steps}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{dataset}}/{V.OFFICIAL_RUN}/steps{{steps}}.tsv"
