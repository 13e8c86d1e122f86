# Residual spectrum analysis (LRDM Fig. 2 and Fig. 3) and the R_m it can suggest (max_rank: auto).

SPECTRUM_SPEC = config["targets"].get(T.SPECTRUM, {})  # the analysis also runs for max_rank: auto without the target
FIG2, FIG3 = T.SPECTRUM_FIGURES


rule spectrum_analysis:
    input:
        index=dataset_index,
    output:
        curves=P.spectrum_path(RESULTS, "{dataset}", "curves"),
        summary=P.spectrum_path(RESULTS, "{dataset}", T.SPECTRUM_SUMMARY),
    params:
        split=SPECTRUM_SPEC.get("split", "train"),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/spectrum/{{dataset}}.log",
    script:
        "../scripts/spectrum_analysis.py"


rule spectrum_figures:
    input:
        index=dataset_index,
        curves=rules.spectrum_analysis.output.curves,
    output:
        fig2=report(P.figure_path(RESULTS, FIG2, "png"), caption="../report/spectrum_fig2.rst", category=T.TARGETS[T.SPECTRUM].category),
        fig2_pdf=P.figure_path(RESULTS, FIG2, "pdf"),
        fig3=report(P.figure_path(RESULTS, FIG3, "png"), caption="../report/spectrum_fig3.rst", category=T.TARGETS[T.SPECTRUM].category),
        fig3_pdf=P.figure_path(RESULTS, FIG3, "pdf"),
    params:
        ranks=SPECTRUM_SPEC.get("ranks", [1, 10, 40]),
        split=SPECTRUM_SPEC.get("split", "train"),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/spectrum/{{dataset}}_figures.log",
    script:
        "../scripts/spectrum_figures.py"
