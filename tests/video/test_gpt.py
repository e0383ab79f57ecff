"""GPT-2 over codes: schedule, batches, training in each CPU precision, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from encscale.torchtools import count_parameters
from encscale.video import gpt as gpt_module
from encscale.video.budget import gpt_mem_mb, gpt_parameters, gpt_peak_bytes
from encscale.video.gpt import (
    GPTSpec,
    TrainSettings,
    batch_rows,
    build_gpt,
    learning_rate,
    load_gpt,
    save_gpt,
    train_gpt,
    with_start_token,
)
from encscale.video.grid import clips_seen, run_grid, run_name, schedule
from encscale.video.runs import read_codes, runs_table, train_run, train_settings

SPEC = GPTSpec(width=32, layers=2, heads=2, context=17, n_codes=16)


def patterned_codes(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16) int16 clips drawn from 8 fixed patterns: learnable, so the loss must fall."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(99).integers(0, 16, (8, 16))
    return patterns[rng.integers(0, 8, n)].astype(np.int16)


def val_sets(codes: np.ndarray, n: int = 64) -> dict[str, np.ndarray]:
    """The first ``n`` clips as the two validation sets (half each)."""
    return {"heldout": codes[: n // 2], "overlap": codes[n // 2 : n]}


def test_learning_rate_warms_up_then_decays_to_the_floor():
    s = TrainSettings(n_samples=100 * 4, batch_size=4, lr=1e-3, warmup_frac=0.1, min_lr_frac=0.1)
    assert s.steps == 100
    assert learning_rate(0, s) == pytest.approx(1e-4)  # 1/10 of warm-up
    assert learning_rate(9, s) == pytest.approx(1e-3)
    assert learning_rate(10, s) == pytest.approx(1e-3)  # cosine starts at the peak
    assert learning_rate(99, s) == pytest.approx(1e-4)  # and ends at the floor
    assert learning_rate(10 + 89 // 2, s) == pytest.approx(
        1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 44 / 89))
    )


def test_batches_visit_every_clip_once_per_epoch_and_depend_on_step_alone():
    s = TrainSettings(n_samples=30, batch_size=4, seed=3)
    rows = np.concatenate([batch_rows(step, 10, s) for step in range(s.steps)])
    assert len(rows) == 30
    for epoch in range(3):
        assert sorted(rows[10 * epoch : 10 * epoch + 10]) == list(range(10))
    np.testing.assert_array_equal(batch_rows(5, 10, s), batch_rows(5, 10, s))
    assert not np.array_equal(rows[:10], rows[10:20])  # a new permutation each epoch


def test_start_token_and_code_range():
    tokens = with_start_token(torch.tensor([[[1, 2], [3, 4]]]), 16)
    assert tokens.tolist() == [[16, 1, 2, 3, 4]]
    with pytest.raises(ValueError, match=r"codes must be in \[0, 16\)"):
        with_start_token(torch.tensor([[16]]), 16)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="not divisible by heads"):
        GPTSpec(width=30, layers=1, heads=4, context=8, n_codes=4)
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainSettings(n_samples=10, precision="fp8")
    with pytest.raises(ValueError, match="do not fit a context"):
        train_gpt(
            build_gpt(SPEC),
            np.zeros((4, 20), np.int16),
            {"heldout": np.zeros((1, 20), np.int16)},
            SPEC,
            TrainSettings(n_samples=4),
        )


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_loss_falls_in_each_cpu_precision(precision):
    torch.manual_seed(0)
    codes = patterned_codes(400)
    model = build_gpt(SPEC, seed=0)
    settings = TrainSettings(
        n_samples=800, batch_size=16, lr=3e-3, precision=precision, log_every=5
    )
    rows = train_gpt(model, codes[64:], val_sets(codes), SPEC, settings)
    assert rows[-1]["step"] == 50
    assert rows[0]["loss"] > np.log(16) - 0.3  # starts near chance (log 16 = 2.77 nats)
    assert rows[-1]["val_loss_heldout"] < rows[0]["loss"] - 1.0  # the 8 patterns are learnt
    assert rows[-1]["val_loss_overlap"] < rows[0]["loss"] - 1.0
    assert rows[-1]["flops"] == pytest.approx(
        6 * sum(p.numel() for p in model.parameters()) * 800 * 16
    )
    if precision == "fp16":
        assert rows[-1]["loss_scale"] > 1  # dynamic loss scaling in use


def test_stopped_run_resumes_to_the_same_weights(tmp_path):
    codes = patterned_codes(200)
    settings = TrainSettings(n_samples=320, batch_size=16, lr=3e-3, checkpoint_every=3, log_every=4)
    full = build_gpt(SPEC, seed=1)
    rows_full = train_gpt(full, codes[32:], val_sets(codes, 32), SPEC, settings)
    ckpt = tmp_path / "checkpoint.pt"
    part = build_gpt(SPEC, seed=1)
    train_gpt(part, codes[32:], val_sets(codes, 32), SPEC, settings, checkpoint=ckpt, stop_after=7)
    assert torch.load(ckpt, weights_only=False)["step"] == 7
    resumed = build_gpt(SPEC, seed=5)  # other initial weights: the checkpoint must replace them
    rows = train_gpt(resumed, codes[32:], val_sets(codes, 32), SPEC, settings, checkpoint=ckpt)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["step"] for r in rows] == [r["step"] for r in rows_full]
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_full]
    # a checkpoint of other settings is not resumed
    other = TrainSettings(n_samples=320, batch_size=16, lr=1e-3)
    fresh = train_gpt(
        build_gpt(SPEC, seed=1), codes[32:], val_sets(codes, 32), SPEC, other, checkpoint=ckpt
    )
    assert fresh[0]["step"] == 10


KILLED_RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from encscale.video.gpt import GPTSpec, TrainSettings, build_gpt, train_gpt
    torch.set_num_threads(1)
    spec = GPTSpec(width=32, layers=2, heads=2, context=17, n_codes=16)
    codes = np.load(sys.argv[1])
    settings = TrainSettings(n_samples=4000, batch_size=16, lr=3e-3, checkpoint_every=2)
    model = build_gpt(spec, seed=1)
    val = {"heldout": codes[:16], "overlap": codes[16:32]}
    train_gpt(model, codes[32:], val, spec, settings, checkpoint=sys.argv[2])
    """
)


