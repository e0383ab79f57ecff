# The CNeuroMod movie data (Algonauts 2025 release, a DataLad dataset): clone it once into
# cneuromod.root and get the files the study needs (encscale.data).
if DATASET == "cneuromod":

    # One job for all files: a DataLad clone and its annex are shared, not safe to run in
    # parallel.
    rule fetch_cneuromod:
        output:
            [f"{CNEUROMOD['root']}/{p}" for p in cneuromod_fetch_paths()],
        log:
            f"logs/{DATASET}/fetch_cneuromod.log",
        conda:
            "../../../envs/data.yaml"
        resources:
            download_slots=1,
        params:
            source=CNEUROMOD["source"],
            root=lambda w, output: output[0][: -len(cneuromod_fetch_paths()[0]) - 1],
            paths=cneuromod_fetch_paths(),
            jobs=CNEUROMOD["jobs"],
        script:
            "../../scripts/fetch_cneuromod.py"
