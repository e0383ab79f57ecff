# The image study (NSD, Algonauts 2023, the demo): its settings, the config checks a schema
# cannot express, its wildcard constraints, and the file lists of its rules and targets (what
# workflow/rules/common.smk asks of a branch).
import math
import os

from encscale.contracts import group_budget, response_shapes
from encscale.data import algonauts, nsd, prepared, s3
from encscale.encoding import plan
from encscale.encoding.ensemble import ENSEMBLE, predicted_sizes, study_fits
from encscale.scaling.analysis import geometric_sizes
from encscale.simulate.truth import truth_path
from encscale.vision.model_check import model_problems, model_shapes

NSD = config["nsd"]
RAW = NSD["root"] if DATASET == "nsd" else f"resources/{DATASET}"
ALGONAUTS = config["algonauts"]
ATLASES = ALGONAUTS["rois"] if DATASET == "algonauts2023" else config["prepare"]["atlases"]
ATLAS_KEY = "algonauts.rois" if DATASET == "algonauts2023" else "prepare.atlases"
# A lab's own data (any other dataset name): its prepared files, checked by their jobs; the
# atlases are its responses files' rois/ ("all": every column)
PREPARED = None if DATASET in ("demo", "nsd", "algonauts2023") else config["prepared"]
if PREPARED is not None:
    if not (PREPARED["stimuli"] and PREPARED["responses"]):
        config_error(
            "prepared",
            f"dataset '{DATASET}' is not built in (demo, nsd, algonauts2023): give your own "
            'data\'s prepared.stimuli and prepared.responses (README, "Your own dataset")',
        )
    if not Path(PREPARED["stimuli"]).is_file():
        config_error("prepared.stimuli", f"no file {PREPARED['stimuli']}")
    PREPARED_FILES = {s: PREPARED["responses"].format(subject=s) for s in SUBJECTS}
    PREPARED_SHAPES = {}
    for subject, path in PREPARED_FILES.items():
        try:
            PREPARED_SHAPES[subject] = response_shapes(path)
        except (OSError, KeyError) as err:
            config_error(
                "prepared.responses",
                f"subject {subject}: {err} (encscale-check-data lists every problem)",
            )
    ATLASES = ["all", *prepared.responses_atlases(PREPARED_FILES[SUBJECTS[0]])]
    ATLAS_KEY = f"the atlases of {PREPARED_FILES[SUBJECTS[0]]}"
MODELS = list(config["models"])
# {model: family} of the models given one: parameter laws are fitted within each family
MODEL_FAMILIES = {m: e["family"] for m, e in config["models"].items() if "family" in e}
ENC = config["encoding"]
if isinstance(ENC["sizes"], dict):  # a geometric grid
    grid = ENC["sizes"]
    try:
        ENC["sizes"] = geometric_sizes(grid["min"], grid["max"], grid["num"])
    except ValueError as err:
        raise ValueError(f"config key 'encoding.sizes': {err}") from None
SIZES = sorted(ENC["sizes"])
SEEDS = list(range(ENC["n_draws"]))
FIT_JOB = ENC["job"]
FIT_SETTINGS = (
    "n_folds",
    "alphas",
    "pool_sizes",
    "scoring",
    "subsample",
    "device",
    "max_memory_mb",
)


def fit_settings(model):
    """The encoding settings of one model's fits: the study's, with the model's own
    pool_sizes where its entry gives them."""
    settings = {key: ENC[key] for key in FIT_SETTINGS}
    settings["pool_sizes"] = config["models"][model].get("pool_sizes", ENC["pool_sizes"])
    return settings


# timm names, layers and pool sizes checked now, not in a GPU job (cached; no torch here)
MODEL_PROBLEMS = model_problems(
    config["models"], {m: fit_settings(m)["pool_sizes"] for m in MODELS}
)
# features.store none: no feature files; each fit job runs its model (its layers' map
# shapes, parameters and FLOP from the same check)
FEATURES = config["features"]
STORE = FEATURES["store"]
if STORE == "none" and FIT_JOB != "subject_model":
    config_error(
        "features.store",
        "none runs the model in the subject × model fit jobs: it needs encoding.job "
        "subject_model",
    )
