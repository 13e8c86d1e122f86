# Tables (CSV + Markdown + LaTeX) and figures (PNG + PDF), regenerated from the Parquet scores only,
# and one target rule per paper artefact.

REPORT_CATEGORY = {
    "rank_sweep": "Fig. 6 and 7: fixed-rank sweep",
    "schedulers": "Tab. 3: rank schedulers",
    "orders": "Tab. 4: polynomial orders",
    "steps": "Fig. 8: sampling steps",
    "feasibility": "Tab. 5: low rank in RDDM and ResShift",
    "main_table": "Tab. 1 and 2: main comparison",
    "protocols": "How each paper measured: the main-table runs under each protocol",
    "sampling_methods": "RDDM Tab. 1: sampling methods",
    "claims": "The papers' claims on several seeds",
}


rule table:
    input:
        scores=lambda wildcards: W.target_score_paths(config, wildcards.name),
    output:
        csv=report(f"{RESULTS}/tables/{{name}}.csv", caption="../report/table.rst", category=lambda wildcards: REPORT_CATEGORY[wildcards.name]),
        md=f"{RESULTS}/tables/{{name}}.md",
        tex=f"{RESULTS}/tables/{{name}}.tex",
    params:
        spec=lambda wildcards: W.target_params(config, wildcards.name),  # a changed spec reruns the table
    wildcard_constraints:
        name="|".join(W.SCORE_TARGETS),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/tables/{{name}}.log",
    script:
        "../scripts/table.py"


rule rank_schedules_figure:
    output:
        png=report(f"{RESULTS}/figures/rank_schedules.png", caption="../report/rank_schedules.rst", category="Fig. 4: rank schedulers"),
        pdf=f"{RESULTS}/figures/rank_schedules.pdf",
    params:
        spec=W.canonical(config["targets"].get("rank_schedules", {})),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/rank_schedules.log",
    script:
        "../scripts/rank_schedules.py"


rule scores_figure:
    input:
        scores=lambda wildcards: W.target_score_paths(config, wildcards.name),
    output:
        png=report(f"{RESULTS}/figures/{{name}}.png", caption="../report/scores_figure.rst", category=lambda wildcards: REPORT_CATEGORY[wildcards.name]),
        pdf=f"{RESULTS}/figures/{{name}}.pdf",
    params:
        spec=lambda wildcards: W.target_params(config, wildcards.name),
    wildcard_constraints:
        name="rank_sweep|steps",
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{{name}}.log",
    script:
        "../scripts/scores_figure.py"


rule rank_grid_figure:
    input:
        models=lambda wildcards: W.rank_grid_models(config),
        index=lambda wildcards: f"{RESOURCES}/data/{config['targets']['rank_sweep']['datasets'][0]}/index.parquet",
    output:
        png=report(f"{RESULTS}/figures/rank_grid.png", caption="../report/rank_grid.rst", category=REPORT_CATEGORY["rank_sweep"]),
        pdf=f"{RESULTS}/figures/rank_grid.pdf",
    params:
        steps=config["sampling"]["steps"],
        labels=lambda wildcards: W.rank_grid_labels(config),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/rank_grid.log",
    script:
        "../scripts/rank_grid.py"


rule restoration_grid_figure:
    input:
        models=lambda wildcards: [path for _, path in W.restoration_grid_runs(config, wildcards.dataset)],
        index=dataset_index,
    output:
        png=report(f"{RESULTS}/figures/restoration/{{dataset}}.png", caption="../report/restoration_grid.rst", category=REPORT_CATEGORY["main_table"]),
        pdf=f"{RESULTS}/figures/restoration/{{dataset}}.pdf",
    params:
        steps=config["sampling"]["steps"],
        labels=lambda wildcards: [label for label, _ in W.restoration_grid_runs(config, wildcards.dataset)],
        protocol=lambda wildcards: config["datasets"][wildcards.dataset]["protocol"],
        images=W.RESTORATION_GRID_IMAGES,
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/restoration/{{dataset}}.log",
    script:
        "../scripts/restoration_grid.py"


for _target in W.enabled_targets(config):

    rule:
        name:
            _target
        input:
            target_outputs(_target),


rule loss_figure:
    input:
        model=f"{RESULTS}/runs/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}/model.pt",
    output:
        png=report(f"{RESULTS}/figures/losses/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}.png", caption="../report/loss_figure.rst", category="Training: loss curves"),
        pdf=f"{RESULTS}/figures/losses/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}.pdf",
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/losses/{{dataset}}/{{process}}/{{objective}}/{{rank_spec}}/seed{{seed}}.log",
    script:
        "../scripts/loss_figure.py"
