# Paths shared by the rule files; the logic behind them lives in lrdm/workflow.py.


def dataset_index(wildcards):
    return W.dataset_index_path(config, wildcards.dataset)


def table_files(name):
    return [f"{RESULTS}/tables/{name}.{ext}" for ext in ("csv", "md", "tex")]


def figure_files(name):
    return [f"{RESULTS}/figures/{name}.{ext}" for ext in ("png", "pdf")]


def target_outputs(target):
    """Files that make up one paper artefact (the inputs of its target rule)."""
    if target == "spectrum":
        spec = config["targets"]["spectrum"]
        return [
            path
            for dataset in spec["datasets"]
            for path in [f"{RESULTS}/spectrum/{dataset}/summary.parquet"]
            + figure_files(f"spectrum/{dataset}_fig2")
            + figure_files(f"spectrum/{dataset}_fig3")
        ]
    if target == "rank_schedules":
        return figure_files("rank_schedules")
    if target == "rank_sweep":
        return table_files("rank_sweep") + figure_files("rank_sweep") + figure_files("rank_grid")
    if target == "steps":
        return table_files("steps") + figure_files("steps")
    if target == "main_table":
        datasets = config["targets"]["main_table"]["datasets"]
        return table_files("main_table") + [p for d in datasets for p in figure_files(f"restoration/{d}")]
    return table_files(target)


def spectrum_summary_if_auto(wildcards):
    if config.get("max_rank") == "auto":
        return [f"{RESULTS}/spectrum/{wildcards.dataset}/summary.parquet"]
    return []


def placed_official_input(wildcards):
    """The official checkpoint of ``wildcards.dataset`` once it is placed (rule import_official), else none."""
    path = W.official_weights(config)[wildcards.dataset]["file"]
    return [path] if os.path.isfile(path) else []