if MODEL_PROBLEMS:
    raise ValueError(
        "\n".join(f"config key 'models.{m}': {why}" for m, why in MODEL_PROBLEMS.items())
    )
# One subject × model job writes every size × draw of the model (all of encoding.sizes: the
# small sizes add a few percent to the largest ones' work).
SUBJECT_MODEL_FITS = [
    f"{RESULTS}/fits/{{subject}}/{{model}}/n{size}_s{seed}.h5" for size in SIZES for seed in SEEDS
]
MODEL_SHAPES = (
    model_shapes(config["models"], {m: fit_settings(m)["pool_sizes"] for m in MODELS})
    if STORE == "none"
    else {}
)
GROUP_BYTES = group_budget(
    FEATURES["group_memory_mb"], plan.RATES["cpu" if ENC["device"] == "cpu" else "h100"].memory
)
MAPS_ITEMSIZE = 2 if FEATURES["storage"] == "float16" else 4  # bytes of a held map value


def check_model_key(key, value, ensemble=False):
    if value not in MODELS and not (ensemble and value == ENSEMBLE):
        also = f" or '{ENSEMBLE}'" if ensemble else ""
        config_error(key, f"model '{value}' is not in models ({', '.join(MODELS)}){also}")


def check_size_key(key, value):
    if value not in SIZES:
        config_error(key, f"size {value} is not one of encoding.sizes {SIZES}")


config["scaling"].setdefault("data_model", MODELS[-1])
config["scaling"].setdefault("param_size", SIZES[-1])
config["final"].setdefault("model", config["scaling"]["data_model"])
config["final"].setdefault("size", SIZES[-1])
ENSEMBLE_MODELS = config["ensemble"].setdefault("models", MODELS)
for model in ENSEMBLE_MODELS:
    check_model_key("ensemble.models", model)
check_model_key("scaling.data_model", config["scaling"]["data_model"], ensemble=True)
check_model_key("final.model", config["final"]["model"], ensemble=True)
# One fixed feature set (model, layer, k) fitted at every size: its own data-scaling curve.
FIXED_SET = config["scaling"].get("fixed_set")
if FIXED_SET:
    check_model_key("scaling.fixed_set.model", FIXED_SET["model"])
FIXED_FITS = f"{RESULTS}/fixed_set/fits/{{subject}}/n{{size}}_s{{seed}}.h5"


def fixed_set_fits(subject="{subject}"):
    """The fixed set's fit files of one subject (default: its wildcard), every size × draw."""
    return [FIXED_FITS.format(subject=subject, size=n, seed=s) for n in SIZES for s in SEEDS]


if ENC["subsample"] == "prefix" and ENC["n_draws"] > 1:
    config_error(
        "encoding.n_draws",
        f"{ENC['n_draws']} draws of prefix subsets are all the same rows; set n_draws: 1",
    )
check_size_key("scaling.param_size", config["scaling"]["param_size"])
check_size_key("final.size", config["final"]["size"])
if ENC["n_folds"] > SIZES[0]:
    config_error("encoding.n_folds", f"{ENC['n_folds']} folds exceed the smallest size {SIZES[0]}")
if config["scaling"]["atlas"] not in ATLASES:
    config_error("scaling.atlas", f"atlas '{config['scaling']['atlas']}' is not in {ATLAS_KEY}")
for atlas in config["final"]["atlases"]:
    if atlas not in ATLASES:
        config_error("final.atlases", f"atlas '{atlas}' is not in {ATLAS_KEY}")

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
            config_error(
                "subjects", f"'{subject}' is not simulated (demo.n_subjects = {len(known)})"
            )
    N_SESSIONS = {
        s: math.ceil(
            (DEMO["n_shared"] + DEMO["n_unique"]) * DEMO["n_repeats"] / DEMO["trials_per_session"]
        )
        for s in SUBJECTS
    }
