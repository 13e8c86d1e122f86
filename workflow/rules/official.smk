# The authors' weights (config key official_weights), placed by hand or downloaded from the Hugging Face Hub
# (lrdm.hub, into the Hugging Face cache): each is imported into a run directory (lrdm.training.official_checkpoint) and
# evaluated by the evaluate rule's own script and settings, for the main table's "RDDM/LRDM, official weights
# (evaluated here)" rows. A placed file is an input only once it is there, so a dry run plans the import either
# way; a missing file fails the job with the manual-download message.

OFFICIAL = P.official_run("{dataset}")  # the imported run's folder below runs/ and scores/


rule download_official:
    output:
        record=W.official_record_path(RESOURCES, "{dataset}"),
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
        model=P.model_path(RESULTS, OFFICIAL),
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
        model=rules.import_official.output.model,
        index=dataset_index,
    output:
        scores=P.score_path(RESULTS, OFFICIAL, "{steps}"),
        protocols=P.protocols_path(RESULTS, OFFICIAL, "{steps}"),
    log:
        P.evaluate_log_path(LOGS, OFFICIAL, "{steps}"),
    benchmark:
        P.evaluate_benchmark_path(RESULTS, OFFICIAL, "{steps}")