def test_killed_process_resumes_to_the_same_step_and_state(tmp_path):
    codes = patterned_codes(200)
    np.save(tmp_path / "codes.npy", codes)
    ckpt = tmp_path / "checkpoint.pt"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path / "codes.npy"), str(ckpt)], env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(ckpt, weights_only=False)["step"]
    settings = TrainSettings(n_samples=4000, batch_size=16, lr=3e-3, checkpoint_every=2)
    assert 2 <= step < settings.steps, "the run must be killed mid-way"
    # the state at the killed run's last checkpoint equals an uninterrupted run's at that step
    ref = build_gpt(SPEC, seed=1)
    torch.set_num_threads(1)
    train_gpt(ref, codes[32:], val_sets(codes, 32), SPEC, settings, stop_after=step)
    saved = torch.load(ckpt, weights_only=False)["model"]
    for name, value in ref.state_dict().items():
        assert torch.equal(saved[name], value), (name, (saved[name] - value).abs().max())
    resumed = build_gpt(SPEC, seed=7)
    train_gpt(
        resumed,
        codes[32:],
        val_sets(codes, 32),
        SPEC,
        settings,
        checkpoint=ckpt,
        stop_after=step + 4,
    )
    ref = build_gpt(SPEC, seed=1)
    train_gpt(ref, codes[32:], val_sets(codes, 32), SPEC, settings, stop_after=step + 4)
    assert torch.load(ckpt, weights_only=False)["step"] == step + 4
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_saved_model_round_trips(tmp_path):
    model = build_gpt(SPEC, seed=2)
    save_gpt(model, SPEC, tmp_path / "m.pt")
    loaded, spec = load_gpt(tmp_path / "m.pt")
    assert spec == SPEC
    tokens = with_start_token(torch.from_numpy(patterned_codes(3)), 16)
    torch.testing.assert_close(
        loaded(input_ids=tokens).logits, model.eval()(input_ids=tokens).logits
    )
    (tmp_path / "bad.pt").write_bytes(b"trunc")
    with pytest.raises(ValueError, match="bad.pt: not a readable GPT-2 model file"):
        load_gpt(tmp_path / "bad.pt")


def test_run_grid_sweeps_and_product():
    grid = dict(
        base=dict(width=64, layers=2, heads=2, n_samples=100, precision="fp32"),
        width=[32, 64],
        layers=[1, 2],
        precision=["fp32", "bf16"],
    )
    runs = run_grid(grid)
    assert list(runs) == [
        "w64_l2_h2_n100_fp32",
        "w32_l2_h2_n100_fp32",
        "w64_l1_h2_n100_fp32",
        "w64_l2_h2_n100_bf16",
    ]
    assert len(run_grid({**grid, "design": "product"})) == 8
    assert run_name(runs["w32_l2_h2_n100_fp32"]) == "w32_l2_h2_n100_fp32"
    with pytest.raises(ValueError, match="width 64 is not divisible by heads 3"):
        run_grid({**grid, "heads": [3]})


