# Raw data in NSD's layout (the demo: simulated) and its preparation into responses.
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
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/simulate_demo.py"


rule prepare_stimuli:
    input:
        design=nsd.expdesign_path(RAW),
        stimuli=nsd.stimuli_path(RAW),
    output:
        f"{RESULTS}/stimuli.h5",
    params:
        subjects=SUBJECTS,
    log:
        f"logs/{DATASET}/prepare_stimuli.log",
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
    log:
        f"logs/{DATASET}/prepare_subject/{{subject}}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/prepare_subject.py"
