# The report's Provenance section: the study's config, the software that made the outputs
# (read from their HDF5 attributes) and the runtimes of the heavy rules (their benchmarks);
# both studies (the base modules: encscale.io, encscale.provenance).


localrules:
    study_config,
    software_versions,
    rule_runtimes,


rule study_config:
    output:
        report(
            f"{RESULTS}/provenance/config.yaml",
            caption="../report/config.rst",
            category="Provenance",
        ),
    log:
        f"logs/{DATASET}/study_config.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        config=config,
    script:
        "../scripts/study_config.py"


rule software_versions:
    input:
        h5_outputs(),
    output:
        report(
            f"{RESULTS}/provenance/software.tsv",
            caption="../report/software.rst",
            category="Provenance",
        ),
    log:
        f"logs/{DATASET}/software_versions.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/software_versions.py"


rule rule_runtimes:
    input:
        unpack(lambda w: benchmark_files()),
    output:
        report(
            f"{RESULTS}/provenance/runtimes.tsv",
            caption="../report/runtimes.rst",
            category="Provenance",
        ),
    log:
        f"logs/{DATASET}/rule_runtimes.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/rule_runtimes.py"