# The two data-size grids: each clip seen once, and equal steps at every size -------------

EQUAL_GRID = dict(
    base=dict(width=32, layers=1, heads=2, n_samples=1000, precision="fp32"),
    width=[16, 32],
    n_samples=[100, 1000, 4000],
    equal_steps=125,  # one pass over 4000 clips at 32 a step
)
TRAINING = dict(
    context=None,
    epochs=1,
    n_val=8,
    seed=0,
    batch_size=32,
    lr=3e-3,
    min_lr_frac=0.1,
    warmup_frac=0.05,
    weight_decay=0.01,
    grad_clip=1.0,
    checkpoint_every=5,
    log_every=5,
    eval_every=0,
)


def test_equal_steps_grid_fixes_the_steps_apart_from_the_data_size():
    runs = run_grid(EQUAL_GRID, batch_size=32)
    once = {n: p for n, p in runs.items() if schedule(p) == "one_pass"}
    equal = {n: p for n, p in runs.items() if schedule(p) == "equal_steps"}
    # every one-pass run keeps its name (and so its outputs and checkpoint); the data sizes
    # whose one pass is shorter get a run of 125 steps, named apart
    assert list(once) == list(run_grid({**EQUAL_GRID, "equal_steps": None}))
    assert sorted(equal) == ["w32_l1_h2_n1000_fp32_steps125", "w32_l1_h2_n100_fp32_steps125"]
    steps = {name: train_settings(point, TRAINING).steps for name, point in runs.items()}
    assert steps["w32_l1_h2_n100_fp32"] == 4 and steps["w32_l1_h2_n1000_fp32"] == 32
    assert steps["w32_l1_h2_n4000_fp32"] == 125  # the largest: in both grids, trained once
    assert {steps[name] for name in equal} == {125}
    # the equal-steps grid: every data size at the same steps, whatever its size
    grid = {p["n_samples"]: steps[n] for n, p in runs.items() if steps[n] == 125}
    assert grid == {100: 125, 1000: 125, 4000: 125}
    assert clips_seen(equal["w32_l1_h2_n100_fp32_steps125"], 32) == 4000
    # product: every point of the grid at equal steps too
    product = run_grid({**EQUAL_GRID, "design": "product"}, batch_size=32)
    assert sum(schedule(p) == "equal_steps" for p in product.values()) == 2 * 2
    with pytest.raises(ValueError, match="do not see every one of 4000 clips once"):
        run_grid({**EQUAL_GRID, "equal_steps": 100}, batch_size=32)


def write_codes(path, codes: np.ndarray, movies: list[str], n_codes: int = 16) -> None:
    with h5py.File(path, "w") as h5:
        h5["codes"] = codes.reshape(len(codes), 1, 4, 4)
        h5["movie"] = np.array(movies, dtype="S")
        h5.attrs["n_codes"] = n_codes