elif DATASET in ("nsd", "algonauts2023"):
    for subject in SUBJECTS:
        if subject not in nsd.SESSIONS:
            config_error("subjects", f"'{subject}' is not an NSD subject (subj01 … subj08)")
    for subject, n in NSD["sessions"].items():
        if subject not in SUBJECTS:
            config_error("nsd.sessions", f"'{subject}' is not in subjects")
        if n > nsd.SESSIONS[subject]:
            config_error(
                "nsd.sessions", f"{subject} completed {nsd.SESSIONS[subject]} sessions, not {n}"
            )
    N_SESSIONS = {s: NSD["sessions"].get(s, nsd.SESSIONS[s]) for s in SUBJECTS}
if DATASET == "algonauts2023":
    for subject in SUBJECTS:
        if not Path(ALGONAUTS["root"], subject).is_dir():
            config_error(
                "algonauts.root",
                f"no Algonauts 2023 download of {subject} under {ALGONAUTS['root']} (its "
                f'{subject}/ folder): download the challenge\'s data (README, "Real data") '
                "and set algonauts.root to the folder that holds subj01/ … subj08/",
            )
        n_train = algonauts.count_training_images(ALGONAUTS["root"], subject)
        n_fit = n_train - algonauts.holdout_count(n_train, ALGONAUTS["holdout"])
        if n_train and SIZES[-1] > n_fit:
            config_error(
                "encoding.sizes",
                f"size {SIZES[-1]} is larger than the {n_fit} training images of {subject} "
                f"left after the held-out {ALGONAUTS['holdout']} (algonauts.holdout)",
            )
if PREPARED is not None:
    for subject, shapes in PREPARED_SHAPES.items():
        if SIZES[-1] > shapes["n_train"]:
            config_error(
                "encoding.sizes",
                f"size {SIZES[-1]} is larger than the {shapes['n_train']} training samples of "
                f"{subject} ({PREPARED_FILES[subject]})",
            )
BETAS = config["prepare"]["beta_version"]
MASK_ROI = config["prepare"]["mask_roi"]
ROI_FILES = list(dict.fromkeys([*([MASK_ROI] if MASK_ROI else []), *config["prepare"]["atlases"]]))
FETCH_NSD = NSD["source"] == "s3" and (
    DATASET == "nsd" or (DATASET == "algonauts2023" and ALGONAUTS["ncsnr"] == "nsd")
)
MANIFEST = s3.read_manifest(NSD["manifest"]) if NSD["manifest"] else {}
NSD_SOURCE = {k: NSD[k] for k in ("bucket", "endpoint_url", "region", "credentials", "retries")}
STIMULI_REMOTE = FETCH_NSD and DATASET == "nsd" and NSD["stimuli"] == "seen"


def planned_fit_rows(subject):
    """(stimuli, evaluation stimuli, columns) of a subject to plan with before its responses
    file exists: the demo's simulated sizes (every voxel of its volume); NSD's images the
    subject saw in its sessions and nsdgeneral's voxels, about (encscale.data.nsd); Algonauts
    2023's released images and vertices (encscale.data.algonauts); a prepared dataset's
    files."""
    if DATASET == "demo":
        rows = DEMO["n_unique"] + DEMO["n_shared"]
        return rows, DEMO["n_shared"], math.prod(DEMO["volume_shape"])
    if PREPARED is not None:
        shapes = PREPARED_SHAPES[subject]
        n_eval = shapes["n_test"] + shapes["n_challenge"]
        return shapes["n_train"] + n_eval, n_eval, shapes["columns"]
    if DATASET == "algonauts2023":
        train, test = algonauts.TRAIN_IMAGES[subject], algonauts.TEST_IMAGES[subject]
        return (
            train + test,
            test + algonauts.holdout_count(train, ALGONAUTS["holdout"]),
            (algonauts.VERTICES[subject]),
        )
    seen, shared = nsd.planned_images(subject, N_SESSIONS[subject])
    return seen, shared, nsd.PLANNING_VOXELS


