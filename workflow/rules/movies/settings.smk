# The movie study (CNeuroMod, the demo_movies): its settings, the config checks a schema
# cannot express, its wildcard constraints, and the file lists of its rules and targets
# (what workflow/rules/common.smk asks of a branch).
import glob
import math
import os

from encscale.data import cneuromod
from encscale.simulate.truth import truth_path
from encscale.video.budget import code_shape, gpt_mem_mb, tokenize_mem_mb
from encscale.video.grid import run_grid
from encscale.video.heldout import split_validation
from encscale.video.selection import select_movies

CNEUROMOD = config["cneuromod"]
RAW = CNEUROMOD["root"] if DATASET == "cneuromod" else f"resources/{DATASET}"
CLIP = config["clips"]
TOKENIZER_CFG = config["tokenizer"]
GPT = config["gpt"]
ENC = dict(config["encoding"], subsample="random")  # every training TR: no subsample
FIT_JOB = "fit"  # one fit per subject × run already
FIT_SETTINGS = ("n_folds", "alphas", "scoring", "subsample", "device", "pool_sizes", "lag_mode")


def fit_settings(model):
    """The encoding settings of a run's fits (the same for every run)."""
    return {key: ENC[key] for key in FIT_SETTINGS}


try:
    RUNS = run_grid(GPT["grid"], batch_size=GPT["batch_size"], epochs=GPT["epochs"])
except ValueError as err:
    config_error("gpt.grid", str(err))
MODELS = list(RUNS)
GRID_BASE = GPT["grid"]["base"]
TASKS = ["friends"] if DATASET == "demo_movies" else CNEUROMOD["tasks"]

if DATASET == "demo_movies":
    SIM = config["simulate"]
    known = list(cneuromod.SUBJECTS[: SIM["n_subjects"]])
    for subject in SUBJECTS:
        if subject not in known:
            config_error(
                "subjects", f"'{subject}' is not simulated (simulate.n_subjects = {len(known)})"
            )
    AVAILABLE = [f"friends_{run}" for run in SIM["runs"]]
else:
    for subject in SUBJECTS:
        if subject not in cneuromod.SUBJECTS:
            config_error(
                "subjects", f"'{subject}' is not in the release ({', '.join(cneuromod.SUBJECTS)})"
            )
    # Stimulus names from the dataset's tree (an installed DataLad dataset lists every file,
    # fetched or not; install.smk installs it first)
    AVAILABLE = [Path(p).stem for p in glob.glob(f"{RAW}/stimuli/movies/**/*.mkv", recursive=True)]
    if not AVAILABLE:
        config_error(
            "cneuromod.root", f"no movies under {RAW}/stimuli/movies (set cneuromod.source?)"
        )


def select(key, patterns, exclude=()):
    try:
        return select_movies(AVAILABLE, patterns, exclude)
    except ValueError as err:
        config_error(key, str(err))


ENCODING_MOVIES = select("movies.encoding", config["movies"]["encoding"])
TEST_MOVIES = select("movies.test", config["movies"]["test"])
for movie in TEST_MOVIES:
    if movie not in ENCODING_MOVIES:
        config_error("movies.test", f"'{movie}' is not one of the encoding's movies")
if len(TEST_MOVIES) == len(ENCODING_MOVIES):
    config_error("movies.test", "every encoding movie is a test movie: nothing left to train on")
PRETRAIN_MOVIES = (
    select("movies.pretrain", config["movies"]["pretrain"])
    if config["movies"]["pretrain"]
    else [m for m in ENCODING_MOVIES if m not in TEST_MOVIES]
)
# Held-out episodes validate GPT-2; the tokenizer and GPT-2 train on the others
# (encscale.video.heldout).
try:
    PRETRAIN_MOVIES, VALIDATION_MOVIES = split_validation(
        PRETRAIN_MOVIES,
        (
            select("movies.validation", config["movies"]["validation"])
            if config["movies"]["validation"]
            else None
        ),
        TEST_MOVIES,
    )
except ValueError as err:
    config_error("movies.validation", str(err))
TOKENIZER = TOKENIZER_CFG["checkpoint"] or f"{RESULTS}/tokenizer/vqvae.pt"
N_PRETRAIN_CLIPS = GPT["n_val"] + max(p["n_samples"] for p in RUNS.values())
FITS = {(s, run): f"{RESULTS}/fits/{s}/{run}/nall_s0.h5" for s in SUBJECTS for run in MODELS}


