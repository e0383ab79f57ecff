# Algonauts 2023 submissions: the challenge's files of each model, and of the ensemble
# (encscale.data).
if DATASET == "algonauts2023":

    localrules:
        submission_zip,

    # The challenge's submission files of one subject: a model's predictions for the test
    # images, or the mean of several models' (the ensemble).
    rule submission_subject:
        input:
            fits=lambda w: submission_fits(w.name, w.subject),
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            lh=f"{RESULTS}/submission/{{name}}/{{subject}}/lh_pred_test.npy",
            rh=f"{RESULTS}/submission/{{name}}/{{subject}}/rh_pred_test.npy",
        wildcard_constraints:
            name="|".join([*MODELS, "ensemble"]),
        log:
            f"logs/{DATASET}/submission_subject/{{name}}/{{subject}}.log",
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
        wildcard_constraints:
            name="|".join([*MODELS, "ensemble"]),
        log:
            f"logs/{DATASET}/submission_zip/{{name}}.log",
        conda:
            "../../../envs/analysis.yaml"
        script:
            "../../scripts/submission_zip.py"
