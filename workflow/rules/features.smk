# Features of every block of a model, max-pooled to k×k grids, for every stimulus.


rule extract_features:
    input:
        f"{RESULTS}/stimuli.h5",
    output:
        f"{RESULTS}/features/{{model}}.h5",
    params:
        spec=lambda w: config["models"][w.model],
        pool_sizes=config["features"]["pool_sizes"],
        batch_size=config["features"]["batch_size"],
        device=config["features"]["device"],
        precision=config["features"]["precision"],
        storage=config["features"]["storage"],
        compression=config["features"]["compression"],
        prefix_tokens=config["features"]["prefix_tokens"],
        num_workers=config["features"]["num_workers"],
        offline=config["features"]["offline"],
    threads: config["features"]["num_workers"] + 1
    resources:
        mem_mb=lambda w: config["models"][w.model]["resources"]["mem_mb"],
        runtime=lambda w: config["models"][w.model]["resources"]["runtime"],
        gpu=1 if config["features"]["device"].startswith("cuda") else 0,
    log:
        f"logs/{DATASET}/extract_features/{{model}}.log",
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/extract_features.py"
