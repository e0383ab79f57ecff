# Each GPT-2 run's features: each layer's hidden states over the codes of each TR's clip of
# the stimuli file, averaged over all of them or, features.pooling spatial, over the code
# frames only, the code grid kept as a layer map (encscale.video).


rule extract_features:
    input:
        stimuli=f"{RESULTS}/stimuli.h5",
        model=f"{RESULTS}/gpt/{{model}}/model.pt",
    output:
        f"{RESULTS}/features/{{model}}.h5",
    log:
        f"logs/{DATASET}/extract_features/{{model}}.log",
    benchmark:
        benchmark_path("extract_features", "{model}")
    conda:
        "../../../envs/features.yaml"
    threads: 2
    resources:
        gpu=gpu_resources(config["features"]["device"]),
    params:
        settings=config["features"],
    script:
        "../../scripts/extract_gpt_features.py"