def test_a_run_of_more_steps_than_one_pass_sees_each_clip_that_many_times(tmp_path, monkeypatch):
    """40 clips, 8 a step, 15 steps: 3 passes, each clip in exactly 3 batches (reshuffled
    every pass); the log and the runs table say so, with both validation losses."""
    codes = patterned_codes(48 + 8)
    write_codes(tmp_path / "pretrain.h5", codes[:48], ["friends_s01e01a"] * 48)
    write_codes(tmp_path / "validation.h5", codes[48:], ["friends_s01e02a"] * 8)
    seen = []

    def recording(step, n_train, settings):
        rows = batch_rows(step, n_train, settings)
        seen.append(rows)
        return rows

    monkeypatch.setattr(gpt_module, "batch_rows", recording)
    training = dict(TRAINING, batch_size=8)
    out = {}
    for point in (
        dict(width=32, layers=1, heads=2, n_samples=40, precision="fp32", steps=15),
        dict(width=32, layers=1, heads=2, n_samples=40, precision="fp32"),  # one pass
    ):
        name = run_name(point)
        seen.clear()
        rows = train_run(
            tmp_path / "pretrain.h5",
            tmp_path / "validation.h5",
            tmp_path / f"{name}.pt",
            tmp_path / f"{name}.tsv",
            point=point,
            training=training,
            checkpoint=tmp_path / f"{name}.ckpt",
        )
        counts = np.bincount(np.concatenate(seen), minlength=40)
        out[name] = (point, rows, counts, [tuple(r) for r in seen])
    point, rows, counts, batches = out["w32_l1_h2_n40_fp32_steps15"]
    assert len(batches) == 15 and rows[-1]["step"] == 15
    np.testing.assert_array_equal(counts, 3)  # every clip in 3 batches, no other clip
    firsts = [sorted(np.concatenate(batches[5 * e : 5 * e + 5])) for e in range(3)]
    assert all(f == list(range(40)) for f in firsts)  # each pass is a permutation
    assert batches[:5] != batches[5:10]  # reshuffled
    _, once_rows, once_counts, _ = out["w32_l1_h2_n40_fp32"]
    np.testing.assert_array_equal(once_counts, 1)
    assert once_rows[-1]["step"] == 5
    table = runs_table(
        {name: p for name, (p, *_) in out.items()},
        [tmp_path / f"{name}.tsv" for name in out],
        [tmp_path / f"{name}.pt" for name in out],
    ).set_index("run")
    row = table.loc["w32_l1_h2_n40_fp32_steps15"]
    assert (row.schedule, row.n_samples, row.steps, row.clips_seen, row.epochs) == (
        "equal_steps",
        40,
        15,
        120,
        3.0,
    )
    assert row.tokens == 120 * 16
    row = table.loc["w32_l1_h2_n40_fp32"]
    assert (row.schedule, row.steps, row.clips_seen, row.epochs) == ("one_pass", 5, 40, 1.0)
    for name in out:  # both validation losses, in the log and the table
        log = pd.read_csv(tmp_path / f"{name}.tsv", sep="\t")
        final = log.iloc[-1]
        assert np.isfinite(final.val_loss_heldout) and np.isfinite(final.val_loss_overlap)
        assert final.val_loss_heldout != final.val_loss_overlap
        assert table.loc[name, "val_loss_heldout"] == final.val_loss_heldout


def test_a_run_refuses_held_out_clips_of_its_training_episodes(tmp_path):
    codes = patterned_codes(40)
    write_codes(tmp_path / "pretrain.h5", codes[:32], ["friends_s01e01a"] * 32)
    write_codes(tmp_path / "validation.h5", codes[32:], ["friends_s01e01b"] * 8)
    with pytest.raises(ValueError, match=r"share episodes \['friends_s01e01'\]"):
        read_codes(tmp_path / "pretrain.h5", tmp_path / "validation.h5", 8, 24)
    write_codes(tmp_path / "validation.h5", codes[32:], ["friends_s01e02a"] * 8)
    train, val, n_codes = read_codes(tmp_path / "pretrain.h5", tmp_path / "validation.h5", 8, 24)
    assert len(train) == 24 and n_codes == 16
    np.testing.assert_array_equal(val["overlap"], codes[:8].reshape(8, 1, 4, 4))
    np.testing.assert_array_equal(val["heldout"], codes[32:].reshape(8, 1, 4, 4))


def whole_read_then_slice(tokens_path, heldout_path, n_val: int, n_train: int):
    """The former route: every code of both files read, then the run's rows sliced."""
    with h5py.File(tokens_path) as h5:
        codes = h5["codes"][()]
    with h5py.File(heldout_path) as h5:
        heldout = h5["codes"][()]
    val = {"heldout": heldout[:n_val], "overlap": codes[:n_val]}
    return codes[n_val : n_val + n_train], val


