# The movie study (CNeuroMod, the demo_movies): its settings, the config checks a schema
# cannot express, its wildcard constraints, and the file lists of its rules and targets
# (what workflow/rules/common.smk asks of a branch).
import glob
import os

from encscale.data import cneuromod
from encscale.simulate.truth import truth_path
from encscale.video.grid import run_grid
from encscale.video.selection import select_movies

CNEUROMOD = config["cneuromod"]
RAW = CNEUROMOD["root"] if DATASET == "cneuromod" else f"resources/{DATASET}"
CLIP = config["clips"]
TOKENIZER_CFG = config["tokenizer"]
GPT = config["gpt"]
ENC = dict(config["encoding"], subsample="random")  # every training TR: no subsample
FIT_JOB = "fit"  # one fit per subject × run already
FIT_SETTINGS = ("n_folds", "alphas", "scoring", "subsample", "device")


def fit_settings(model):
    """The encoding settings of a run's fits (the same for every run)."""
    return {key: ENC[key] for key in FIT_SETTINGS}


try:
    RUNS = run_grid(GPT["grid"])
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
    files = [*movie_files(sorted({*ENCODING_MOVIES, *PRETRAIN_MOVIES})).values()]
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
        f"{RESULTS}/stimuli.h5",
        *responses_files().values(),
        *(f"{RESULTS}/features/{run}.h5" for run in MODELS),
        *FITS.values(),
    ]


def benchmark_files():
    """{rule: benchmark files} of the heavy rules' jobs the study runs."""
    files = dict(
        tokenize_clips=[benchmark_path("tokenize_clips")],
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
