# Algonauts 2023 submissions: the challenge's files of each model, and of the ensemble
# (encscale.data).
if DATASET == "algonauts2023":

    localrules:
        submission_zip,

    # A model refitted on every training image of the download (submission.refit: all),
    # its (set, penalty) per vertex chosen by cross-validation as in the other fits.
    rule fit_submission:
        input:
            unpack(lambda w: features_input(w.model)),
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            f"{RESULTS}/submission/fits/{{subject}}/{{model}}.h5",
        log:
            f"logs/{DATASET}/fit_submission/{{subject}}/{{model}}.log",
        benchmark:
            benchmark_path("fit_submission", "{subject}/{model}")
        wildcard_constraints:
            model="|".join(MODELS),
        conda:
            "../../../envs/encoding.yaml"
        threads: 2
        resources:
            mem_mb=submission_fit_mem_mb,
            runtime=submission_fit_runtime,
            gpu_mem_mb=submission_fit_gpu_mem_mb,
            gpu=gpu_resources(ENC["device"]),
        params:
            settings=lambda w: fit_settings(w.model),
            model_maps=lambda w: model_maps_params(w.model),
        script:
            "../../scripts/fit_submission.py"

    # The challenge's submission files of one subject: a model's predictions for the test
    # images, or the mean of several models' (the ensemble).
    rule submission_subject:
        input:
            fits=lambda w: submission_fits(w.name, w.subject),
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            lh=f"{RESULTS}/submission/{{name}}/{{subject}}/lh_pred_test.npy",
            rh=f"{RESULTS}/submission/{{name}}/{{subject}}/rh_pred_test.npy",
        log:
            f"logs/{DATASET}/submission_subject/{{name}}/{{subject}}.log",
        wildcard_constraints:
            name="|".join([*MODELS, "ensemble"]),
        conda:
            "../../../envs/analysis.yaml"
        script:
            "../../scripts/submission_subject.py"

    rule submission_zip:
        input:
            lambda w: [
                f"{RESULTS}/submission/{w.name}/{s}/{h}_pred_test.npy"
                for s in SUBJECTS
                for h in ("lh", "rh")
            ],
        output:
            f"{RESULTS}/submission/{{name}}.zip",
        log:
            f"logs/{DATASET}/submission_zip/{{name}}.log",
        wildcard_constraints:
            name="|".join([*MODELS, "ensemble"]),
        conda:
            "../../../envs/analysis.yaml"
        script:
            "../../scripts/submission_zip.py"
