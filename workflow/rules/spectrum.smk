# Residual spectrum analysis (LRDM Fig. 2 and Fig. 3) and the R_m it can suggest (max_rank: auto).


rule spectrum_analysis:
    input:
        index=dataset_index,
    output:
        curves=f"{RESULTS}/spectrum/{{dataset}}/curves.parquet",
        summary=f"{RESULTS}/spectrum/{{dataset}}/summary.parquet",
    params:
        split=config["targets"].get("spectrum", {}).get("split", "train"),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/spectrum/{{dataset}}.log",
    script:
        "../scripts/spectrum_analysis.py"


rule spectrum_figures:
    input:
        index=dataset_index,
        curves=f"{RESULTS}/spectrum/{{dataset}}/curves.parquet",
    output:
        fig2=report(f"{RESULTS}/figures/spectrum/{{dataset}}_fig2.png", caption="../report/spectrum_fig2.rst", category=T.TARGETS["spectrum"].category),
        fig2_pdf=f"{RESULTS}/figures/spectrum/{{dataset}}_fig2.pdf",
        fig3=report(f"{RESULTS}/figures/spectrum/{{dataset}}_fig3.png", caption="../report/spectrum_fig3.rst", category=T.TARGETS["spectrum"].category),
        fig3_pdf=f"{RESULTS}/figures/spectrum/{{dataset}}_fig3.pdf",
    params:
        ranks=config["targets"].get("spectrum", {}).get("ranks", [1, 10, 40]),
        split=config["targets"].get("spectrum", {}).get("split", "train"),
    conda:
        "../envs/lrdm.yaml"
    log:
        f"{LOGS}/spectrum/{{dataset}}_figures.log",
    script:
        "../scripts/spectrum_figures.py"
