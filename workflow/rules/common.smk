# Config checks that a schema cannot express, wildcard constraints and target lists.
import math

from encscale import nsd, simulate

DATASET = config["dataset"]
RESULTS = f"results/{DATASET}"
RAW = config["nsd"]["root"] if DATASET == "nsd" else f"resources/{DATASET}"
MODELS = list(config["models"])
SUBJECTS = config["subjects"]
ENC = config["encoding"]
SIZES = sorted(ENC["sizes"])
SEEDS = list(range(ENC["n_draws"]))


def config_error(key, message):
    raise ValueError(f"config key '{key}': {message}")


def check_model_key(key, value):
    if value not in MODELS:
        config_error(key, f"model '{value}' is not in models ({', '.join(MODELS)})")


def check_size_key(key, value):
    if value not in SIZES:
        config_error(key, f"size {value} is not one of encoding.sizes {SIZES}")


config["scaling"].setdefault("data_model", MODELS[-1])
config["scaling"].setdefault("param_size", SIZES[-1])
config["final"].setdefault("model", config["scaling"]["data_model"])
config["final"].setdefault("size", SIZES[-1])
check_model_key("scaling.data_model", config["scaling"]["data_model"])
check_model_key("final.model", config["final"]["model"])
check_size_key("scaling.param_size", config["scaling"]["param_size"])
check_size_key("final.size", config["final"]["size"])
if ENC["n_folds"] > SIZES[0]:
    config_error("encoding.n_folds", f"{ENC['n_folds']} folds exceed the smallest size {SIZES[0]}")
if config["scaling"]["atlas"] not in config["prepare"]["atlases"]:
    config_error("scaling.atlas", f"atlas '{config['scaling']['atlas']}' is not in prepare.atlases")
for atlas in config["final"]["atlases"]:
    if atlas not in config["prepare"]["atlases"]:
        config_error("final.atlases", f"atlas '{atlas}' is not in prepare.atlases")

if DATASET == "demo":
    DEMO = config["demo"]
    N_TRAIN = DEMO["n_unique"]
    if SIZES[-1] > N_TRAIN:
        config_error(
            "encoding.sizes",
            f"size {SIZES[-1]} is larger than the {N_TRAIN} training images per subject of "
            f"the demo dataset (demo.n_unique)",
        )
    known = [f"subj{i + 1:02d}" for i in range(DEMO["n_subjects"])]
    for subject in SUBJECTS:
        if subject not in known:
            config_error("subjects", f"'{subject}' is not simulated (demo.n_subjects = {len(known)})")
    N_SESSIONS = {
        s: math.ceil(
            (DEMO["n_shared"] + DEMO["n_unique"]) * DEMO["n_repeats"] / DEMO["trials_per_session"]
        )
        for s in SUBJECTS
    }
elif DATASET == "nsd":  # a local copy of NSD in its own layout under nsd.root
    for subject in SUBJECTS:
        if subject not in nsd.SESSIONS:
            config_error("subjects", f"'{subject}' is not an NSD subject (subj01 … subj08)")
    N_SESSIONS = {s: nsd.SESSIONS[s] for s in SUBJECTS}
else:
    config_error("dataset", f"'{DATASET}' is not known: use 'demo' or 'nsd' (a local NSD copy)")

BETAS = config["prepare"]["beta_version"]
MASK_ROI = config["prepare"]["mask_roi"]
ROI_FILES = list(dict.fromkeys([*([MASK_ROI] if MASK_ROI else []), *config["prepare"]["atlases"]]))


def weights_input(model):
    """The weights file of a model with `weights: file` (an input of its extraction), else []."""
    spec = config["models"][model]
    return [spec["weights_file"]] if spec.get("weights") == "file" else []


def raw_subject_files(subject):
    """Every raw file of one subject that preparation reads."""
    return dict(
        betas=[nsd.betas_path(RAW, subject, s, BETAS) for s in range(1, N_SESSIONS[subject] + 1)],
        ncsnr=nsd.ncsnr_path(RAW, subject, BETAS),
        brainmask=nsd.brainmask_path(RAW, subject),
        rois=[nsd.roi_path(RAW, subject, name) for name in ROI_FILES],
        ctabs=[nsd.ctab_path(RAW, subject, name) for name in config["prepare"]["atlases"]],
    )


wildcard_constraints:
    dataset=DATASET,
    subject=r"subj\d\d",
    model="|".join(MODELS),
    size=r"\d+",
    seed=r"\d+",


def fit_combinations():
    """(model, size) pairs the figures need: data scaling, parameter scaling, final scores."""
    pairs = {(config["scaling"]["data_model"], size) for size in SIZES}
    pairs |= {(model, config["scaling"]["param_size"]) for model in MODELS}
    pairs.add((config["final"]["model"], config["final"]["size"]))
    return sorted(pairs)


def score_files():
    return [
        f"{RESULTS}/scores/{subject}/{model}/n{size}_s{seed}.tsv"
        for subject in SUBJECTS
        for model, size in fit_combinations()
        for seed in SEEDS
    ]


def final_targets():
    figures = ["data_scaling.png", "param_scaling.png", "roi_scores.png"]
    return [f"{RESULTS}/figures/{name}" for name in figures] + [
        f"{RESULTS}/scaling/data_scaling.tsv",
        f"{RESULTS}/scaling/param_scaling.tsv",
    ]
