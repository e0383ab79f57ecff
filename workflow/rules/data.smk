# Raw data in (simulated, fetched from NSD's bucket, or an existing copy) and its
# preparation into stimuli.h5 and responses/{subject}.h5.
if DATASET == "demo":

    rule simulate_demo:
        output:
            design=nsd.expdesign_path(RAW),
            stimuli=nsd.stimuli_path(RAW),
            subject_files=[
                f
                for s in SUBJECTS
                for files in raw_subject_files(s).values()
                for f in ([files] if isinstance(files, str) else files)
            ],
            truth=[simulate.truth_path(RAW, s) for s in SUBJECTS],
        params:
            sim=config["demo"],
            beta_version=BETAS,
        log:
            "logs/demo/simulate_demo.log",
        benchmark:
            benchmark_path("simulate_demo")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/simulate_demo.py"


if FETCH_NSD:

    # One object of NSD's bucket (or of the mirror in nsd.endpoint_url) into nsd.root:
    # verified against its size and ETag (and the manifest's SHA-256, if given), resumed
    # after an interruption, written under its final name only when whole.
    rule fetch_nsd:
        output:
            f"{NSD['root']}/{{key}}",
        wildcard_constraints:
            key=r"nsddata(_betas|_stimuli)?/.+",
        params:
            source=NSD_SOURCE,
            sha256=lambda w: MANIFEST[w.key][1] if w.key in MANIFEST else None,
        resources:
            download_slots=1,
            runtime=lambda w: 600 if w.key.endswith(".hdf5") else 60,  # minutes; ~37 GB stimuli
        log:
            "logs/fetch_nsd/{key}.log",
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/fetch_nsd.py"


if DATASET in ("demo", "nsd"):

    rule prepare_stimuli:
        input:
            design=nsd.expdesign_path(RAW),
            stimuli=[] if STIMULI_REMOTE else nsd.stimuli_path(RAW),
        output:
            f"{RESULTS}/stimuli.h5",
        params:
            subjects=SUBJECTS,
            remote=NSD_SOURCE if STIMULI_REMOTE else None,
            key=nsd.stimuli_path(""),
        resources:
            download_slots=1 if STIMULI_REMOTE else 0,
        log:
            f"logs/{DATASET}/prepare_stimuli.log",
        benchmark:
            benchmark_path("prepare_stimuli")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/prepare_stimuli.py"

    rule prepare_subject:
        input:
            unpack(lambda w: raw_subject_files(w.subject)),
            design=nsd.expdesign_path(RAW),
            stimuli=f"{RESULTS}/stimuli.h5",
        output:
            f"{RESULTS}/responses/{{subject}}.h5",
        params:
            beta_version=BETAS,
            atlases=config["prepare"]["atlases"],
            mask_roi=config["prepare"]["mask_roi"],
            n_sessions=lambda w: N_SESSIONS[w.subject],
        resources:
            # one session's betas (~1 GB int16 at 1.8 mm) and the per-image sums in memory
            mem_mb=16000 if DATASET == "nsd" else 2000,
        log:
            f"logs/{DATASET}/prepare_subject/{{subject}}.log",
        benchmark:
            benchmark_path("prepare_subject", "{subject}")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/prepare_subject.py"


if DATASET == "algonauts2023":

    localrules:
        submission_zip,

    rule prepare_stimuli:
        input:
            [algonauts_subject_files(s)["images"] for s in SUBJECTS],
        output:
            f"{RESULTS}/stimuli.h5",
        params:
            root=ALGONAUTS["root"],
            subjects=SUBJECTS,
        log:
            f"logs/{DATASET}/prepare_stimuli.log",
        benchmark:
            benchmark_path("prepare_stimuli")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/prepare_algonauts_stimuli.py"

    rule prepare_subject:
        input:
            unpack(lambda w: algonauts_subject_files(w.subject)),
            stimuli=f"{RESULTS}/stimuli.h5",
        output:
            f"{RESULTS}/responses/{{subject}}.h5",
        params:
            settings={k: ALGONAUTS[k] for k in ("root", "rois", "holdout", "seed", "n_repeats")},
        log:
            f"logs/{DATASET}/prepare_subject/{{subject}}.log",
        benchmark:
            benchmark_path("prepare_subject", "{subject}")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/prepare_algonauts_subject.py"

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
            f"logs/{DATASET}/submission/{{name}}/{{subject}}.log",
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/submission_subject.py"

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
            f"logs/{DATASET}/submission/{{name}}.log",
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/submission_zip.py"