def fit_job_shapes(wildcards, input, settings=None, model=None):
    """A subject × model job's shapes, from its files (before they exist, from
    planned_fit_rows and every set on the kernel route; features.store none: from the
    model's map shapes); ``settings``: the job's encoding settings (default its model's)."""
    draws = [size for size in SIZES for _ in SEEDS]
    model = model or wildcards.model
    settings = settings or fit_settings(model)
    if model in MODEL_SHAPES:
        return plan.map_shapes(
            **job_rows(wildcards.subject, input),
            draws=draws,
            settings=settings,
            maps=MODEL_SHAPES[model]["maps"],
        )
    if STORE == "file" and os.path.exists(input.responses) and os.path.exists(input.features):
        return plan.fit_job_shapes(input.responses, input.features, draws, settings)
    rows, n_eval, columns = planned_fit_rows(wildcards.subject)
    return plan.planned_shapes(
        rows=rows, n_eval=n_eval, voxels=columns, draws=draws, settings=settings
    )


def job_rows(subject, input):
    """rows, n_eval and voxels of a subject's fit job: its responses file's, or planned."""
    if os.path.exists(input.responses):
        sizes = response_shapes(input.responses)
        n_eval = sizes["n_test"] + sizes["n_challenge"]
        return dict(rows=sizes["n_train"] + n_eval, n_eval=n_eval, voxels=sizes["columns"])
    rows, n_eval, voxels = planned_fit_rows(subject)
    return dict(rows=rows, n_eval=n_eval, voxels=voxels)


def model_maps_mb(model, rows):
    """MB a fit job that runs ``model`` (features.store none) adds: its weights, one group of
    layers' maps, a batch's activations (encscale.encoding.plan.model_maps_bytes); 0 with
    feature files, or the group's budget alone for a plugin model."""
    if STORE == "file":
        return 0
    if model not in MODEL_SHAPES:
        return GROUP_BYTES // 2**20
    shape = MODEL_SHAPES[model]
    held = plan.model_maps_bytes(
        rows, shape["maps"], shape["n_params"], MAPS_ITEMSIZE, GROUP_BYTES, FEATURES["batch_size"]
    )
    return math.ceil(held / 2**20)


def forward_flop(model, rows):
    """FLOP of a store-none fit job's forward passes: one per layer group over its rows, each
    as deep as the group's deepest layer."""
    if model not in MODEL_SHAPES:
        return 0.0
    shape = MODEL_SHAPES[model]
    passes = plan.model_maps_depth(rows, shape["maps"], MAPS_ITEMSIZE, GROUP_BYTES)
    return passes * rows * shape["flops"]


def fit_job_mem_mb(wildcards, input, attempt):
    shapes = fit_job_shapes(wildcards, input)
    return plan.mem_mb(shapes, attempt) + model_maps_mb(wildcards.model, shapes.rows)


def fit_job_runtime(wildcards, input, attempt):
    """Minutes for a subject × model job: its work and reading its features file at the
    device's rates (encscale.encoding.plan.runtime_min); before the files exist, the planned
    shapes, which know one layer's sets only."""
    return fit_runtime(fit_job_shapes(wildcards, input), input, attempt, wildcards.model)


def fixed_set_settings():
    """The fixed set's fits: its model's settings, pooled to its k only."""
    return {**fit_settings(FIXED_SET["model"]), "pool_sizes": [FIXED_SET["k"]]}


def fixed_set_shapes(wildcards, input):
    return fit_job_shapes(wildcards, input, fixed_set_settings(), FIXED_SET["model"])


def fixed_set_mem_mb(wildcards, input, attempt):
    shapes = fixed_set_shapes(wildcards, input)
    return plan.mem_mb(shapes, attempt) + model_maps_mb(FIXED_SET["model"], shapes.rows)


def fixed_set_runtime(wildcards, input, attempt):
    return fit_runtime(fixed_set_shapes(wildcards, input), input, attempt, FIXED_SET["model"])


def fixed_set_gpu_mem_mb(wildcards, input, attempt):
    return gpu_mem_mb(fixed_set_shapes(wildcards, input), attempt, FIXED_SET["model"])


