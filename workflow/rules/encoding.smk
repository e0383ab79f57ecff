# Both studies' encoding models: voxelwise (parcelwise) ridge fits, their ROI scores, and all
# scores in one table (encscale.encoding). FIT_JOB "subject_model": one job per subject × model
# fits every training size × draw from shared kernels; "fit": one job per fit file.


localrules:
    score_fit,
    collect_scores,


if FIT_JOB == "subject_model":

    rule fit_subject_model:
        input:
            unpack(lambda w: features_input(w.model)),
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            SUBJECT_MODEL_FITS,
        log:
            f"logs/{DATASET}/fit_subject_model/{{subject}}/{{model}}.log",
        benchmark:
            benchmark_path("fit_subject_model", "{subject}/{model}")
        wildcard_constraints:
            model="|".join(MODELS),
        conda:
            "../../envs/encoding.yaml"
        threads: 2
        resources:
            mem_mb=fit_job_mem_mb,
            runtime=fit_job_runtime,
            gpu_mem_mb=fit_job_gpu_mem_mb,
            gpu=gpu_resources(ENC["device"]),
        params:
            settings=lambda w: fit_settings(w.model),
            model_maps=lambda w: model_maps_params(w.model),
            predict_sizes=lambda w: prediction_sizes(w.model),
        script:
            "../scripts/fit_subject_model.py"

else:

    rule fit_encoding:
        input:
            responses=f"{RESULTS}/responses/{{subject}}.h5",
            features=f"{RESULTS}/features/{{model}}.h5",
        output:
            f"{RESULTS}/fits/{{subject}}/{{model}}/n{{size}}_s{{seed}}.h5",
        log:
            f"logs/{DATASET}/fit_encoding/{{subject}}/{{model}}/n{{size}}_s{{seed}}.log",
        benchmark:
            benchmark_path("fit_encoding", "{subject}/{model}/n{size}_s{seed}")
        wildcard_constraints:
            model="|".join(MODELS),
        conda:
            "../../envs/encoding.yaml"
        threads: 2
        resources:
            mem_mb=one_fit_mem_mb,
            gpu=gpu_resources(ENC["device"]),
        params:
            settings=lambda w: fit_settings(w.model),
        script:
            "../scripts/fit_encoding.py"


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
    params:
        min_noise_ceiling=ENC["min_noise_ceiling"],
    script:
        "../scripts/score_fit.py"


# All scores in one tidy table.
rule collect_scores:
    input:
        score_files(),
    output:
        scores=report(
            f"{RESULTS}/scores/scores.tsv",
            caption="../report/scores_table.rst",
            category="Tables",
            labels={"table": "scores"},
        ),
        edges=report(
            f"{RESULTS}/scores/penalty_edges.tsv",
            caption="../report/penalty_edges.rst",
            category="Tables",
            labels={"table": "penalties at the grid's edge"},
        ),
    log:
        f"logs/{DATASET}/collect_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/collect_scores.py"
