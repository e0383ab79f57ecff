# The subjects' responses to the encoding's movies, paired with the stimuli file's TR clips
# at the haemodynamic lags (encscale.data).


rule prepare_subject:
    input:
        fmri=lambda w: fmri_files(w.subject),
        stimuli=f"{RESULTS}/stimuli.h5",
    output:
        f"{RESULTS}/responses/{{subject}}.h5",
    log:
        f"logs/{DATASET}/prepare_subject/{{subject}}.log",
    benchmark:
        benchmark_path("prepare_subject", "{subject}")
    conda:
        "../../../envs/data.yaml"
    params:
        test_movies=TEST_MOVIES,
        lags=CLIP["lags"],
        window_trs=CLIP["window_trs"],
    script:
        "../../scripts/prepare_movie_subject.py"
