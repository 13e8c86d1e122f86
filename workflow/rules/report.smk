# Tables (CSV + Markdown + LaTeX) and figures (PNG + PDF), regenerated from the Parquet scores only,
# and one target rule per paper artefact: the table of paper targets, lrdm/targets.py, says which files each
# needs and the report category of each.

rule table:
    input:
        scores=lambda wildcards: W.target_score_paths(config, wildcards.name),
    output:
        csv=report(P.table_path(RESULTS, "{name}", "csv"), caption="../report/table.rst", category=lambda wildcards: T.TARGETS[wildcards.name].category),
        md=P.table_path(RESULTS, "{name}", "md"),
        tex=P.table_path(RESULTS, "{name}", "tex"),
    params:
        spec=lambda wildcards: W.target_params(config, wildcards.name),  # a changed spec reruns the table
    wildcard_constraints:
        name="|".join(T.TABLE_TARGETS),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/tables/{{name}}.log",
    script:
        "../scripts/table.py"


rule rank_schedules_figure:
    output:
        png=report(P.figure_path(RESULTS, T.RANK_SCHEDULES, "png"), caption="../report/rank_schedules.rst", category=T.TARGETS[T.RANK_SCHEDULES].category),
        pdf=P.figure_path(RESULTS, T.RANK_SCHEDULES, "pdf"),
    params:
        spec=W.canonical(config["targets"].get(T.RANK_SCHEDULES, {})),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{T.RANK_SCHEDULES}.log",
    script:
        "../scripts/rank_schedules.py"


rule scores_figure:
    input:
        scores=lambda wildcards: W.target_score_paths(config, wildcards.name),
    output:
        png=report(P.figure_path(RESULTS, "{name}", "png"), caption="../report/scores_figure.rst", category=lambda wildcards: T.TARGETS[wildcards.name].category),
        pdf=P.figure_path(RESULTS, "{name}", "pdf"),
    params:
        spec=lambda wildcards: W.target_params(config, wildcards.name),
    wildcard_constraints:
        name="|".join(T.PLOT_TARGETS),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{{name}}.log",
    script:
        "../scripts/scores_figure.py"


rule rank_grid_figure:
    input:
        models=lambda wildcards: W.rank_grid_models(config),
        index=lambda wildcards: W.dataset_index_path(config, W.rank_grid_dataset(config)),
    output:
        png=report(P.figure_path(RESULTS, T.RANK_GRID, "png"), caption="../report/rank_grid.rst", category=T.TARGETS[T.RANK_SWEEP].category),
        pdf=P.figure_path(RESULTS, T.RANK_GRID, "pdf"),
    params:
        steps=config["sampling"]["steps"],
        eta=config["sampling"]["eta"],
        sampler=config["sampling"]["sampler"],
        labels=lambda wildcards: W.rank_grid_labels(config),
        protocol=lambda wildcards: config["datasets"][W.rank_grid_dataset(config)]["protocol"],
        resize=lambda wildcards: config["datasets"][W.rank_grid_dataset(config)].get("eval_resize"),
        tile=W.eval_tile(config),
    threads: config.get("train_threads", 1)
    resources:
        gpu=EVAL_GPUS,  # restores test images with trained runs after training: on a GPU like evaluate
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{T.RANK_GRID}.log",
    script:
        "../scripts/rank_grid.py"


rule restoration_grid_figure:
    input:
        models=lambda wildcards: [path for _, path in W.restoration_grid_runs(config, wildcards.dataset)],
        index=dataset_index,
    output:
        png=report(P.figure_path(RESULTS, T.RESTORATION_GRID, "png"), caption="../report/restoration_grid.rst", category=T.TARGETS[T.MAIN_TABLE].category),
        pdf=P.figure_path(RESULTS, T.RESTORATION_GRID, "pdf"),
    params:
        steps=config["sampling"]["steps"],
        eta=config["sampling"]["eta"],
        sampler=config["sampling"]["sampler"],
        labels=lambda wildcards: [label for label, _ in W.restoration_grid_runs(config, wildcards.dataset)],
        protocol=lambda wildcards: config["datasets"][wildcards.dataset]["protocol"],
        resize=lambda wildcards: config["datasets"][wildcards.dataset].get("eval_resize"),
        tile=W.eval_tile(config),
        images=lambda wildcards: W.restoration_grid_images(config, wildcards.dataset),
    threads: config.get("train_threads", 1)
    resources:
        gpu=EVAL_GPUS,  # restores test images with trained runs after training: on a GPU like evaluate
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{T.RESTORATION_GRID}.log",
    script:
        "../scripts/restoration_grid.py"


