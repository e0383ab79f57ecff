# What both studies' rules use: the dataset's output folder and small path helpers.
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


def score_files():
    return [f"{RESULTS}/scores/{name}.tsv" for name in fit_names()]
