# Scaling laws per ROI with bootstrap intervals and extrapolation to fractions of the noise
# ceiling (encscale.scaling).


localrules:
    fit_scaling,


rule fit_scaling:
    input:
        data=fit_paths(config["scaling"]["data_model"], SIZES),
        param=param_scaling_fits(),
        responses=list(responses_files().values()),
    output:
        data=f"{RESULTS}/scaling/data_scaling.tsv",
        param=f"{RESULTS}/scaling/param_scaling.tsv",
        extrapolation=f"{RESULTS}/scaling/extrapolation.tsv",
    params:
        scaling=config["scaling"],
        subjects=SUBJECTS,
        families=MODEL_FAMILIES,
    threads: 1
    resources:
        mem_mb=8000 if DATASET != "demo" else 2000,
    log:
        f"logs/{DATASET}/fit_scaling.log",
    conda:
        "../../../envs/analysis.yaml"
    script:
        "../../scripts/fit_scaling.py"