def fit_job_gpu_mem_mb(wildcards, input, attempt):
    return gpu_mem_mb(fit_job_shapes(wildcards, input), attempt, wildcards.model)


def fit_runtime(shapes, input, attempt, model):
    """Minutes of a fit job of ``shapes`` that reads its features file (0 bytes before it
    exists), or runs ``model`` over its images (features.store none), at the device's
    rates."""
    read = (
        os.path.getsize(input.features) if STORE == "file" and os.path.exists(input.features) else 0
    )
    half = FEATURES["precision"] != "fp32"
    return plan.runtime_min(
        shapes, ENC["device"], read, attempt, forward_flop(model, shapes.rows), half
    )


def gpu_mem_mb(shapes, attempt, model):
    """Device memory of a fit job on a GPU: its peak less the interpreter's, and what running
    the model adds (0 on the CPU)."""
    if ENC["device"] == "cpu":
        return 0
    peak = plan.mem_mb(shapes, attempt) - plan.BASE_BYTES // 2**20
    return peak + model_maps_mb(model, shapes.rows)


def features_input(model):
    """A fit job's model input: its features file, or (features.store none) the stimuli and
    the weights file it runs the model with."""
    if STORE == "file":
        return {"features": f"{RESULTS}/features/{model}.h5"}
    return {"stimuli": f"{RESULTS}/stimuli.h5", "weights": weights_input(model)}


def model_maps_params(model):
    """How a store-none fit job runs ``model`` (encscale.vision.live); None with files."""
    if STORE == "file":
        return None
    keys = ("batch_size", "precision", "storage", "pixel_norm", "prefix_tokens", "offline")
    keys += ("group_memory_mb",)
    spec = config["models"][model]
    return dict(name=model, spec=spec, device=ENC["device"], **{k: FEATURES[k] for k in keys})


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


def algonauts_subject_files(subject):
    """The files of one subject's Algonauts 2023 download that preparation reads."""
    root = ALGONAUTS["root"]
    files = dict(
        fmri=[algonauts.fmri_path(root, subject, hemi) for hemi in ("lh", "rh")],
        images=[algonauts.images_dir(root, subject, split) for split in ("train", "test")],
        roi_masks=[
            algonauts.roi_mask_path(root, subject, hemi, roi)
            for hemi in ("lh", "rh")
            for roi in ATLASES
        ],
        roi_mappings=[algonauts.roi_mapping_path(root, subject, roi) for roi in ATLASES],
    )
    if ALGONAUTS["ncsnr"] == "nsd":
        files["ncsnr"] = [
            nsd.fsaverage_ncsnr_path(NSD["root"], subject, hemi, BETAS) for hemi in ("lh", "rh")
        ]
        if ALGONAUTS["n_repeats"] is None:  # each held-out image's trials, counted
            files["design"] = nsd.expdesign_path(NSD["root"])
        files["fsaverage_masks"] = [
            algonauts.fsaverage_mask_path(root, subject, hemi) for hemi in ("lh", "rh")
        ]
    return files


wildcard_constraints:
    dataset=DATASET,
    subject=r"subj\d\d" if PREPARED is None else "|".join(SUBJECTS),
    model="|".join([*MODELS, ENSEMBLE]),
    size=r"\d+",
    seed=r"\d+",


SUBMISSION = config["submission"]
SUBMISSION.setdefault("models", MODELS)
SUBMISSION.setdefault("size", SIZES[-1])
for model in SUBMISSION["models"]:
    check_model_key("submission.models", model)
check_size_key("submission.size", SUBMISSION["size"])


HAS_ENSEMBLE = len(ENSEMBLE_MODELS) >= 2
if not HAS_ENSEMBLE and ENSEMBLE in (config["scaling"]["data_model"], config["final"]["model"]):
    config_error("ensemble.models", "an ensemble needs two models or more")


def fit_combinations():
    """(model, size) pairs the outputs need (encscale.encoding.ensemble.study_fits)."""
    return study_fits(config, SIZES)


