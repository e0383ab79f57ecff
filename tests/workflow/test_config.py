"""The config is validated before anything runs; errors name the offending key."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import NO_NETWORK, REPO, job_counts, run_snakemake

SCHEMAS = REPO / "workflow" / "schemas"


def dry_run_error(tmp_path, config) -> str:
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0, "an invalid config must stop Snakemake"
    return proc.stdout + proc.stderr


def test_demo_config_dry_run_plans_the_study(tmp_path, demo_config):
    proc = run_snakemake(tmp_path, demo_config, "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout + proc.stderr)
    # one job per subject × model; scored: subjects × draws × (data-scaling sizes + 2 other
    # models at the parameter-scaling and, as members of the ensemble, the final size)
    n_fits = 2 * 2 * (4 + 2 * 2)
    n_ensembles = 2 * 2 * 2  # subjects × draws × (parameter-scaling and final size)
    assert counts["fit_subject_model"] == 2 * 3 and "fit_encoding" not in counts
    assert counts["ensemble_fit"] == n_ensembles
    assert counts["score_fit"] == n_fits + n_ensembles
    assert counts["brain_maps"] == 2 and counts["figure_brain_map"] == 4
    assert counts["extract_features"] == 3 and counts["prepare_subject"] == 2
    assert counts["simulate_demo"] == counts["figure_roi_scores"] == 1


def test_geometric_size_grid_and_ensemble_as_final_model(tmp_path, demo_config):
    config = copy.deepcopy(demo_config)
    config["encoding"]["sizes"] = {"min": 100, "max": 700, "num": 4}  # 100, 191, 366, 700
    config["scaling"]["param_size"] = 366
    config["final"]["model"] = "ensemble"
    proc = run_snakemake(tmp_path, config, "-n")
    out = proc.stdout + proc.stderr
    for size in (100, 191, 366, 700):
        assert f"size={size}," in out
    counts = job_counts(run_snakemake(tmp_path, config, "-n", "--quiet", "rules").stdout)
    assert counts["ensemble_fit"] == 2 * 2 * 2  # subjects × draws × (366, 700)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["encoding"].update(n_fold=5), "n_fold"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c["models"]["convnext_s"].update(pretrained=True), "pretrained"),
        (lambda c: c["encoding"].update(n_draws="two"), "n_draws"),
        (lambda c: c["encoding"].update(pool_sizes=[1, "k2"]), "pool_sizes"),
        (lambda c: c["encoding"].update(pool_sizes="every"), "pool_sizes"),
        (lambda c: c["features"].update(pool_sizes=[1, 2]), "pool_sizes"),
        (lambda c: c["encoding"].update(sizes=[100, 5000]), "encoding.sizes"),
        (lambda c: c["scaling"].update(data_model="vit_huge"), "scaling.data_model"),
        (lambda c: c["final"].update(atlases=["streams", "hcp"]), "final.atlases"),
        (lambda c: c["encoding"].update(subsample="prefix"), "encoding.n_draws"),
        (lambda c: c["encoding"].update(sizes={"min": 100, "max": 105, "num": 9}), "duplicates"),
        (lambda c: c["ensemble"].update(models=["convnext_s", "vit"]), "ensemble.models"),
        (lambda c: c["scaling"].update(n_bootstrap=200), "n_bootstrap"),
        (lambda c: c["scaling"].update(ceiling_fractions=[0.5, 1.2]), "ceiling_fractions"),
        (
            lambda c: c["scaling"].update(fixed_set={"model": "vit", "layer": "b", "k": 1}),
            "scaling.fixed_set.model",
        ),
        (lambda c: c["scaling"].update(fixed_set={"model": "convnext_s", "k": 1}), "layer"),
        (lambda c: c["models"]["convnext_s"].update(pool_sizes=[0]), "pool_sizes"),
    ],
)
def test_bad_config_stops_with_the_key_named(tmp_path, demo_config, edit, key):
    config = copy.deepcopy(demo_config)
    edit(config)
    out = dry_run_error(tmp_path, config)
    assert key in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def validated(config: dict, schema: str) -> dict:
    """``config`` validated against ``workflow/schemas/<schema>``, its defaults filled in."""
    from snakemake.utils import validate

    validate(config, str(SCHEMAS / schema), set_default=True)
    return config


MINIMAL_MOVIES = {
    "dataset": "demo_movies",
    "gpt": {
        "grid": {
            "base": {"width": 8, "layers": 1, "heads": 2, "n_samples": 10, "precision": "fp32"}
        }
    },
}


def test_shared_schema_defaults_are_filled_through_refs():
    images = validated({"models": {"m": {"timm": "convnext_atto"}}}, "config.schema.yaml")
    movies = validated(copy.deepcopy(MINIMAL_MOVIES), "movies.schema.yaml")
    alphas = {"log10_min": -1, "log10_max": 5, "num": 13}
    shared = {
        "n_folds": 5,
        "alphas": alphas,
        "scoring": "r",
        "min_noise_ceiling": 1.0,
        "device": "cpu",
    }
    # the study's own keys first, then the shared ones: the order the config had before
    assert list(images["encoding"].items()) == [
        ("sizes", [100, 200, 350, 700]),
        ("n_draws", 2),
        ("subsample", "random"),
        ("pool_sizes", [1, 2, 4, 8]),
        ("job", "subject_model"),
        ("max_memory_mb", None),
        ("predictions", "all"),
        *shared.items(),
    ]
    # the movie study's own keys after the shared ones
    assert list(movies["encoding"].items()) == [
        *shared.items(),
        ("pool_sizes", [1, 2, 4, 8]),
        ("lag_mode", "fir"),
    ]
    assert movies["clips"]["lags"] == [3] and movies["clips"]["window_trs"] == 1
    assert movies["features"]["pooling"] == "mean"
    resources = {"mem_mb": 4000, "runtime": 60}
    assert images["models"]["m"]["resources"] == resources
    assert movies["tokenizer"]["resources"] == resources
    assert movies["gpt"]["resources"] == {"runtime": 60}  # its memory: from its shapes
    assert images["subjects"] == ["subj01", "subj02"] and movies["subjects"] == ["sub-01", "sub-02"]
    assert images["features"]["device"] == movies["gpt"]["device"] == "cpu"
    assert images["features"]["precision"] == movies["features"]["precision"] == "fp32"


@pytest.mark.parametrize(
    ("schema", "edit", "key"),
    [
        ("config.schema.yaml", lambda c: c["encoding"].update(alpha=3), "alpha"),
        ("config.schema.yaml", lambda c: c["encoding"].update(alphas={"step": 1}), "step"),
        ("config.schema.yaml", lambda c: c["models"]["m"].update(resources={"gpus": 1}), "gpus"),
        ("config.schema.yaml", lambda c: c.update(subjects=["sub 01"]), "sub 01"),
        ("config.schema.yaml", lambda c: c.update(dataset="my/lab"), "my/lab"),
        (
            "config.schema.yaml",
            lambda c: c.update(prepared={"responses": "mylab/responses.h5"}),
            "mylab/responses.h5",
        ),
        ("config.schema.yaml", lambda c: c.update(features={"device": "gpu"}), "gpu"),
        (  # NSD has no such folder: b1, b2, b3 are the three it has
            "config.schema.yaml",
            lambda c: c.update(prepare={"beta_version": "betas_fithrf_GLMsingle"}),
            "betas_fithrf_GLMsingle",
        ),
        ("movies.schema.yaml", lambda c: c.update(encoding={"n_draws": 2}), "n_draws"),
        ("movies.schema.yaml", lambda c: c.update(encoding={"sizes": [100]}), "sizes"),
        ("movies.schema.yaml", lambda c: c.update(encoding={"lag_mode": "sum"}), "sum"),
        ("movies.schema.yaml", lambda c: c.update(clips={"lag": 3}), "lag"),
        ("movies.schema.yaml", lambda c: c.update(features={"pooling": "max"}), "max"),
        ("movies.schema.yaml", lambda c: c.update(tokenizer={"resources": {"gpus": 1}}), "gpus"),
        ("movies.schema.yaml", lambda c: c.update(subjects=["subj01"]), "subj01"),
        ("movies.schema.yaml", lambda c: c.update(features={"precision": "fp8"}), "fp8"),
    ],
)
def test_shared_schema_keys_stay_strict(schema, edit, key):
    from snakemake.exceptions import WorkflowError

    config = (
        {"models": {"m": {"timm": "convnext_atto"}}}
        if schema == "config.schema.yaml"
        else copy.deepcopy(MINIMAL_MOVIES)
    )
    validated(config, schema)  # valid as it is
    edit(config)
    with pytest.raises(WorkflowError, match=key):
        validated(config, schema)


def test_snakemake_lint_is_clean(tmp_path, demo_config):
    proc = run_snakemake(tmp_path, demo_config, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def test_rule_files_are_snakefmt_clean():
    """snakefmt with the project's settings (pyproject.toml) would change no rule file."""
    snakefmt = Path(sys.executable).with_name("snakefmt")
    proc = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "file(s) would be left unchanged" in proc.stderr
        and "changed" not in proc.stderr.replace("left unchanged", "")
    )


