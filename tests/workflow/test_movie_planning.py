"""Planning config/cneuromod.yaml over a stand-in of the release's tree (empty files where
its movies are): the DAG holds both data-size grids, and GPT-2 validates on clips of
held-out episodes that no training clip and no test movie comes from."""

from collections import Counter
from pathlib import Path

import yaml

from conftest import NO_NETWORK, REPO, run_snakemake
from encscale.data.cneuromod import movie_path
from encscale.video.heldout import episodes

# Friends seasons 1–6, two runs per episode: enough for every pattern of the config
MOVIES = [f"friends_s{s:02d}e{e:02d}{p}" for s in range(1, 7) for e in (1, 2, 24) for p in "ab"]


def planned_jobs(text: str) -> list[dict[str, str]]:
    """Every job of a dry run's output: its rule and its fields (input, wildcards, ...)."""
    jobs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            jobs.append({"rule": stripped.split()[1].rstrip(":")})
        elif jobs and line.startswith("    ") and ": " in stripped:
            key, value = stripped.split(": ", 1)
            jobs[-1].setdefault(key, value)
    return jobs


def movie_names(paths: str) -> list[str]:
    return sorted(Path(p).stem for p in paths.split(", ") if p.endswith(".mkv"))


def test_cneuromod_plans_both_grids_and_held_out_validation_episodes(tmp_path):
    config = yaml.safe_load((REPO / "config" / "cneuromod.yaml").read_text())
    root = tmp_path / "cneuromod"
    for movie in MOVIES:
        path = Path(movie_path(root, movie))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    config["cneuromod"].update(root=str(root), source=None)
    config["subjects"] = ["sub-01"]
    proc = run_snakemake(tmp_path / "work", config, "-n", env=NO_NETWORK)
    jobs = planned_jobs(proc.stdout)
    trained = Counter(
        j["wildcards"].removeprefix("model=") for j in jobs if j["rule"] == "train_gpt"
    )
    grid = config["gpt"]["grid"]
    steps = grid["equal_steps"]
    assert steps == 6_000_000 // config["gpt"]["batch_size"]  # one pass over the largest
    base = "w{width}_l{layers}_h{heads}_n{{}}_{precision}".format(**grid["base"])
    one_pass = {base.format(n) for n in grid["n_samples"]}
    equal = {base.format(n) + f"_steps{steps}" for n in grid["n_samples"][:-1]}
    assert one_pass | equal <= set(trained) and max(trained.values()) == 1
    assert {n for n in trained if n.endswith(f"_steps{steps}")} == equal
    # the largest size's one pass is the equal-steps grid's run of that size: not twice
    assert base.format(6_000_000) + f"_steps{steps}" not in trained
    # every run (and its features and fits) in the DAG
    n_runs = 1 + 4 + 4 + 4 + 3 + 3 + 3
    assert len(trained) == n_runs
    assert sum(j["rule"] == "fit_encoding" for j in jobs) == n_runs

    (tokenize,) = [j for j in jobs if j["rule"] == "tokenize_clips"]
    (validate,) = [j for j in jobs if j["rule"] == "tokenize_validation_clips"]
    (tokenizer,) = [j for j in jobs if j["rule"] == "train_tokenizer"]
    train_movies = movie_names(tokenize["input"])
    val_movies = movie_names(validate["input"])
    assert val_movies == [f"friends_s{s:02d}e24{p}" for s in range(1, 6) for p in "ab"]
    assert movie_names(tokenizer["input"]) == train_movies
    assert not episodes(train_movies) & episodes(val_movies)
    assert all(not m.startswith("friends_s06") for m in train_movies + val_movies)
    assert len(train_movies) == 5 * 2 * 2  # seasons 1–5, the episodes not held out
    for job in (j for j in jobs if j["rule"] == "train_gpt"):
        assert "tokens/validation.h5" in job["input"] and "tokens/pretrain.h5" in job["input"]