def prediction_sizes(model):
    """The sizes at which ``model``'s fit files keep their test predictions
    (encscale.encoding.ensemble.predicted_sizes): every size (None), or with
    encoding.predictions needed only those an ensemble reads."""
    return predicted_sizes(config, SIZES, model)


def fit_paths(model, sizes, subjects=SUBJECTS):
    """Fit files of ``model`` at ``sizes``, every draw of ``subjects``."""
    return [
        f"{RESULTS}/fits/{subject}/{model}/n{size}_s{seed}.h5"
        for subject in subjects
        for size in sizes
        for seed in SEEDS
    ]


def param_scaling_fits():
    """Fit files of the parameter-scaling analysis: every model at scaling.param_size."""
    return [f for m in MODELS for f in fit_paths(m, [config["scaling"]["param_size"]])]


def submission_fits(name, subject):
    """Fits whose challenge predictions make submission ``name``: a model, or the ensemble;
    the refits on every training image (submission.refit all), or the fits at
    submission.size."""
    models = SUBMISSION["models"] if name == "ensemble" else [name]
    if SUBMISSION["refit"] == "all":
        return [f"{RESULTS}/submission/fits/{subject}/{m}.h5" for m in models]
    return [f"{RESULTS}/fits/{subject}/{m}/n{SUBMISSION['size']}_s0.h5" for m in models]


def submission_fit_mem_mb(wildcards, input, attempt):
    """Memory of a refit on every training image: a subject × model job of one draw."""
    shapes = submission_fit_shapes(wildcards, input)
    return plan.mem_mb(shapes, attempt) + model_maps_mb(wildcards.model, shapes.rows)


def submission_fit_gpu_mem_mb(wildcards, input, attempt):
    return gpu_mem_mb(submission_fit_shapes(wildcards, input), attempt, wildcards.model)


def submission_fit_runtime(wildcards, input, attempt):
    shapes = submission_fit_shapes(wildcards, input)
    return fit_runtime(shapes, input, attempt, wildcards.model)


def submission_fit_shapes(wildcards, input):
    """The refit's shapes: one draw of every training image (train and test splits)."""
    settings = fit_settings(wildcards.model)
    rows = job_rows(wildcards.subject, input)
    draws = [rows["rows"] - rows["n_eval"]]
    if wildcards.model in MODEL_SHAPES:
        maps = MODEL_SHAPES[wildcards.model]["maps"]
        return plan.map_shapes(**rows, draws=draws, settings=settings, maps=maps)
    if STORE == "file" and os.path.exists(input.responses) and os.path.exists(input.features):
        sizes = response_shapes(input.responses)
        draws = [sizes["n_train"] + sizes["n_test"]]
        return plan.fit_job_shapes(input.responses, input.features, draws, settings)
    return plan.planned_shapes(**rows, draws=draws, settings=settings)


def fit_names():
    """``{subject}/{model}/n{size}_s{seed}`` of every fit the outputs need."""
    return [
        f"{subject}/{model}/n{size}_s{seed}"
        for subject in SUBJECTS
        for model, size in fit_combinations()
        for seed in SEEDS
    ]


def h5_outputs():
    """Every HDF5 file the study writes (each records its provenance); a subject × model
    job writes every size × draw, needed or not."""
    needed = set(fit_names())
    raw = [nsd.stimuli_path(RAW), *(truth_path(RAW, s) for s in SUBJECTS)]
    return [
        *(raw if DATASET == "demo" else []),
        f"{RESULTS}/stimuli.h5",
        *responses_files().values(),
        *(f"{RESULTS}/features/{model}.h5" for model in MODELS if STORE == "file"),
        *(f"{RESULTS}/fits/{name}.h5" for name in fit_names()),
        *(
            f"{RESULTS}/fits/{subject}/{model}/n{size}_s{seed}.h5"
            for subject in SUBJECTS
            for model in (MODELS if FIT_JOB == "subject_model" else [])
            for size in SIZES
            for seed in SEEDS
            if f"{subject}/{model}/n{size}_s{seed}" not in needed
        ),
    ]


