# All scores in one tidy table, and log-linear scaling fits per ROI.


rule collect_scores:
    input:
        score_files(),
    output:
        f"{RESULTS}/scores/scores.tsv",
    log:
        f"logs/{DATASET}/collect_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/collect_scores.py"


rule fit_scaling:
    input:
        f"{RESULTS}/scores/scores.tsv",
    output:
        data=f"{RESULTS}/scaling/data_scaling.tsv",
        param=f"{RESULTS}/scaling/param_scaling.tsv",
    params:
        scaling=config["scaling"],
        sizes=SIZES,
    log:
        f"logs/{DATASET}/fit_scaling.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/fit_scaling.py"
