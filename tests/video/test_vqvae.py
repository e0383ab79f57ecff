"""VQ-VAE: shapes, learning, the EMA codebook, straight-through gradients, axial attention,
checkpoints, and training resumed after a stop or a SIGKILL."""

import json
import math
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

from encscale.video.vqvae import (
    VQVAE,
    AttentionResBlock,
    AxialBlock,
    Codebook,
    ResBlock,
    VQVAEConfig,
    clip_from_frames,
    load_checkpoint,
    save_checkpoint,
    train_vqvae,
)

TINY = VQVAEConfig(channels=16, n_codes=32, code_dim=8, downsample=(2, 4, 4), n_res_blocks=1)
# the smallest model with every part (strided layers, an attention block, the codebook)
MINI = VQVAEConfig(channels=8, n_codes=16, code_dim=4, downsample=(2, 2, 2), n_res_blocks=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_clips(n: int, seed: int, frames: int = 8, side: int = 16) -> torch.Tensor:
    """(n, 3, frames, side, side) clips in [-0.5, 0.5]: a drifting coloured sine grating plus
    a coloured Gaussian blob moving in a straight line."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.arange(side, dtype=torch.float32)[None, :, None] / side
    x = torch.arange(side, dtype=torch.float32)[None, None, :] / side
    clips = []
    for _ in range(n):
        angle, freq, phase = torch.rand(3, generator=g)
        direction = torch.cos(2 * math.pi * angle) * x + torch.sin(2 * math.pi * angle) * y
        wave = torch.sin(2 * math.pi * (direction * (0.25 + 0.5 * freq) + phase + 0.05 * t))
        start = torch.rand(2, generator=g)
        velocity = (torch.rand(2, generator=g) - 0.5) * 0.1
        dist2 = (y - start[0] - velocity[0] * t) ** 2 + (x - start[1] - velocity[1] * t) ** 2
        blob = torch.exp(-dist2 / 0.05)
        wave_colour, blob_colour = torch.rand(2, 3, 1, 1, 1, generator=g) - 0.5
        clips.append((0.5 * wave_colour * wave + blob_colour * blob).clamp(-0.5, 0.5))
    return torch.stack(clips)


def set_codebook(cb: Codebook, embeddings, counts) -> None:
    """Put ``cb`` in a hand-chosen initialised state (sums consistent with the counts)."""
    emb = torch.tensor(embeddings, dtype=torch.float32)
    cnt = torch.tensor(counts, dtype=torch.float32)
    cb.embeddings.copy_(emb)
    cb.ema_count.copy_(cnt)
    cb.ema_sum.copy_(emb * cnt[:, None])
    cb.initialised.fill_(True)


def as_grid(vectors) -> torch.Tensor:
    """(N, D) vectors → (1, D, N, 1, 1), the codebook's input layout."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, -1, len(vectors), 1, 1)


def test_config_is_validated():
    with pytest.raises(ValueError, match="downsample"):
        VQVAEConfig(downsample=(3, 4, 4))
    with pytest.raises(ValueError, match="ema_decay"):
        VQVAEConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="n_codes"):
        VQVAEConfig(n_codes=0)
    with pytest.raises(ValueError, match="dead_code_threshold"):
        VQVAEConfig(dead_code_threshold=-1.0)
    with pytest.raises(ValueError, match="attention must be one of axial, none"):
        VQVAEConfig(attention="full")
    with pytest.raises(ValueError, match="channels must be even with axial attention"):
        VQVAEConfig(channels=15)
    assert VQVAEConfig(channels=15, attention="none").channels == 15


def test_clip_from_frames_is_channels_first():
    frames = np.random.default_rng(0).random((4, 6, 8, 3), dtype=np.float32) - 0.5
    clip = clip_from_frames(frames)
    assert clip.shape == (3, 4, 6, 8)
    assert torch.equal(clip[:, 1, 2, 3], torch.from_numpy(frames[1, 2, 3]))


def test_shapes():
    torch.manual_seed(0)
    model = VQVAE(TINY)
    x = smooth_clips(2, seed=1)
    model.train()
    recon, codes, terms = model(x)
    assert recon.shape == x.shape and codes.shape == (2, 4, 4, 4)
    assert set(terms) == {"recon", "commitment", "perplexity"}
    model.eval()
    codes = model.encode(x)
    assert codes.shape == (2, 4, 4, 4) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < TINY.n_codes
    assert model.decode(codes).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        model.encode(torch.zeros(2, 3, 8, 16, 14))
    with pytest.raises(ValueError, match="codes must be"):
        model.decode(torch.full((1, 4, 4, 4), TINY.n_codes))