def placeholder_nsd(root, subjects, beta_version, roi_files) -> None:
    """Empty files wherever the study reads NSD (enough for Snakemake to plan it)."""
    from encscale.data import nsd

    paths = [nsd.expdesign_path(root), nsd.stimuli_path(root)]
    for subject in subjects:
        sessions = range(1, nsd.SESSIONS[subject] + 1)
        paths += [nsd.betas_path(root, subject, s, beta_version) for s in sessions]
        paths += [nsd.ncsnr_path(root, subject, beta_version), nsd.brainmask_path(root, subject)]
        paths += [nsd.roi_path(root, subject, name) for name in roi_files]
        paths += [nsd.ctab_path(root, subject, name) for name in roi_files]
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()


def nsd_study_dry_run(tmp_path, config) -> str:
    """Dry run of an NSD study config in ``tmp_path``, offline; → Snakemake's output."""
    # the demo config where the Snakefile looks for it: a study's config must replace it
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    proc = run_snakemake(tmp_path, config, "-n", env=NO_NETWORK)
    return proc.stdout + proc.stderr


def test_nsd_config_plans_the_whole_study_and_its_fetch_offline(tmp_path):
    from encscale.data import nsd

    config = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    assert len(config["models"]) == 6 and config["subjects"] == sorted(nsd.SESSIONS)
    prep = config["prepare"]
    assert len({prep["mask_roi"], *prep["atlases"]}) == 7
    text = nsd_study_dry_run(tmp_path, config)
    counts = job_counts(text)
    per_subject = 2 + 2 * 7  # ncsnr, brain mask, ROI volumes and label tables
    assert counts["fetch_nsd"] == 2 + sum(nsd.SESSIONS.values()) + 8 * per_subject
    assert counts["prepare_subject"] == 8 and counts["extract_features"] == 6
    assert counts["fit_fixed_set"] == 8  # EVA-02-CLIP-E's block30 unpooled, per subject
    assert "simulate_demo" not in counts
    assert (
        "resources/nsd/nsddata_betas/ppdata/subj04/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
        "betas_session30.nii.gz" in text
    )
    assert "subj04/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session31" not in text
    betas = re.findall(r"func1pt8mm/(betas_[A-Za-z_]+)/", text)
    assert betas and set(betas) == {"betas_fithrf_GLMdenoise_RR"}  # b3 only
    fetches = [block for block in text.split("rule ")[1:] if block.startswith("fetch_nsd:")]
    assert len(fetches) == counts["fetch_nsd"] and all("download_slots=1" in b for b in fetches)
    jobs = [block for block in text.split("rule ")[1:] if block.startswith("extract_features:")]
    planned = {}
    for block in jobs:
        model = block.split("wildcards: model=")[1].split()[0].rstrip(",")
        planned[model] = block.split("resources: ")[1].splitlines()[0]
    assert sorted(planned) == sorted(config["models"])
    for model, resources in planned.items():
        assert "gpu=1" in resources, (model, resources)
        assert f"mem_mb={config['models'][model]['resources']['mem_mb']}" in resources


