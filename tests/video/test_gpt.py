"""GPT-2 over codes: schedule, batches, training in each CPU precision, resume after a kill."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

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
from encscale.video.grid import run_grid, run_name

SPEC = GPTSpec(width=32, layers=2, heads=2, context=17, n_codes=16)


def patterned_codes(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16) int16 clips drawn from 8 fixed patterns: learnable, so the loss must fall."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(99).integers(0, 16, (8, 16))
    return patterns[rng.integers(0, 8, n)].astype(np.int16)


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
            np.zeros((1, 20), np.int16),
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
    rows = train_gpt(model, codes[64:], codes[:64], SPEC, settings)
    assert rows[-1]["step"] == 50
    assert rows[0]["loss"] > np.log(16) - 0.3  # starts near chance (log 16 = 2.77 nats)
    assert rows[-1]["val_loss"] < rows[0]["loss"] - 1.0  # the 8 patterns are being learnt
    assert rows[-1]["flops"] == pytest.approx(
        6 * sum(p.numel() for p in model.parameters()) * 800 * 16
    )
    if precision == "fp16":
        assert rows[-1]["loss_scale"] > 1  # dynamic loss scaling in use


def test_stopped_run_resumes_to_the_same_weights(tmp_path):
    codes = patterned_codes(200)
    settings = TrainSettings(n_samples=320, batch_size=16, lr=3e-3, checkpoint_every=3, log_every=4)
    full = build_gpt(SPEC, seed=1)
    rows_full = train_gpt(full, codes[32:], codes[:32], SPEC, settings)
    ckpt = tmp_path / "checkpoint.pt"
    part = build_gpt(SPEC, seed=1)
    train_gpt(part, codes[32:], codes[:32], SPEC, settings, checkpoint=ckpt, stop_after=7)
    assert torch.load(ckpt, weights_only=False)["step"] == 7
    resumed = build_gpt(SPEC, seed=5)  # other initial weights: the checkpoint must replace them
    rows = train_gpt(resumed, codes[32:], codes[:32], SPEC, settings, checkpoint=ckpt)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["step"] for r in rows] == [r["step"] for r in rows_full]
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_full]
    # a checkpoint of other settings is not resumed
    other = TrainSettings(n_samples=320, batch_size=16, lr=1e-3)
    fresh = train_gpt(build_gpt(SPEC, seed=1), codes[32:], codes[:32], SPEC, other, checkpoint=ckpt)
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
    train_gpt(model, codes[32:], codes[:32], spec, settings, checkpoint=sys.argv[2])
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
    train_gpt(ref, codes[32:], codes[:32], SPEC, settings, stop_after=step)
    saved = torch.load(ckpt, weights_only=False)["model"]
    for name, value in ref.state_dict().items():
        assert torch.equal(saved[name], value), (name, (saved[name] - value).abs().max())
    resumed = build_gpt(SPEC, seed=7)
    train_gpt(resumed, codes[32:], codes[:32], SPEC, settings, checkpoint=ckpt, stop_after=step + 4)
    ref = build_gpt(SPEC, seed=1)
    train_gpt(ref, codes[32:], codes[:32], SPEC, settings, stop_after=step + 4)
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