def test_training_reduces_reconstruction_error():
    clips = smooth_clips(32, seed=0)
    mean_clip_mse = ((clips - clips.mean(0)) ** 2).mean().item()
    config = VQVAEConfig(channels=16, n_codes=64, code_dim=8, downsample=(2, 4, 4), n_res_blocks=0)
    torch.manual_seed(0)
    model = VQVAE(config)
    start = time.perf_counter()
    records = train_vqvae(model, clips, steps=150, batch_size=8, lr=1e-3, seed=0)
    elapsed = time.perf_counter() - start
    first = records[0]["recon_loss"]
    last = np.mean([r["recon_loss"] for r in records[-10:]])
    model.eval()
    round_trip = ((model.decode(model.encode(clips)) - clips) ** 2).mean().item()
    print(
        f"recon MSE {first:.4f} -> {last:.4f}, round trip {round_trip:.4f}, "
        f"mean clip {mean_clip_mse:.4f}, {elapsed:.1f} s"
    )
    assert [r["step"] for r in records] == list(range(150))
    assert last < 0.5 * first
    assert last < 0.5 * mean_clip_mse
    assert round_trip < 0.5 * mean_clip_mse
    assert records[-1]["perplexity"] > 4


def test_ema_update_is_the_formula():
    cb = Codebook(2, 2, ema_decay=0.5, dead_code_threshold=0.5).train()
    set_codebook(cb, [[0.0, 0.0], [10.0, 10.0]], [1.0, 1.0])
    quantised, codes, _, _ = cb(as_grid([[1.0, 0.0], [0.0, 1.0], [9.0, 10.0]]))
    assert codes.flatten().tolist() == [0, 0, 1]
    # the output uses the codebook the codes were assigned with
    assert torch.equal(quantised[0, :, :, 0, 0].T, torch.tensor([[0.0, 0], [0, 0], [10, 10]]))
    # counts: 0.5·1 + 0.5·2, 0.5·1 + 0.5·1
    # sums: 0.5·(0, 0) + 0.5·(1, 1), 0.5·(10, 10) + 0.5·(9, 10)
    count = torch.tensor([1.5, 1.0])
    total_sum = torch.tensor([[0.5, 0.5], [9.5, 10.0]])
    eps = 1e-5
    smoothed = (count + eps) / (2.5 + 2 * eps) * 2.5
    torch.testing.assert_close(cb.ema_count, count)
    torch.testing.assert_close(cb.ema_sum, total_sum)
    torch.testing.assert_close(cb.embeddings, total_sum / smoothed[:, None])
    # code 0 moved from (0, 0) towards the mean (0.5, 0.5) of its vectors
    torch.testing.assert_close(cb.embeddings[0], torch.tensor([1 / 3, 1 / 3]), atol=1e-4, rtol=0)


def test_eval_mode_leaves_the_codebook_alone():
    cb = Codebook(2, 2).eval()
    set_codebook(cb, [[0.0, 0.0], [10.0, 10.0]], [1.0, 1.0])
    before = {k: v.clone() for k, v in cb.state_dict().items()}
    cb(as_grid([[1.0, 0.0], [0.0, 1.0], [9.0, 10.0]]))
    for k, v in cb.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_first_training_batch_initialises_the_codebook():
    cb = Codebook(4, 2, ema_decay=0.99).train()
    vectors = torch.tensor([[float(i), float(-i)] for i in range(10)])
    cb(as_grid(vectors.tolist()), torch.Generator().manual_seed(0))
    assert bool(cb.initialised)
    # each code starts at a distinct vector, then moves 1 % of the way to its vectors' mean
    nearest = torch.cdist(cb.embeddings, vectors).min(1)
    assert nearest.values.max() < 0.2
    assert len(set(nearest.indices.tolist())) == 4


def test_dead_code_is_restarted_at_an_encoder_output():
    cb = Codebook(2, 2, ema_decay=0.99, dead_code_threshold=1.0).train()
    set_codebook(cb, [[0.0, 0.0], [100.0, 100.0]], [1.0, 1.02])
    vectors = [[0.1, 0.2], [-0.3, 0.1], [0.2, -0.2], [0.0, 0.3]]
    generator = torch.Generator().manual_seed(0)
    cb(as_grid(vectors), generator)  # count of code 1: 1.02 · 0.99 ≥ 1, still alive
    assert cb.embeddings[1].min() > 50
    cb(as_grid(vectors), generator)  # 1.02 · 0.99² < 1: restarted
    assert cb.embeddings[1].tolist() in torch.tensor(vectors).tolist()
    assert cb.ema_count[1].item() == 1.0
    torch.testing.assert_close(cb.ema_sum[1], cb.embeddings[1])