def test_nsd_local_copy_is_read_not_fetched(tmp_path):
    config = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    config["nsd"].update(source="local", sessions={"subj01": 40})
    config["subjects"] = ["subj01", "subj04"]
    prep = config["prepare"]
    placeholder_nsd(
        tmp_path / config["nsd"]["root"],
        config["subjects"],
        prep["beta_version"],
        [prep["mask_roi"], *prep["atlases"]],
    )
    counts = job_counts(nsd_study_dry_run(tmp_path, config))
    assert "fetch_nsd" not in counts and counts["prepare_subject"] == 2
    # a session the subject never completed, or a subject not in the study, is a config error
    config["nsd"]["sessions"] = {"subj04": 31}
    assert "nsd.sessions" in dry_run_error(tmp_path / "bad", config)
    config["nsd"]["sessions"] = {"subj02": 3}
    assert "nsd.sessions" in dry_run_error(tmp_path / "bad2", config)


def test_weights_file_is_an_input_fetched_when_missing(tmp_path, demo_config):
    config = copy.deepcopy(demo_config)
    config["models"]["convnext_l"].update(
        timm="convnext_atto.d2_in1k",
        weights="file",
        weights_file="resources/weights/convnext_l.safetensors",
    )
    proc = run_snakemake(tmp_path, config, "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["fetch_weights"] == 1 and counts["extract_features"] == 3
    del config["models"]["convnext_l"]["weights_file"]
    assert "weights_file" in dry_run_error(tmp_path / "bad", config)


def placeholder_algonauts(root, subject, n_train, rois) -> None:
    """Empty files wherever the study reads one subject's Algonauts 2023 download."""
    from encscale.data import algonauts

    paths = [algonauts.fmri_path(root, subject, hemi) for hemi in algonauts.HEMIS]
    paths += [algonauts.roi_mapping_path(root, subject, roi) for roi in rois]
    paths += [
        algonauts.roi_mask_path(root, subject, hemi, roi)
        for hemi in algonauts.HEMIS
        for roi in rois
    ]
    paths += [algonauts.fsaverage_mask_path(root, subject, hemi) for hemi in algonauts.HEMIS]
    for split, n in (("train", n_train), ("test", 200)):
        folder = algonauts.images_dir(root, subject, split)
        paths += [f"{folder}/{split}-{i + 1:04d}_nsd-{i:05d}.png" for i in range(n)]
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()


def test_algonauts_config_plans_fits_submissions_and_ncsnr_fetch(tmp_path):
    config = yaml.safe_load((REPO / "config" / "algonauts2023.yaml").read_text())
    config["subjects"] = ["subj04"]
    root = tmp_path / config["algonauts"]["root"]
    placeholder_algonauts(root, "subj04", 8779, config["algonauts"]["rois"])
    text = nsd_study_dry_run(tmp_path, config)
    counts = job_counts(text)
    assert counts["fetch_nsd"] == 3  # the subject's lh and rh fsaverage ncsnr, the design
    assert "resources/nsd/nsddata/experiments/nsd/nsd_expdesign.mat" in text
    assert counts["prepare_subject"] == 1 and counts["extract_features"] == 6
    assert counts["submission_zip"] == 7 and counts["submission_subject"] == 7
    assert counts["fit_submission"] == 6  # each model refitted on every training image
    assert "results/algonauts2023/submission/fits/subj04/eva02_large.h5" in text
    # 7500 of 8779 images fit once 10% are held out; 8000 do not
    config["encoding"]["sizes"].append(8000)
    assert "encoding.sizes" in dry_run_error(tmp_path, config)


STUDY_CHECKPOINTS = {  # the first study's own checkpoints, as timm 1.0 tags them
    "eva02_base": "eva02_base_patch16_clip_224.merged2b",
    "eva02_large": "eva02_large_patch14_clip_224.merged2b",
    "eva01_giant": "eva_giant_patch14_clip_224.merged2b",
    "convnext_xxlarge": "convnext_xxlarge.clip_laion2b_soup_ft_in1k",
    "eva02_enormous": "eva02_enormous_patch14_clip_224.laion2b_plus",
}


@pytest.mark.parametrize("name", ["nsd.yaml", "algonauts2023.yaml"])
def test_study_configs_use_the_study_checkpoints(name):
    from encscale.torchtools import import_timm

    config = yaml.safe_load((REPO / "config" / name).read_text())
    tags = {key: entry["timm"] for key, entry in config["models"].items() if "timm" in entry}
    assert tags == STUDY_CHECKPOINTS
    assert set(tags.values()) <= set(import_timm().list_pretrained())


def fit_job_mem_mb(text: str) -> dict[str, int]:
    """{model: mem_mb} of the fit_subject_model jobs of subj01 in a dry run's output."""
    out = {}
    for block in text.split("rule fit_subject_model:")[1:]:
        model = re.search(r"model=(\w+)", block).group(1)
        if "subject=subj01" in block:
            out[model] = int(re.search(r"(?<![a-z_])mem_mb=(\d+)", block).group(1))
    return out


def test_a_model_may_set_its_own_pool_sizes(tmp_path, demo_config):
    """A model's pool_sizes replace encoding.pool_sizes for its fits: its job plans fewer,
    narrower sets (less memory), the other models' jobs are unchanged; the cost printout
    counts its sets alike."""
    from encscale import cost

    config = copy.deepcopy(demo_config)
    config["encoding"]["pool_sizes"] = [1, 2, 4, 8]
    base = fit_job_mem_mb(run_snakemake(tmp_path / "a", config, "-n").stdout)
    config["models"]["convnext_l"]["pool_sizes"] = [1]
    own = fit_job_mem_mb(run_snakemake(tmp_path / "b", config, "-n").stdout)
    assert own["convnext_l"] < base["convnext_l"]
    assert own["convnext_s"] == base["convnext_s"] and own["convnext_m"] == base["convnext_m"]
    assert cost.model_pool_sizes(config, "convnext_l") == [1]
    assert cost.model_pool_sizes(config, "convnext_s") == [1, 2, 4, 8]
    assert cost.model_pool_sizes(config, "convnext_l", "all") == "all"
