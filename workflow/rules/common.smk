# Paths shared by the rule files (file names from lrdm/paths.py, P; targets from lrdm/targets.py, T); the logic
# behind them lives in lrdm/workflow/ (W).

RUN = P.RUN_PATTERN  # a run's folder below runs/ and scores/, its fields as wildcards (lrdm.targets.Run.path)


def dataset_index(wildcards):
    return W.dataset_index_path(config, wildcards.dataset)


def trained_models(runs):
    """The trained model of each of ``runs`` (lrdm.targets.Run): the train rule's output, its wildcards filled in."""
    return expand(rules.train.output.model, zip, **{name: [getattr(run, name) for run in runs] for name in P.RUN_FIELDS})


def target_outputs(target):
    """Files that make up one paper artefact (the inputs of its target rule): its entry in lrdm/targets.py."""
    return T.TARGETS[target].outputs(RESULTS, config["targets"][target])


def spectrum_summary_if_auto(wildcards):
    if config.get("max_rank") == "auto":
        return [P.spectrum_path(RESULTS, wildcards.dataset, T.SPECTRUM_SUMMARY)]
    return []


def official_input(wildcards):
    """What import_official reads: a Hub entry's download record (from download_official), or a placed
    checkpoint once it is there (else none: the job then fails with the manual-download message)."""
    entry = W.official_weights(config)[wildcards.dataset]
    if W.is_hub_entry(entry):
        return [W.official_record_path(RESOURCES, wildcards.dataset)]
    return [entry["file"]] if os.path.isfile(entry["file"]) else []
