# The demo's raw data: movies with planted signals and the subjects' parcel responses to
# them, simulated into resources/demo_movies in the CNeuroMod release's layout
# (encscale.simulate).
if DATASET == "demo_movies":

    rule simulate_movies:
        output:
            movies=list(movie_files(AVAILABLE).values()),
            fmri=[f for s in SUBJECTS for f in fmri_files(s)],
            truth=[truth_path(RAW, s) for s in SUBJECTS],
        log:
            f"logs/{DATASET}/simulate_movies.log",
        benchmark:
            benchmark_path("simulate_movies")
        conda:
            "../../../envs/data.yaml"
        params:
            sim=config["simulate"],
            root=lambda w, output: Path(output.truth[0]).parents[1].as_posix(),
        script:
            "../../scripts/simulate_movies.py"
