# Voxelwise encoding fits per subject × model × training size × draw, and their ROI scores.


rule fit_encoding:
    input:
        responses=f"{RESULTS}/responses/{{subject}}.h5",
        features=f"{RESULTS}/features/{{model}}.h5",
    output:
        f"{RESULTS}/fits/{{subject}}/{{model}}/n{{size}}_s{{seed}}.h5",
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


rule score_fit:
    input:
        fit=rules.fit_encoding.output[0],
        responses=f"{RESULTS}/responses/{{subject}}.h5",
    output:
        f"{RESULTS}/scores/{{subject}}/{{model}}/n{{size}}_s{{seed}}.tsv",
    log:
        f"logs/{DATASET}/score_fit/{{subject}}/{{model}}/n{{size}}_s{{seed}}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/score_fit.py"
