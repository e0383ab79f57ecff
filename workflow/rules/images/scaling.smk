# Scaling laws per ROI with bootstrap intervals and extrapolation to fractions of the noise
# ceiling (encscale.scaling).


localrules:
    fit_scaling,


rule fit_scaling:
    input:
        data=fit_paths(config["scaling"]["data_model"], SIZES),
        param=param_scaling_fits(),
        responses=list(responses_files().values()),
    output:
        data=report(
            f"{RESULTS}/scaling/data_scaling.tsv",
            caption="../../report/scaling_tables.rst",
            category="Tables",
            labels={"table": "data-scaling laws"},
        ),
        param=report(
            f"{RESULTS}/scaling/param_scaling.tsv",
            caption="../../report/scaling_tables.rst",
            category="Tables",
            labels={"table": "parameter-scaling laws"},
        ),
        extrapolation=report(
            f"{RESULTS}/scaling/extrapolation.tsv",
            caption="../../report/extrapolation_table.rst",
            category="Tables",
            labels={"table": "extrapolations"},
        ),
    log:
        f"logs/{DATASET}/fit_scaling.log",
    conda:
        "../../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=8000 if DATASET != "demo" else 2000,
    params:
        scaling=config["scaling"],
        subjects=SUBJECTS,
        families=MODEL_FAMILIES,
    script:
        "../../scripts/fit_scaling.py"


# One fixed feature set (scaling.fixed_set: a model's layer at one k, as the first study's
# notebook drew its data-scaling curve) fitted at every size × draw: its scores, its own
# data-scaling table and figure, apart from the curve that re-selects sets at every size.
if FIXED_SET:

    localrules:
        score_fixed_set,
        collect_fixed_set_scores,
        fit_fixed_set_scaling,
        figure_fixed_set_scaling,

    rule fit_fixed_set:
        input:
            **features_input(FIXED_SET["model"]),
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            fixed_set_fits(),
        log:
            f"logs/{DATASET}/fit_fixed_set/{{subject}}.log",
        benchmark:
            benchmark_path("fit_fixed_set", "{subject}")
        conda:
            "../../../envs/encoding.yaml"
        threads: 2
        resources:
            mem_mb=fixed_set_mem_mb,
            runtime=fixed_set_runtime,
            gpu_mem_mb=fixed_set_gpu_mem_mb,
            gpu=gpu_resources(ENC["device"]),
        params:
            settings=fixed_set_settings(),
            layers=[FIXED_SET["layer"]],
            model_maps=model_maps_params(FIXED_SET["model"]),
            predict_sizes=None if ENC["predictions"] == "all" else [],
        script:
            "../../scripts/fit_subject_model.py"

    rule score_fixed_set:
        input:
            fit=FIXED_FITS,
            responses=f"{RESULTS}/responses/{{subject}}.h5",
        output:
            f"{RESULTS}/fixed_set/scores/{{subject}}/n{{size}}_s{{seed}}.tsv",
        log:
            f"logs/{DATASET}/score_fixed_set/{{subject}}/n{{size}}_s{{seed}}.log",
        conda:
            "../../../envs/analysis.yaml"
        params:
            min_noise_ceiling=ENC["min_noise_ceiling"],
        script:
            "../../scripts/score_fit.py"

    rule collect_fixed_set_scores:
        input:
            [
                f"{RESULTS}/fixed_set/scores/{s}/n{n}_s{d}.tsv"
                for s in SUBJECTS
                for n in SIZES
                for d in SEEDS
            ],
        output:
            f"{RESULTS}/fixed_set/scores.tsv",
        log:
            f"logs/{DATASET}/collect_fixed_set_scores.log",
        conda:
            "../../../envs/analysis.yaml"
        script:
            "../../scripts/collect_scores.py"

    rule fit_fixed_set_scaling:
        input:
            fits=[f for s in SUBJECTS for f in fixed_set_fits(s)],
            responses=list(responses_files().values()),
        output:
            table=f"{RESULTS}/fixed_set/data_scaling.tsv",
            extrapolation=f"{RESULTS}/fixed_set/extrapolation.tsv",
        log:
            f"logs/{DATASET}/fit_fixed_set_scaling.log",
        conda:
            "../../../envs/analysis.yaml"
        resources:
            mem_mb=8000 if DATASET != "demo" else 2000,
        params:
            scaling=config["scaling"],
            subjects=SUBJECTS,
        script:
            "../../scripts/fit_fixed_set_scaling.py"

    rule figure_fixed_set_scaling:
        input:
            scores=f"{RESULTS}/fixed_set/scores.tsv",
            fits=f"{RESULTS}/fixed_set/data_scaling.tsv",
            extrapolation=f"{RESULTS}/fixed_set/extrapolation.tsv",
        output:
            png=report(
                f"{RESULTS}/figures/data_scaling_fixed_set.png",
                caption="../../report/data_scaling_fixed_set.rst",
                category="Scaling laws",
            ),
            svg=f"{RESULTS}/figures/data_scaling_fixed_set.svg",
        log:
            f"logs/{DATASET}/figure_fixed_set_scaling.log",
        conda:
            "../../../envs/analysis.yaml"
        params:
            atlas=config["scaling"]["atlas"],
            model=FIXED_SET["model"],
            label=f"{FIXED_SET['model']}, {FIXED_SET['layer']}, k = {FIXED_SET['k']} (fixed set)",
        script:
            "../../scripts/figure_data_scaling.py"