for _target in W.enabled_targets(config):

    rule:
        name:
            _target
        input:
            target_outputs(_target),


rule loss_comparison_figure:
    input:
        models=lambda wildcards: trained_models(W.loss_comparison_runs(config, wildcards.dataset)),
    output:
        png=report(P.figure_path(RESULTS, T.LOSSES_FIGURE, "png"), caption="../report/loss_comparison.rst", category="Training: loss curves"),
        pdf=P.figure_path(RESULTS, T.LOSSES_FIGURE, "pdf"),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/figures/{T.LOSSES_FIGURE}.log",
    script:
        "../scripts/loss_comparison.py"


# The measured numbers of the README and docs/ (docs/results.md): fragments under results/readme/, tracked by git,
# that `python -m lrdm.results.readme --update README.md docs/*.md` copies between their markers.

README_DIR = P.readme_folder(RESULTS)
README_STEPS = int(config["sampling"]["steps"])
README_EVALUATIONS = W.all_evaluations(config)
README_RUNS = sorted({e.trained for e in README_EVALUATIONS}, key=lambda run: run.path)
README_RESTORATIONS = config["targets"][T.MAIN_TABLE]["datasets"] if T.MAIN_TABLE in W.all_targets(config) else []
README_PROTOCOLS = T.PROTOCOLS in W.all_targets(config)  # the protocols fragment: from the protocols target's scores
README_LOSSES = sorted({e.dataset for e in README_EVALUATIONS})
README_OVERLAYS = [os.path.relpath(path, workflow.basedir) for path in workflow.overwrite_configfiles]
README_CONFIGFILES = [  # in the order they were merged: the Snakefile's configfile, then each --configfile
    path for path in (os.path.relpath(p, workflow.basedir) for p in workflow.configfiles) if path not in README_OVERLAYS
] + README_OVERLAYS


rule readme_tables:
    input:
        scores=[W.score_path(RESULTS, e) for e in README_EVALUATIONS if e.steps == README_STEPS],
        protocols=W.target_score_paths(config, T.PROTOCOLS) if README_PROTOCOLS else [],
        models=trained_models(README_RUNS),
        restorations=expand(P.figure_path(RESULTS, T.RESTORATION_GRID, "png"), dataset=README_RESTORATIONS),
        losses=expand(P.figure_path(RESULTS, T.LOSSES_FIGURE, "png"), dataset=README_LOSSES),
    output:
        scores=f"{README_DIR}/scores.md",
        fragments=[f"{README_DIR}/{name}.md" for name in ("setup", "timing", "gains", "restorations", "losses")]
        + ([f"{README_DIR}/{T.PROTOCOLS}.md"] if README_PROTOCOLS else []),
        restorations=[f"{README_DIR}/restoration_{d}.png" for d in README_RESTORATIONS],
        losses=[f"{README_DIR}/losses_{d}.png" for d in README_LOSSES],
    params:
        steps=README_STEPS,
        order=W.runs_in_config_order(config),
        protocols={name: dataset["protocol"] for name, dataset in config["datasets"].items()},
        benchmarks=W.benchmark_paths(config, README_EVALUATIONS),
        configfiles=README_CONFIGFILES,
        repo=workflow.basedir,
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/readme/tables.log",
    script:
        "../scripts/readme_tables.py"


rule readme_targets:
    output:
        targets=f"{README_DIR}/{T.README_BLOCK}.md",
    params:
        table=T.targets_markdown(),  # the README's table of targets, from lrdm/targets.py: an edited entry rewrites it
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/readme/{T.README_BLOCK}.log",
    script:
        "../scripts/readme_targets.py"


if T.CLAIMS in W.enabled_targets(config):

    rule readme_claims:
        input:
            table=P.table_path(RESULTS, T.CLAIMS, "csv"),
            scores=W.target_score_paths(config, T.CLAIMS),
        output:
            claims=f"{README_DIR}/{T.CLAIMS}.md",
            fragments=[f"{README_DIR}/{name}.md" for name in ("claims_seeds", "claims_timing", "claims_verdicts")],
        params:
            spec=config["targets"][T.CLAIMS],
            steps=README_STEPS,
            benchmarks=W.benchmark_paths(  # the jobs claims adds to all's
                config, W.target_evaluations(config, T.CLAIMS), already=README_EVALUATIONS
            ),
            configfiles=README_CONFIGFILES,
            repo=workflow.basedir,
        conda:
            "../envs/lrdm.yaml"
        log:
            f"{LOGS}/readme/claims.log",
        script:
            "../scripts/readme_claims.py"
