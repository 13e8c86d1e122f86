# The authors' weights (config key official_weights), placed by hand: each is imported into a run directory
# (lrdm.training.official) and evaluated by the evaluate rule's own script and settings, for the main
# table's "RDDM, official weights (evaluated here)" rows. The import has an input only once the file is
# placed, so a dry run plans it either way; a missing file fails the job with the manual-download message.


rule import_official:
    input:
        checkpoint=placed_official_input,
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
