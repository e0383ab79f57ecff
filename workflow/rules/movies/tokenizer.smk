# The VQ-VAE tokenizer (unless tokenizer.checkpoint names one) and the codes it gives: of the
# GPT-2's pre-training clips, and of every TR clip of the encoding's movies, the stimuli file
# (encscale.video).
if not TOKENIZER_CFG["checkpoint"]:

    # The VQ-VAE, trained once per dataset on random clips of the pre-training movies; a
    # killed job resumes from tokenizer/checkpoint.pt when rerun.
    rule train_tokenizer:
        input:
            list(movie_files(PRETRAIN_MOVIES).values()),
        output:
            model=TOKENIZER,
            log=f"{RESULTS}/tokenizer/log.tsv",
        log:
            f"logs/{DATASET}/train_tokenizer.log",
        benchmark:
            benchmark_path("train_tokenizer")
        conda:
            "../../../envs/features.yaml"
        threads: 2
        resources:
            mem_mb=TOKENIZER_CFG["resources"]["mem_mb"],
            runtime=TOKENIZER_CFG["resources"]["runtime"],
            gpu=gpu_resources(TOKENIZER_CFG["device"]),
        params:
            movies=movie_files(PRETRAIN_MOVIES),
            clip={k: CLIP[k] for k in ("frames", "fps", "size")},
            settings={
                k: v
                for k, v in TOKENIZER_CFG.items()
                if k not in ("checkpoint", "device", "resources")
            },
            device=TOKENIZER_CFG["device"],
            checkpoint=f"{RESULTS}/tokenizer/checkpoint.pt",
        script:
            "../../scripts/train_tokenizer.py"


# Codes of the GPT-2's validation and training clips (the largest run's; smaller runs read
# a prefix), written as they are encoded (a scratch file beside the output, as large as the
# codes, while the job runs).
rule tokenize_clips:
    input:
        movies=list(movie_files(PRETRAIN_MOVIES).values()),
        tokenizer=TOKENIZER,
    output:
        f"{RESULTS}/tokens/pretrain.h5",
    log:
        f"logs/{DATASET}/tokenize_clips.log",
    benchmark:
        benchmark_path("tokenize_clips")
    conda:
        "../../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=tokenize_clips_mem_mb,
        runtime=TOKENIZER_CFG["resources"]["runtime"],
        gpu=gpu_resources(TOKENIZER_CFG["device"]),
    params:
        movies=movie_files(PRETRAIN_MOVIES),
        clip={k: CLIP[k] for k in ("frames", "fps", "size")},
        n=N_PRETRAIN_CLIPS,
        seed=GPT["seed"],
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    script:
        "../../scripts/tokenize_clips.py"


# Every TR clip of the encoding's movies, with its codes.
rule prepare_stimuli:
    input:
        movies=list(movie_files(ENCODING_MOVIES).values()),
        tokenizer=TOKENIZER,
    output:
        f"{RESULTS}/stimuli.h5",
    log:
        f"logs/{DATASET}/prepare_stimuli.log",
    benchmark:
        benchmark_path("prepare_stimuli")
    conda:
        "../../../envs/features.yaml"
    threads: 2
    resources:
        gpu=gpu_resources(TOKENIZER_CFG["device"]),
    params:
        movies=movie_files(ENCODING_MOVIES),
        clip={k: CLIP[k] for k in ("frames", "fps", "size")},
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    script:
        "../../scripts/prepare_movie_stimuli.py"
