# The demo's raw data: a seeded miniature NSD simulated into resources/demo in NSD's own
# layout, so that preparation reads it as it reads NSD (encscale.simulate).
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
            truth=[truth_path(RAW, s) for s in SUBJECTS],
        log:
            f"logs/{DATASET}/simulate_demo.log",
        benchmark:
            benchmark_path("simulate_demo")
        conda:
            "../../../envs/data.yaml"
        params:
            sim=config["demo"],
            beta_version=BETAS,
        script:
            "../../scripts/simulate_demo.py"
