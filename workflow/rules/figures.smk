# The first study's figures (PNG for the report, SVG for print), with the scaling laws.


rule figure_data_scaling:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
        fits=f"{RESULTS}/scaling/data_scaling.tsv",
        extrapolation=f"{RESULTS}/scaling/extrapolation.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/data_scaling.png",
            caption="../report/data_scaling.rst",
            category="Scaling laws",
        ),
        svg=f"{RESULTS}/figures/data_scaling.svg",
    params:
        atlas=config["scaling"]["atlas"],
        model=config["scaling"]["data_model"],
    log:
        f"logs/{DATASET}/figure_data_scaling.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figure_data_scaling.py"


rule figure_param_scaling:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
        fits=f"{RESULTS}/scaling/param_scaling.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/param_scaling.png",
            caption="../report/param_scaling.rst",
            category="Scaling laws",
        ),
        svg=f"{RESULTS}/figures/param_scaling.svg",
    params:
        atlas=config["scaling"]["atlas"],
        size=config["scaling"]["param_size"],
    log:
        f"logs/{DATASET}/figure_param_scaling.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figure_param_scaling.py"


rule figure_roi_scores:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/roi_scores.png",
            caption="../report/roi_scores.rst",
            category="Final scores",
        ),
        svg=f"{RESULTS}/figures/roi_scores.svg",
    params:
        final=config["final"],
    log:
        f"logs/{DATASET}/figure_roi_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figure_roi_scores.py"