def movie_files(movies):
    """Stimulus name → movie file."""
    return {m: cneuromod.movie_path(RAW, m) for m in movies}


def fmri_files(subject):
    return [cneuromod.fmri_path(RAW, subject, task) for task in TASKS]


def cneuromod_fetch_paths():
    """Files of the release the study reads, relative to its root."""
    movies = sorted({*ENCODING_MOVIES, *PRETRAIN_MOVIES, *VALIDATION_MOVIES})
    files = [*movie_files(movies).values()]
    files += [f for s in SUBJECTS for f in fmri_files(s)]
    return [os.path.relpath(f, RAW) for f in files]


wildcard_constraints:
    dataset=DATASET,
    subject=r"sub-\d\d",
    model="|".join(MODELS),
    size="all",
    seed="0",


def fit_names():
    return [f"{subject}/{run}/nall_s0" for subject in SUBJECTS for run in MODELS]


def gpt_files(name):
    return [f"{RESULTS}/gpt/{run}/{name}" for run in MODELS]


def h5_outputs():
    """Every HDF5 file the study writes (each records its provenance)."""
    return [
        f"{RESULTS}/tokens/pretrain.h5",
        f"{RESULTS}/tokens/validation.h5",
        f"{RESULTS}/stimuli.h5",
        *responses_files().values(),
        *(f"{RESULTS}/features/{run}.h5" for run in MODELS),
        *FITS.values(),
    ]


def benchmark_files():
    """{rule: benchmark files} of the heavy rules' jobs the study runs."""
    files = dict(
        tokenize_clips=[benchmark_path("tokenize_clips")],
        tokenize_validation_clips=[benchmark_path("tokenize_validation_clips")],
        train_gpt=[benchmark_path("train_gpt", run) for run in MODELS],
        prepare_stimuli=[benchmark_path("prepare_stimuli")],
        prepare_subject=[benchmark_path("prepare_subject", s) for s in SUBJECTS],
        extract_features=[benchmark_path("extract_features", run) for run in MODELS],
        fit_encoding=[benchmark_path("fit_encoding", name) for name in fit_names()],
    )
    if not TOKENIZER_CFG["checkpoint"]:
        files = {"train_tokenizer": [benchmark_path("train_tokenizer")], **files}
    if DATASET == "demo_movies":
        files = {"simulate_movies": [benchmark_path("simulate_movies")], **files}
    return files


VIDEO_FIGURES = ("architecture", "data_size", "precision", "compute_frontier")


def final_targets():
    return [
        *(f"{RESULTS}/figures/{name}.{ext}" for name in VIDEO_FIGURES for ext in ("png", "svg")),
        f"{RESULTS}/training/runs.tsv",
        f"{RESULTS}/scores/scores.tsv",
        *(
            f"{RESULTS}/provenance/{name}"
            for name in ("config.yaml", "software.tsv", "runtimes.tsv")
        ),
    ]


# Memory of the tokenizer's encoding job and of each GPT-2 run, from their shapes
if TOKENIZER_CFG["attention"] == "axial" and TOKENIZER_CFG["channels"] % 2:
    config_error("tokenizer.channels", "must be even with axial attention (2 heads)")


def tokenize_clips_mem_mb(wildcards, attempt):
    """The encoding job's memory from the shapes (encscale.video.budget): the model, a batch of
    clips and the codes' buffer, with a few bytes per clip; the codes go to the file as they
    are encoded."""
    return tokenize_mem_mb(
        attempt,
        n=N_PRETRAIN_CLIPS,
        n_movies=len(PRETRAIN_MOVIES),
        clip=CLIP,
        tokenizer=TOKENIZER_CFG,
        batch_size=TOKENIZER_CFG["encode_batch_size"],
        device=TOKENIZER_CFG["device"],
    )


def train_gpt_mem_mb(wildcards, attempt):
    """A run's memory from its shapes (encscale.video.budget.gpt_mem_mb): the codes of its
    own clips (it reads only its rows of the codes files), the model and AdamW's state."""
    point = RUNS[wildcards.model]
    positions = math.prod(code_shape(TOKENIZER_CFG["downsample"], CLIP["frames"], CLIP["size"]))
    return gpt_mem_mb(
        attempt,
        n_train=point["n_samples"],
        n_val=GPT["n_val"],
        code_positions=positions,
        width=point["width"],
        layers=point["layers"],
        heads=point["heads"],
        context=GPT["context"] or positions + 1,
        n_codes=TOKENIZER_CFG["n_codes"],
        batch_size=GPT["batch_size"],
        device=GPT["device"],
    )
