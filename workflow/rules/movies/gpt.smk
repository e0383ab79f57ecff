# The GPT-2 runs of the grid (gpt.grid), each trained on its share of the pre-training
# codes, and the table of all runs (encscale.video).


localrules:
    collect_runs,


# One GPT-2 run; a killed job resumes from gpt/<run>/checkpoint.pt when rerun.
rule train_gpt:
    input:
        f"{RESULTS}/tokens/pretrain.h5",
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
        mem_mb=GPT["resources"]["mem_mb"],
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
