# Paths shared by the rule files; the logic behind them lives in lrdm/workflow.py and lrdm/targets.py.


def dataset_index(wildcards):
    return W.dataset_index_path(config, wildcards.dataset)


def target_outputs(target):
    """Files that make up one paper artefact (the inputs of its target rule): its entry in lrdm/targets.py."""
    return T.TARGETS[target].outputs(RESULTS, config["targets"][target])


def spectrum_summary_if_auto(wildcards):
    if config.get("max_rank") == "auto":
        return [f"{RESULTS}/spectrum/{wildcards.dataset}/summary.parquet"]
    return []


def placed_official_input(wildcards):
    """The official checkpoint of ``wildcards.dataset`` once it is placed (rule import_official), else none."""
    path = W.official_weights(config)[wildcards.dataset]["file"]
    return [path] if os.path.isfile(path) else []
