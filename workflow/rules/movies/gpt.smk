# The GPT-2 runs of the grid (gpt.grid: each clip seen once, and with gpt.grid.equal_steps
# the same data sizes at equal steps), each trained on its share of the pre-training codes
# and validated on clips of held-out episodes, and the table of all runs (encscale.video).


localrules:
    collect_runs,


# Codes of the held-out validation clips: clips of the held-out episodes (movies.validation),
# which no tokenizer or GPT-2 training clip comes from (encscale.video.heldout).
rule tokenize_validation_clips:
    input:
        movies=list(movie_files(VALIDATION_MOVIES).values()),
        tokenizer=TOKENIZER,
    output:
        f"{RESULTS}/tokens/validation.h5",
    log:
        f"logs/{DATASET}/tokenize_validation_clips.log",
    benchmark:
        benchmark_path("tokenize_validation_clips")
    conda:
        "../../../envs/features.yaml"
    threads: 2
    resources:
        gpu=gpu_resources(TOKENIZER_CFG["device"]),
    params:
        movies=movie_files(VALIDATION_MOVIES),
        clip={k: CLIP[k] for k in ("frames", "fps", "size")},
        n=GPT["n_val"],
        seed=GPT["seed"],
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    script:
        "../../scripts/tokenize_clips.py"


# One GPT-2 run; a killed job resumes from gpt/<run>/checkpoint.pt when rerun.
rule train_gpt:
    input:
        tokens=f"{RESULTS}/tokens/pretrain.h5",
        heldout=f"{RESULTS}/tokens/validation.h5",
    output:
        model=f"{RESULTS}/gpt/{{model}}/model.pt",
        log=f"{RESULTS}/gpt/{{model}}/log.tsv",
    log:
        f"logs/{DATASET}/train_gpt/{{model}}.log",
    benchmark:
        benchmark_path("train_gpt", "{model}")
    conda:
        "../../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=train_gpt_mem_mb,
        runtime=GPT["resources"]["runtime"],
        gpu=gpu_resources(GPT["device"]),
    params:
        point=lambda w: RUNS[w.model],
        training={k: v for k, v in GPT.items() if k not in ("grid", "device", "resources")},
        checkpoint=lambda w: f"{RESULTS}/gpt/{w.model}/checkpoint.pt",
        device=GPT["device"],
    script:
        "../../scripts/train_gpt.py"


rule collect_runs:
    input:
        logs=gpt_files("log.tsv"),
        models=gpt_files("model.pt"),
    output:
        report(
            f"{RESULTS}/training/runs.tsv",
            caption="../../report/runs.rst",
            category="Training",
        ),
    log:
        f"logs/{DATASET}/collect_runs.log",
    conda:
        "../../../envs/features.yaml"
    params:
        runs=RUNS,
    script:
        "../../scripts/collect_runs.py"
