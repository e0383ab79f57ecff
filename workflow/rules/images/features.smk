# Features of every block of a model, its spatial map (max-pooled to k×k grids at fit time),
# for every stimulus; and a model's weights fetched into a local file (encscale.vision).


rule extract_features:
    input:
        stimuli=f"{RESULTS}/stimuli.h5",
        weights=lambda w: weights_input(w.model),
    output:
        f"{RESULTS}/features/{{model}}.h5",
    log:
        f"logs/{DATASET}/extract_features/{{model}}.log",
    benchmark:
        benchmark_path("extract_features", "{model}")
    conda:
        "../../../envs/features.yaml"
    threads: config["features"]["num_workers"] + 1
    resources:
        mem_mb=lambda w: config["models"][w.model]["resources"]["mem_mb"],
        runtime=lambda w: config["models"][w.model]["resources"]["runtime"],
        gpu=gpu_resources(config["features"]["device"]),
    params:
        spec=lambda w: config["models"][w.model],
        batch_size=config["features"]["batch_size"],
        device=config["features"]["device"],
        precision=config["features"]["precision"],
        storage=config["features"]["storage"],
        compression=config["features"]["compression"],
        prefix_tokens=config["features"]["prefix_tokens"],
        pixel_norm=config["features"]["pixel_norm"],
        num_workers=config["features"]["num_workers"],
        offline=config["features"]["offline"],
    script:
        "../../scripts/extract_features.py"


# Optional, online: a model's pretrained weights from the Hugging Face hub into a verified
# local file with provenance. A registry entry with `weights: file` and a weights_file of
# this form makes it an input of the model's extraction, fetched when missing.
rule fetch_weights:
    output:
        weights="resources/weights/{model}.{fmt}",
        provenance="resources/weights/{model}.{fmt}.json",
    log:
        f"logs/{DATASET}/fetch_weights/{{model}}.{{fmt}}.log",
    wildcard_constraints:
        fmt="safetensors|bin",
    conda:
        "../../../envs/features.yaml"
    resources:
        download_slots=1,
    params:
        spec=lambda w: config["models"][w.model],
    script:
        "../../scripts/fetch_weights.py"