def test_a_run_reads_only_its_rows_of_the_codes(tmp_path, monkeypatch):
    """Files of 5000 and 600 clips: each run gets the arrays the whole-read-then-slice route
    gave, having read from the codes datasets only its own rows (its validation clips and a
    prefix of the training clips), as contiguous slices."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 16, (5000, 16)).astype(np.int16)
    movies = [f"friends_s01e{1 + i % 9:02d}a" for i in range(5000)]
    write_codes(tmp_path / "pretrain.h5", codes, movies)
    heldout = rng.integers(0, 16, (600, 16)).astype(np.int16)
    write_codes(tmp_path / "validation.h5", heldout, ["friends_s02e01a"] * 600)
    paths = (tmp_path / "pretrain.h5", tmp_path / "validation.h5")
    runs = [(8, 24), (64, 3000), (64, 4936)]  # the last: every clip of the file
    expected = {run: whole_read_then_slice(*paths, *run) for run in runs}
    original = h5py.Dataset.__getitem__
    reads = []

    def counting(self, key):
        out = original(self, key)
        reads.append((Path(self.file.filename).name, self.name, key, np.asarray(out).nbytes))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    for n_val, n_train in runs:
        reads.clear()
        train, val, n_codes = read_codes(*paths, n_val, n_train)
        old_train, old_val = expected[n_val, n_train]
        assert n_codes == 16 and train.dtype == old_train.dtype == np.int16
        np.testing.assert_array_equal(train, old_train)
        assert val.keys() == old_val.keys()
        for name in val:
            np.testing.assert_array_equal(val[name], old_val[name])
        code_reads = [(file, key, size) for file, ds, key, size in reads if ds == "/codes"]
        assert all(isinstance(key, slice) and key.step is None for _, key, _ in code_reads)
        row = 16 * 2  # bytes of a clip's codes
        assert sum(size for *_, size in code_reads) == (2 * n_val + n_train) * row
        assert sum(size for file, _, size in code_reads if file == "validation.h5") == n_val * row
        assert all(isinstance(key, slice) for _, ds, key, _ in reads if ds == "/movie")
    with pytest.raises(ValueError, match="5000 clips, but the run needs 64 validation and 4937"):
        read_codes(*paths, 64, 4937)


def test_a_run_s_memory_request_follows_its_own_clips():
    for spec in (SPEC, GPTSpec(width=96, layers=3, heads=4, context=65, n_codes=100)):
        shape = dict(width=spec.width, layers=spec.layers, context=spec.context)
        model = build_gpt(spec)
        assert gpt_parameters(**shape, n_codes=spec.n_codes) == count_parameters(model)
    study = dict(n_val=1024, code_positions=1024, width=576, layers=8, heads=4, context=1025)
    study.update(n_codes=2048, batch_size=32)
    small = gpt_mem_mb(n_train=10_000, device="cuda", **study)
    large = gpt_mem_mb(n_train=6_000_000, device="cuda", **study)
    extra = 5_990_000 * (1024 * 2 + 16)  # the 6M run's more clips: codes and permutation
    assert large - small == pytest.approx(1.25 * extra / 2**20, abs=1)
    assert 4000 < small < 8000 and 16000 < large < 32000  # 32 GB: the former constant
    assert gpt_mem_mb(n_train=10_000, device="cpu", **study) > small  # activations on the CPU
    assert gpt_mem_mb(2, n_train=10_000, device="cuda", **study) == pytest.approx(1.5 * small, 1e-3)
    # light for the workflow's planning: no torch
    check = "import sys, encscale.video.budget; assert 'torch' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    subprocess.run([sys.executable, "-c", check], check=True, env=env)


MEASURED_RUN = textwrap.dedent(
    """
    import json, sys
    import torch
    from encscale.jobs import peak_rss_bytes
    from encscale.video.runs import train_run
    torch.set_num_threads(1)
    tmp, point, training = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    train_run(f"{tmp}/pretrain.h5", f"{tmp}/validation.h5", f"{tmp}/m.pt", f"{tmp}/log.tsv",
              point=point, training=training, checkpoint=f"{tmp}/ckpt.pt")
    print(peak_rss_bytes())
    """
)


def test_a_small_cpu_run_stays_within_its_memory_estimate(tmp_path):
    """A CPU run of 512 clips of 256 codes from a file of 40,000 (20 MB of codes): its peak
    resident memory is below :func:`gpt_peak_bytes` of its own shapes."""
    codes = np.random.default_rng(0).integers(0, 64, (40_032, 4, 8, 8)).astype(np.int16)
    for name, rows, movie in (
        ("pretrain", slice(0, 40_000), "friends_s01e01a"),
        ("validation", slice(40_000, None), "bourne01"),
    ):
        with h5py.File(tmp_path / f"{name}.h5", "w") as h5:
            h5["codes"] = codes[rows]
            h5["movie"] = np.array([movie] * len(h5["codes"]), dtype="S")
            h5.attrs["n_codes"] = 64
    point = dict(width=64, layers=2, heads=2, n_samples=512, precision="fp32", steps=4)
    training = dict(TRAINING, batch_size=16, n_val=32, context=None, log_every=2, eval_every=0)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    run = subprocess.run(
        [sys.executable, "-c", MEASURED_RUN, str(tmp_path), *map(json.dumps, (point, training))],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    peak = int(run.stdout.strip().splitlines()[-1])
    shapes = {k: point[k] for k in ("width", "layers", "heads")}
    shapes.update(n_train=512, n_val=32, code_positions=256, context=257, n_codes=64)
    estimate = gpt_peak_bytes(batch_size=16, device="cpu", **shapes)
    print(f"peak {peak / 2**20:.0f} MB, estimate {estimate / 2**20:.0f} MB")
    assert peak < estimate
