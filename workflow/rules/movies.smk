# The movie study: data in (simulated or CNeuroMod), the VQ-VAE tokenizer, the GPT-2 runs,
# the stimuli and responses files and each run's features (then encoding.smk's fits).
if DATASET == "demo_movies":

    rule simulate_movies:
        output:
            movies=list(movie_files(AVAILABLE).values()),
            fmri=[f for s in SUBJECTS for f in fmri_files(s)],
            truth=[simulate_movies.truth_path(RAW, s) for s in SUBJECTS],
        params:
            sim=config["simulate"],
            root=lambda w, output: Path(output.truth[0]).parents[1].as_posix(),
        log:
            f"logs/{DATASET}/simulate_movies.log",
        benchmark:
            benchmark_path("simulate_movies")
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/simulate_movies.py"


if not TOKENIZER_CFG["checkpoint"]:

    # The VQ-VAE, trained once per dataset on random clips of the pre-training movies.
    rule train_tokenizer:
        input:
            list(movie_files(PRETRAIN_MOVIES).values()),
        output:
            model=TOKENIZER,
            log=f"{RESULTS}/tokenizer/log.tsv",
        params:
            movies=movie_files(PRETRAIN_MOVIES),
            clip={k: CLIP[k] for k in ("frames", "fps", "size")},
            settings={
                k: v
                for k, v in TOKENIZER_CFG.items()
                if k not in ("checkpoint", "device", "resources")
            },
            device=TOKENIZER_CFG["device"],
        threads: 2
        resources:
            mem_mb=TOKENIZER_CFG["resources"]["mem_mb"],
            runtime=TOKENIZER_CFG["resources"]["runtime"],
            gpu=1 if TOKENIZER_CFG["device"].startswith("cuda") else 0,
        log:
            f"logs/{DATASET}/train_tokenizer.log",
        benchmark:
            benchmark_path("train_tokenizer")
        conda:
            "../../envs/features.yaml"
        script:
            "../scripts/train_tokenizer.py"


# Codes of the GPT-2's validation and training clips (the largest run's; smaller runs read
# a prefix).
rule tokenize_clips:
    input:
        movies=list(movie_files(PRETRAIN_MOVIES).values()),
        tokenizer=TOKENIZER,
    output:
        f"{RESULTS}/tokens/pretrain.h5",
    params:
        movies=movie_files(PRETRAIN_MOVIES),
        clip={k: CLIP[k] for k in ("frames", "fps", "size")},
        n=N_PRETRAIN_CLIPS,
        seed=GPT["seed"],
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    threads: 2
    resources:
        mem_mb=TOKENIZER_CFG["resources"]["mem_mb"],
        runtime=TOKENIZER_CFG["resources"]["runtime"],
        gpu=1 if TOKENIZER_CFG["device"].startswith("cuda") else 0,
    log:
        f"logs/{DATASET}/tokenize_clips.log",
    benchmark:
        benchmark_path("tokenize_clips")
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/tokenize_clips.py"


# One GPT-2 run; a killed job resumes from gpt/<run>/checkpoint.pt when rerun.
rule train_gpt:
    input:
        f"{RESULTS}/tokens/pretrain.h5",
    output:
        model=f"{RESULTS}/gpt/{{model}}/model.pt",
        log=f"{RESULTS}/gpt/{{model}}/log.tsv",
    params:
        point=lambda w: RUNS[w.model],
        training={k: v for k, v in GPT.items() if k not in ("grid", "device", "resources")},
        checkpoint=lambda w: f"{RESULTS}/gpt/{w.model}/checkpoint.pt",
        device=GPT["device"],
    threads: 2
    resources:
        mem_mb=GPT["resources"]["mem_mb"],
        runtime=GPT["resources"]["runtime"],
        gpu=1 if GPT["device"].startswith("cuda") else 0,
    log:
        f"logs/{DATASET}/train_gpt/{{model}}.log",
    benchmark:
        benchmark_path("train_gpt", "{model}")
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/train_gpt.py"


rule collect_runs:
    input:
        logs=gpt_files("log.tsv"),
        models=gpt_files("model.pt"),
    output:
        report(
            f"{RESULTS}/training/runs.tsv",
            caption="../report/runs.rst",
            category="Training",
        ),
    params:
        runs=RUNS,
    log:
        f"logs/{DATASET}/collect_runs.log",
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/collect_runs.py"


# Every TR clip of the encoding's movies, with its codes.
rule prepare_stimuli:
    input:
        movies=list(movie_files(ENCODING_MOVIES).values()),
        tokenizer=TOKENIZER,
    output:
        f"{RESULTS}/stimuli.h5",
    params:
        movies=movie_files(ENCODING_MOVIES),
        clip={k: CLIP[k] for k in ("frames", "fps", "size")},
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    threads: 2
    log:
        f"logs/{DATASET}/prepare_stimuli.log",
    benchmark:
        benchmark_path("prepare_stimuli")
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/prepare_movie_stimuli.py"


rule prepare_subject:
    input:
        fmri=lambda w: fmri_files(w.subject),
        stimuli=f"{RESULTS}/stimuli.h5",
    output:
        f"{RESULTS}/responses/{{subject}}.h5",
    params:
        test_movies=TEST_MOVIES,
        lag=CLIP["lag"],
    log:
        f"logs/{DATASET}/prepare_subject/{{subject}}.log",
    benchmark:
        benchmark_path("prepare_subject", "{subject}")
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/prepare_movie_subject.py"


# Each layer's hidden states, averaged over the codes of each TR's clip.
rule extract_features:
    input:
        stimuli=f"{RESULTS}/stimuli.h5",
        model=f"{RESULTS}/gpt/{{model}}/model.pt",
    output:
        f"{RESULTS}/features/{{model}}.h5",
    params:
        settings=config["features"],
    threads: 2
    resources:
        gpu=1 if config["features"]["device"].startswith("cuda") else 0,
    log:
        f"logs/{DATASET}/extract_features/{{model}}.log",
    benchmark:
        benchmark_path("extract_features", "{model}")
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/extract_gpt_features.py"