def benchmark_files():
    """{rule: benchmark files} of the heavy rules' jobs the study runs."""
    files = dict(
        prepare_stimuli=[benchmark_path("prepare_stimuli")],
        prepare_subject=[benchmark_path("prepare_subject", s) for s in SUBJECTS],
    )
    if STORE == "file":
        files["extract_features"] = [benchmark_path("extract_features", m) for m in MODELS]
    if FIT_JOB == "subject_model":
        files["fit_subject_model"] = [
            benchmark_path("fit_subject_model", f"{s}/{m}") for s in SUBJECTS for m in MODELS
        ]
    else:
        files["fit_encoding"] = [
            benchmark_path("fit_encoding", name)
            for name in fit_names()
            if f"/{ENSEMBLE}/" not in name
        ]
    if DATASET == "demo":
        files = {"simulate_demo": [benchmark_path("simulate_demo")], **files}
    return files


# NIfTI volumes; Algonauts: fsaverage surfaces; a prepared dataset: volumes, where it has one
VOLUME_MAPS = DATASET != "algonauts2023" and (
    PREPARED is None or prepared.has_volume(PREPARED_FILES[SUBJECTS[0]])
)
BRAIN_MAPS = VOLUME_MAPS or DATASET == "algonauts2023"
MAP_NAMES = ("accuracy", "slope")


def map_files(subject):
    """The brain maps of one subject: per-voxel NIfTI volumes, or per-hemisphere .mgh."""
    if not BRAIN_MAPS:
        return []
    if VOLUME_MAPS:
        return [f"{RESULTS}/maps/{subject}/{name}.nii.gz" for name in MAP_NAMES]
    return [f"{RESULTS}/maps/{subject}/{h}.{name}.mgh" for name in MAP_NAMES for h in ("lh", "rh")]


def map_inputs(wildcards):
    final = config["final"]
    files = dict(
        accuracy=fit_paths(final["model"], [final["size"]], [wildcards.subject]),
        slope=fit_paths(config["scaling"]["data_model"], SIZES, [wildcards.subject]),
        responses=f"{RESULTS}/responses/{wildcards.subject}.h5",
    )
    if not VOLUME_MAPS:
        files["fsaverage_masks"] = [
            algonauts.fsaverage_mask_path(ALGONAUTS["root"], wildcards.subject, hemi)
            for hemi in ("lh", "rh")
        ]
    return files


def map_title(subject, name):
    if name == "accuracy":
        final = config["final"]
        return f"{subject}: test r, {final['model']}, {final['size']} samples"
    model = config["scaling"]["data_model"]
    return f"{subject}: slope of r per decade of training samples, {model}"


def brain_map_figures():
    """Figures of the brain maps (Algonauts surfaces only with brain_maps.fsaverage_dir)."""
    if not BRAIN_MAPS or (not VOLUME_MAPS and not config["brain_maps"]["fsaverage_dir"]):
        return []
    return [
        f"{RESULTS}/figures/brain_maps/{s}_{name}.{ext}"
        for s in SUBJECTS
        for name in MAP_NAMES
        for ext in ("png", "svg")
    ]


def final_targets():
    figures = [
        f"{RESULTS}/figures/{name}.{ext}"
        for name in ("data_scaling", "param_scaling", "roi_scores")
        for ext in ("png", "svg")
    ]
    targets = [
        *figures,
        *brain_map_figures(),
        *(f for s in SUBJECTS for f in map_files(s)),
        *(
            f"{RESULTS}/scaling/{name}.tsv"
            for name in ("data_scaling", "param_scaling", "extrapolation")
        ),
        *(
            f"{RESULTS}/provenance/{name}"
            for name in ("config.yaml", "software.tsv", "runtimes.tsv")
        ),
    ]
    if FIXED_SET:
        targets += [f"{RESULTS}/figures/data_scaling_fixed_set.{ext}" for ext in ("png", "svg")]
    if DATASET == "algonauts2023":
        names = [*SUBMISSION["models"], *(["ensemble"] if len(SUBMISSION["models"]) > 1 else [])]
        targets += [f"{RESULTS}/submission/{name}.zip" for name in names]
    return targets
