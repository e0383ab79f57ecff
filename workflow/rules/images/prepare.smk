# Preparation of the raw data (NSD's layout: NSD or the demo; or an Algonauts 2023 download)
# into stimuli.h5 and responses/{subject}.h5 (encscale.data); a lab's own prepared files are
# checked and copied in.
if DATASET in ("demo", "nsd"):

    rule prepare_stimuli:
        input:
            design=nsd.expdesign_path(RAW),
            stimuli=[] if STIMULI_REMOTE else nsd.stimuli_path(RAW),
        output:
            f"{RESULTS}/stimuli.h5",
        log:
            f"logs/{DATASET}/prepare_stimuli.log",
        benchmark:
            benchmark_path("prepare_stimuli")
        conda:
            "../../../envs/data.yaml"
        resources:
            download_slots=1 if STIMULI_REMOTE else 0,
        params:
            subjects=SUBJECTS,
            remote=NSD_SOURCE if STIMULI_REMOTE else None,
            key=nsd.stimuli_path(""),
            images=config["prepare"]["images"],
        script:
            "../../scripts/prepare_stimuli.py"

    rule prepare_subject:
        input:
            unpack(lambda w: raw_subject_files(w.subject)),
            design=nsd.expdesign_path(RAW),
            stimuli=f"{RESULTS}/stimuli.h5",
        output:
            f"{RESULTS}/responses/{{subject}}.h5",
        log:
            f"logs/{DATASET}/prepare_subject/{{subject}}.log",
        benchmark:
            benchmark_path("prepare_subject", "{subject}")
        conda:
            "../../../envs/data.yaml"
        resources:
            # one session's betas (~1 GB int16 at 1.8 mm) and the per-image sums in memory
            mem_mb=16000 if DATASET == "nsd" else 2000,
        params:
            beta_version=BETAS,
            atlases=config["prepare"]["atlases"],
            mask_roi=config["prepare"]["mask_roi"],
            n_sessions=lambda w: N_SESSIONS[w.subject],
        script:
            "../../scripts/prepare_subject.py"


if DATASET == "algonauts2023":

    rule prepare_stimuli:
        input:
            [algonauts_subject_files(s)["images"] for s in SUBJECTS],
        output:
            f"{RESULTS}/stimuli.h5",
        log:
            f"logs/{DATASET}/prepare_stimuli.log",
        benchmark:
            benchmark_path("prepare_stimuli")
        conda:
            "../../../envs/data.yaml"
        params:
            root=ALGONAUTS["root"],
            subjects=SUBJECTS,
        script:
            "../../scripts/prepare_algonauts_stimuli.py"

    rule prepare_subject:
        input:
            unpack(lambda w: algonauts_subject_files(w.subject)),
            stimuli=f"{RESULTS}/stimuli.h5",
        output:
            f"{RESULTS}/responses/{{subject}}.h5",
        log:
            f"logs/{DATASET}/prepare_subject/{{subject}}.log",
        benchmark:
            benchmark_path("prepare_subject", "{subject}")
        conda:
            "../../../envs/data.yaml"
        params:
            settings={k: ALGONAUTS[k] for k in ("root", "rois", "holdout", "seed", "n_repeats")},
        script:
            "../../scripts/prepare_algonauts_subject.py"


if PREPARED is not None:

    rule prepare_stimuli:
        input:
            stimuli=PREPARED["stimuli"],
        output:
            f"{RESULTS}/stimuli.h5",
        log:
            f"logs/{DATASET}/prepare_stimuli.log",
        benchmark:
            benchmark_path("prepare_stimuli")
        conda:
            "../../../envs/data.yaml"
        script:
            "../../scripts/import_prepared.py"

    rule prepare_subject:
        input:
            responses=lambda w: PREPARED_FILES[w.subject],
            stimuli=f"{RESULTS}/stimuli.h5",
        output:
            f"{RESULTS}/responses/{{subject}}.h5",
        log:
            f"logs/{DATASET}/prepare_subject/{{subject}}.log",
        benchmark:
            benchmark_path("prepare_subject", "{subject}")
        conda:
            "../../../envs/data.yaml"
        resources:
            # the responses checked whole, one dataset at a time
            mem_mb=lambda w, input: 1000 + 2 * int(input.size_mb),
        script:
            "../../scripts/import_prepared.py"