def test_perplexity_is_exp_entropy_of_usage():
    cb = Codebook(2, 2).eval()
    set_codebook(cb, [[0.0, 0.0], [10.0, 10.0]], [1.0, 1.0])
    _, _, _, perplexity = cb(as_grid([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [10.0, 9.0]]))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert perplexity.item() == pytest.approx(expected, rel=1e-6)
    _, _, _, perplexity = cb(as_grid([[0.0, 1.0], [1.0, 0.0]]))
    assert perplexity.item() == pytest.approx(1.0)


def test_gradient_passes_straight_through_the_quantiser():
    torch.manual_seed(0)
    model = VQVAE(TINY).train()
    _, _, terms = model(smooth_clips(2, seed=2))
    terms["recon"].backward()  # the commitment term alone would also reach the encoder
    first_conv = model.encoder[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_training_is_deterministic():
    clips = smooth_clips(8, seed=3)

    def run():
        torch.manual_seed(1)
        return train_vqvae(VQVAE(TINY), clips, steps=5, batch_size=4, lr=1e-3, seed=7)

    assert run() == run()


def test_checkpoint_round_trip(tmp_path):
    clips = smooth_clips(4, seed=4)
    torch.manual_seed(0)
    model = VQVAE(TINY)
    train_vqvae(model, clips, steps=3, batch_size=2, lr=1e-3, seed=0)
    model.eval()
    path = tmp_path / "vqvae.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert loaded.config == TINY and not loaded.training
    assert loaded.config.attention == "axial"
    assert isinstance(loaded.encoder[5], AttentionResBlock)  # after 2 strided layers, a conv
    assert torch.equal(loaded.encode(clips), model.encode(clips))
    assert torch.equal(loaded.decode(loaded.encode(clips)), model.decode(model.encode(clips)))

    # a checkpoint written before attention was a setting: convolution-only blocks
    plain = VQVAE(VQVAEConfig(**{**TINY.__dict__, "attention": "none"})).eval()
    config = {k: v for k, v in TINY.__dict__.items() if k != "attention"}
    torch.save({"config": config, "state": plain.state_dict()}, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.config.attention == "none" and isinstance(old.encoder[5], ResBlock)
    assert torch.equal(old.encode(clips), plain.encode(clips))

    data = path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="broken.pt"):
        load_checkpoint(broken)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def changed_positions(block: torch.nn.Module, shape=(1, 8, 5, 6, 7)) -> torch.Tensor:
    """(T, H, W) bool: where ``block``'s output changes when its input changes at (0, 0, 0)
    alone."""
    torch.manual_seed(0)
    x = torch.randn(shape)
    y = block(x)
    x[:, :, 0, 0, 0] += 1.0
    return (block(x) - y).abs().amax(dim=(0, 1)) > 1e-6


def lines_through_origin(t: int, h: int, w: int, reach: int = 0) -> torch.Tensor:
    """(t, h, w) bool: the positions within ``reach`` of a line through (0, 0, 0) along one
    axis (all coordinates but one ≤ reach)."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in (t, h, w)), indexing="ij"))
    near = grid <= reach
    return (near[1] & near[2]) | (near[0] & near[2]) | (near[0] & near[1])


@torch.no_grad()
def test_axial_block_attends_along_each_axis_whatever_the_distance():
    block = AxialBlock(8).eval()
    assert block(torch.zeros(2, 8, 5, 6, 7)).shape == (2, 8, 5, 6, 7)
    # one position's change reaches the whole of its three lines (t, h and w), to their far
    # ends 4, 5 and 6 positions away, and nothing off them
    assert torch.equal(changed_positions(block), lines_through_origin(5, 6, 7))


@torch.no_grad()
def test_attention_block_reaches_far_along_axes_where_convolutions_cannot():
    attention = AttentionResBlock(8).eval()
    changed = changed_positions(attention)
    assert changed.shape == (5, 6, 7)
    # the 3×3×3 convolution spreads the change by one position, the attention along the
    # lines through that neighbourhood
    assert torch.equal(changed, lines_through_origin(5, 6, 7, reach=1))
    assert changed[4, 0, 0] and changed[0, 5, 0] and changed[0, 0, 6]
    # the convolution-only block changes the 3×3×3 neighbourhood alone
    conv = changed_positions(ResBlock(8).eval())
    assert conv[:2, :2, :2].all() and not conv[2:].any()
    assert not conv[:, 2:].any() and not conv[:, :, 2:].any()


def test_attention_is_a_setting_of_every_residual_block():
    for attention, block in (("axial", AttentionResBlock), ("none", ResBlock)):
        model = VQVAE(VQVAEConfig(**{**TINY.__dict__, "n_res_blocks": 2, "attention": attention}))
        blocks = [m for m in model.modules() if isinstance(m, (AttentionResBlock, ResBlock))]
        assert len(blocks) == 4 and all(type(b) is block for b in blocks)
    assert sum(isinstance(m, AxialBlock) for m in VQVAE(TINY).modules()) == 2


def assert_same_state(a: dict, b: dict) -> None:
    """Two checkpoints (or state dicts) hold exactly the same values."""
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert_same_state(x, y)
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), (key, x, y)
        else:
            assert x == y, key


def test_stopped_training_resumes_to_the_same_state(tmp_path):
    clips = smooth_clips(8, seed=5, frames=4, side=8)
    settings = dict(steps=12, batch_size=4, lr=1e-3, seed=3)
    torch.manual_seed(0)
    full = VQVAE(MINI)
    full_ckpt = tmp_path / "full.pt"
    records = train_vqvae(full, clips, **settings, checkpoint=full_ckpt, checkpoint_every=5)

    ckpt = tmp_path / "checkpoint.pt"
    torch.manual_seed(0)
    train_vqvae(VQVAE(MINI), clips, **settings, checkpoint=ckpt, checkpoint_every=5, stop_after=7)
    assert torch.load(ckpt, weights_only=True)["step"] == 7
    torch.manual_seed(9)  # other initial weights: the checkpoint's must replace them
    resumed = VQVAE(MINI)
    ran = []
    rerun = train_vqvae(
        resumed, clips, **settings, checkpoint=ckpt, log=lambda step, _: ran.append(step)
    )
    assert ran == list(range(7, 12))  # only the steps left
    assert rerun == records
    assert_same_state(resumed.state_dict(), full.state_dict())
    assert_same_state(torch.load(ckpt, weights_only=True), torch.load(full_ckpt, weights_only=True))

    # a checkpoint of other settings is not resumed
    ran.clear()
    other = dict(settings, lr=2e-3)
    train_vqvae(VQVAE(MINI), clips, **other, checkpoint=ckpt, log=lambda step, _: ran.append(step))
    assert ran == list(range(12))


KILLED_RUN = textwrap.dedent(
    """
    import json, sys
    import torch
    from encscale.video.vqvae import VQVAE, VQVAEConfig, train_vqvae
    torch.set_num_threads(1)
    clips_path, checkpoint, steps, config = sys.argv[1:]
    clips = torch.load(clips_path)
    torch.manual_seed(0)
    train_vqvae(
        VQVAE(VQVAEConfig(**json.loads(config))), clips, steps=int(steps), batch_size=4,
        lr=1e-3, seed=3, checkpoint=checkpoint, checkpoint_every=2,
    )
    """
)


def test_killed_training_resumes_to_the_same_state(tmp_path):
    """A training process killed with SIGKILL after a checkpoint, rerun, takes up from the
    checkpoint's step and ends in exactly the state of a run never interrupted."""
    steps = 40
    clips = smooth_clips(8, seed=5, frames=4, side=8)
    torch.save(clips, tmp_path / "clips.pt")
    ckpt = tmp_path / "checkpoint.pt"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    args = [sys.executable, "-c", KILLED_RUN, str(tmp_path / "clips.pt"), str(ckpt), str(steps)]
    args.append(json.dumps(MINI.__dict__))
    proc = subprocess.Popen(args, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run must still be going when killed"
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 2 <= step < steps, "killed mid-way"

    settings = dict(steps=steps, batch_size=4, lr=1e-3, seed=3)
    at_kill = {}
    torch.manual_seed(0)
    ref = VQVAE(MINI)

    def snapshot(i: int, _) -> None:
        if i + 1 == step:
            at_kill.update({k: v.clone() for k, v in ref.state_dict().items()})

    ref_ckpt = tmp_path / "uninterrupted.pt"
    records = train_vqvae(
        ref, clips, **settings, checkpoint=ref_ckpt, checkpoint_every=2, log=snapshot
    )
    # the killed run's checkpoint holds the uninterrupted run's state at its step
    assert_same_state(torch.load(ckpt, weights_only=True)["model"], at_kill)

    torch.manual_seed(7)
    resumed = VQVAE(MINI)
    ran = []
    rerun = train_vqvae(
        resumed,
        clips,
        **settings,
        checkpoint=ckpt,
        checkpoint_every=2,
        log=lambda i, _: ran.append(i),
    )
    assert ran == list(range(step, steps))  # resumed at the saved step
    assert rerun == records
    assert_same_state(resumed.state_dict(), ref.state_dict())
    assert_same_state(torch.load(ckpt, weights_only=True), torch.load(ref_ckpt, weights_only=True))
