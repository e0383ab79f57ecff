# Raw data in NSD's layout (the demo: simulated) and its preparation into responses.
BETAS = config["prepare"]["beta_version"]
ROI_FILES = ["nsdgeneral", *config["prepare"]["atlases"]]


def raw_subject_files(subject):
    """Every raw file of one subject that preparation reads (paths as strings)."""
    return dict(
        betas=[str(nsd.betas_path(RAW, subject, s, BETAS)) for s in range(1, N_SESSIONS + 1)],
        ncsnr=str(nsd.ncsnr_path(RAW, subject, BETAS)),
        brainmask=str(nsd.brainmask_path(RAW, subject)),
        rois=[str(nsd.roi_path(RAW, subject, name)) for name in ROI_FILES],
        ctabs=[str(nsd.ctab_path(RAW, subject, name)) for name in config["prepare"]["atlases"]],
    )


rule simulate_demo:
    output:
        design=str(nsd.expdesign_path(RAW)),
        stimuli=str(nsd.stimuli_path(RAW)),
        subject_files=[
            f
            for s in SUBJECTS
            for files in raw_subject_files(s).values()
            for f in ([files] if isinstance(files, str) else files)
        ],
        truth=[f"{RAW}/truth/{s}.h5" for s in SUBJECTS],
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
        design=str(nsd.expdesign_path(RAW)),
        stimuli=str(nsd.stimuli_path(RAW)),
    output:
        f"{RESULTS}/stimuli.h5",
    params:
        root=RAW,
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
        design=str(nsd.expdesign_path(RAW)),
        stimuli=f"{RESULTS}/stimuli.h5",
    output:
        f"{RESULTS}/responses/{{subject}}.h5",
    params:
        root=RAW,
        beta_version=BETAS,
        atlases=config["prepare"]["atlases"],
        mask_roi=config["prepare"]["mask_roi"],
    log:
        f"logs/{DATASET}/prepare_subject/{{subject}}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/prepare_subject.py"
