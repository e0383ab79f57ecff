# What both studies share: the dataset's output folder and small helpers of every rule file.
#
# A study's branch (workflow/rules/images/ or workflow/rules/movies/, included after this
# file) must define, before the shared rules (encoding.smk, provenance.smk) and `rule all`
# are included:
#   MODELS              the names of the study's models (its GPT-2 runs); fit_encoding's
#                       {model}
#   ENC                 the encoding settings: n_folds, alphas, scoring, subsample, device
#   FIT_JOB             "subject_model" (then also SUBJECT_MODEL_FITS, the output
#                       patterns, and fit_job_mem_mb) or "fit"
#   fit_settings(model) the encoding settings one model's fits read
#   fit_names()         "{subject}/{model}/n{size}_s{seed}" of every fit its outputs need
#   h5_outputs()        every HDF5 file it writes (the software table reads their provenance)
#   benchmark_files()   {rule: benchmark files} of its heavy jobs (the runtime table)
#   final_targets()     the files of `rule all`
#   wildcard_constraints of dataset, subject, model, size and seed
import os

from encscale.encoding import plan

DATASET = config["dataset"]
RESULTS = f"results/{DATASET}"
SUBJECTS = config["subjects"]


def config_error(key, message):
    raise ValueError(f"config key '{key}': {message}")


def responses_files():
    return {subject: f"{RESULTS}/responses/{subject}.h5" for subject in SUBJECTS}


def benchmark_path(rule, name=None):
    """The benchmark file of a job of ``rule`` (``name``: its wildcards as a path)."""
    return f"{RESULTS}/benchmarks/{rule}/{name}.tsv" if name else f"{RESULTS}/benchmarks/{rule}.tsv"


def gpu_resources(device):
    """The GPUs a job on ``device`` (cpu, cuda, cuda:N) asks the scheduler for."""
    return 1 if device.startswith("cuda") else 0


def one_fit_mem_mb(wildcards, input, attempt):
    """Memory of a fit file's job (rule fit_encoding) from its input files' shapes
    (encscale.encoding.plan.one_fit_mem_mb); before they exist, in a dry run, the 4000 MB
    of a small fit: Snakemake computes it again from the files before the job runs."""
    if not (os.path.exists(input.responses) and os.path.exists(input.features)):
        return 4000
    size = None if wildcards.size == "all" else int(wildcards.size)
    settings = fit_settings(wildcards.model)
    return plan.one_fit_mem_mb(input.responses, input.features, size, settings, attempt)


def score_files():
    return [f"{RESULTS}/scores/{name}.tsv" for name in fit_names()]
