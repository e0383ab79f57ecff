# Voxelwise encoding fits per subject × model × training size × draw, and their ROI scores.


rule fit_encoding:
    input:
        responses=f"{RESULTS}/responses/{{subject}}.h5",
        features=f"{RESULTS}/features/{{model}}.h5",
    output:
        f"{RESULTS}/fits/{{subject}}/{{model}}/n{{size}}_s{{seed}}.h5",
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        settings={key: ENC[key] for key in ("n_folds", "alphas", "scoring", "subsample", "device")},
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1 if ENC["device"].startswith("cuda") else 0,
    log:
        f"logs/{DATASET}/fit_encoding/{{subject}}/{{model}}/n{{size}}_s{{seed}}.log",
    benchmark:
        benchmark_path("fit_encoding", "{subject}/{model}/n{size}_s{seed}")
    conda:
        "../../envs/encoding.yaml"
    script:
        "../scripts/fit_encoding.py"


# The ensemble: the mean of its members' predictions (same subject, size and draw).
rule ensemble_fit:
    input:
        members=lambda w: [
            f"{RESULTS}/fits/{w.subject}/{m}/n{w.size}_s{w.seed}.h5" for m in ENSEMBLE_MODELS
        ],
        responses=f"{RESULTS}/responses/{{subject}}.h5",
    output:
        f"{RESULTS}/fits/{{subject}}/{ENSEMBLE}/n{{size}}_s{{seed}}.h5",
    params:
        members=ENSEMBLE_MODELS,
    log:
        f"logs/{DATASET}/ensemble_fit/{{subject}}/n{{size}}_s{{seed}}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/ensemble_fit.py"


rule score_fit:
    input:
        fit=f"{RESULTS}/fits/{{subject}}/{{model}}/n{{size}}_s{{seed}}.h5",
        responses=f"{RESULTS}/responses/{{subject}}.h5",
    output:
        f"{RESULTS}/scores/{{subject}}/{{model}}/n{{size}}_s{{seed}}.tsv",
    log:
        f"logs/{DATASET}/score_fit/{{subject}}/{{model}}/n{{size}}_s{{seed}}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/score_fit.py"


# All scores in one tidy table.
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
