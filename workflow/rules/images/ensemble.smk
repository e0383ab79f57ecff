# The ensemble: the mean of its members' predictions (same subject, size and draw), scored as
# a model (encscale.encoding).


rule ensemble_fit:
    input:
        members=lambda w: [
            f"{RESULTS}/fits/{w.subject}/{m}/n{w.size}_s{w.seed}.h5" for m in ENSEMBLE_MODELS
        ],
        responses=f"{RESULTS}/responses/{{subject}}.h5",
    output:
        f"{RESULTS}/fits/{{subject}}/{ENSEMBLE}/n{{size}}_s{{seed}}.h5",
    log:
        f"logs/{DATASET}/ensemble_fit/{{subject}}/n{{size}}_s{{seed}}.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        members=ENSEMBLE_MODELS,
    script:
        "../../scripts/ensemble_fit.py"
