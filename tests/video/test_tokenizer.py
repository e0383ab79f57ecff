"""The tokenizer's jobs: training resumed after a stop, and the pre-training clips' codes
streamed to their file in the table's order with memory that does not grow with the clips."""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from encscale.video import tokenizer
from encscale.video.budget import code_shape, tokenize_mem_mb, tokenize_peak_bytes, vqvae_values
from encscale.video.clips import (
    encode_clips,
    read_clips,
    training_clip_draws,
    training_clip_starts,
    write_in_row_order,
)
from encscale.video.decode import write_video
from encscale.video.tokenizer import fit_tokenizer, tokenize_pretraining_clips
from encscale.video.vqvae import VQVAE, VQVAEConfig, load_checkpoint, save_checkpoint

SRC = Path(__file__).parents[2] / "src"


pytestmark = pytest.mark.usefixtures("one_thread")


def write_movies(root: Path, n: int, seconds: float, size: int, fps: float = 8.0) -> dict:
    """``n`` smooth, moving colour patterns of ``seconds`` at ``fps``, lossless (ffv1)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    t = np.arange(int(seconds * fps))[:, None, None, None]
    paths = {}
    for i in range(n):
        wave = np.sin(x[..., None] / 3 + y[..., None] / 5 + t / 2 + rng.random(3) * 6)
        paths[f"movie{i}"] = root / f"movie{i}.mkv"
        write_video(paths[f"movie{i}"], (128 + 100 * wave).astype(np.uint8), fps, codec="ffv1")
    return paths


def untrained_tokenizer(path: Path, clips: torch.Tensor, **config) -> VQVAE:
    """A VQ-VAE whose weights are random but whose codebook and batch-norm statistics are set
    by forward passes over ``clips`` (N, 3, T, H, W), saved at ``path``."""
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**config)).train()
    with torch.no_grad():
        for _ in range(20):
            model(clips)
    save_checkpoint(model.eval(), path)
    return model


def test_rows_in_any_order_are_written_in_row_order(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(-(2**15), 2**15, (1000, 3, 2), dtype=np.int16)
    order = rng.permutation(1000)
    batches = [(order[i : i + 64], values[order[i : i + 64]]) for i in range(0, 1000, 64)]
    for buffer_bytes, scratch_made in ((10**6, False), (12 * 100, True), (1, True)):
        scratch = tmp_path / f"scratch{buffer_bytes}"
        with h5py.File(tmp_path / f"out{buffer_bytes}.h5", "w") as h5:
            dset = h5.create_dataset("x", (1000, 3, 2), dtype=np.int16, chunks=(50, 3, 2))
            made = []

            def watched(batches=batches, made=made, scratch=scratch):
                for batch in batches:
                    made.append(scratch.exists())
                    yield batch

            write_in_row_order(dset, watched(), buffer_bytes=buffer_bytes, scratch=scratch)
            np.testing.assert_array_equal(dset[()], values)
        assert any(made) == scratch_made  # 100 rows a run: 10 runs merged; 1 byte: 1 row
        assert not scratch.exists()
    with h5py.File(tmp_path / "bad.h5", "w") as h5:
        dset = h5.create_dataset("x", (4, 2), dtype=np.int16)
        two = np.zeros((2, 2), dtype=np.int16)
        with pytest.raises(ValueError, match="out of"):
            write_in_row_order(dset, [([0, 4], two)], buffer_bytes=8, scratch=tmp_path / "s")
        with pytest.raises(ValueError, match="repeated"):
            batches = [([0, 1], two), ([1, 2], two)]
            write_in_row_order(dset, batches, buffer_bytes=8, scratch=tmp_path / "s")
        with pytest.raises(ValueError, match="2 of 4 rows never came"):
            write_in_row_order(dset, [([3, 1], two)], buffer_bytes=4, scratch=tmp_path / "s")
        assert not (tmp_path / "s").exists()


def test_streamed_codes_equal_the_in_memory_route(tmp_path):
    """The file written as batches are encoded (through 30-row runs) holds the codes, movies
    and starts the former route held in memory and wrote, row for row."""
    movies = write_movies(tmp_path, 3, seconds=6.0, size=16)
    clip = dict(frames=4, fps=8.0, size=16)
    some = torch.from_numpy(
        read_clips(movies, training_clip_starts({m: 6.0 for m in movies}, 32, 0.5, 9), 4, 8.0, 16)
    )
    config = dict(channels=8, n_codes=16, code_dim=4, downsample=(2, 4, 4))
    model = untrained_tokenizer(tmp_path / "vqvae.pt", some, **config)
    out = tmp_path / "tokens" / "pretrain.h5"
    n = 300
    row_bytes = 2 * 2 * 4 * 4
    tokenize_pretraining_clips(
        movies, tmp_path / "vqvae.pt", out, n=n, clip=clip, seed=4, batch_size=16,
        buffer_bytes=30 * row_bytes,
    )  # fmt: skip
    table = training_clip_starts({m: 6.0 for m in movies}, n, 0.5, seed=4)
    expected = encode_clips(model, movies, table, **clip, batch_size=16)
    assert sorted(p.name for p in out.parent.iterdir()) == ["pretrain.h5"]  # no scratch left
    with h5py.File(out) as h5:
        assert h5["codes"].dtype == np.int16 and h5["codes"].chunks is not None
        np.testing.assert_array_equal(h5["codes"][()], expected)
        assert len(np.unique(expected)) > 4  # codes that tell clips apart
        np.testing.assert_array_equal(h5["movie"][()], table["movie"].to_numpy(dtype="S"))
        assert h5["movie"].dtype == table["movie"].to_numpy(dtype="S").dtype
        np.testing.assert_array_equal(h5["start_s"][()], table["start_s"].to_numpy())
        assert dict(h5.attrs) == dict(n_codes=16, seed=4, **clip)


def test_compact_draws_are_the_tables():
    durations = {"b": 30.0, "a": 10.0, "c": 0.5}
    names, which, starts = training_clip_draws(durations, 500, 2.0, seed=1)
    table = training_clip_starts(durations, 500, 2.0, seed=1)
    assert names == ["a", "b", "c"] and which.dtype == np.uint8
    assert (np.array(names)[which] == table["movie"].to_numpy()).all()
    np.testing.assert_array_equal(starts, table["start_s"].to_numpy())


# One tokenizing job in a fresh process: its resident peak, beside the peak after imports.
MEASURE = textwrap.dedent(
    """
    import json, sys
    import torch
    from encscale.jobs import peak_rss_bytes
    from encscale.video.tokenizer import tokenize_pretraining_clips
    torch.set_num_threads(1)

    movies, tokenizer_path, out, n, clip, buffer_bytes = json.loads(sys.argv[1])
    imported = peak_rss_bytes()
    tokenize_pretraining_clips(
        movies, tokenizer_path, out, n=n, clip=clip, seed=0, batch_size=128,
        buffer_bytes=buffer_bytes,
    )
    peak = peak_rss_bytes()
    print(json.dumps(dict(imported=imported, peak=peak)))
    """
)


def test_tokenizing_memory_does_not_grow_with_the_clips(tmp_path):
    """400 and 2400 clips whose codes take 16 kB each (38 MB for 2400, all of which the
    former route held in memory: its peak grew by 31 MB between them): the peak grows by
    less than 12 MB, and stays within the job's estimate."""
    movies = write_movies(tmp_path, 4, seconds=60.0, size=64)
    config = dict(channels=1, n_codes=2, code_dim=1, downsample=(1, 1, 1), n_res_blocks=0)
    noise = torch.rand(8, 3, 2, 64, 64) - 0.5
    untrained_tokenizer(tmp_path / "vqvae.pt", noise, **config, attention="none")
    clip = dict(frames=2, fps=8.0, size=64)
    buffer_bytes = 2**20  # 64 clips' codes: both sizes spill sorted runs to scratch
    env = dict(os.environ, PYTHONPATH=str(SRC))
    peaks = {}
    for n in (400, 2400):
        job = [{k: str(v) for k, v in movies.items()}, str(tmp_path / "vqvae.pt")]
        job += [str(tmp_path / f"tokens{n}.h5"), n, clip, buffer_bytes]
        run = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(job)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        peaks[n] = json.loads(run.stdout.strip().splitlines()[-1])
        estimate = tokenize_peak_bytes(
            n=n,
            n_movies=len(movies),
            clip=clip,
            tokenizer={**config, "attention": "none"},
            batch_size=128,
            device="cpu",
            buffer_bytes=buffer_bytes,
        )
        assert peaks[n]["peak"] < estimate, (n, peaks[n], estimate)
    growth = peaks[2400]["peak"] - peaks[400]["peak"]
    codes = 2000 * 2 * 64 * 64 * 2  # what holding the extra clips' codes adds: 31 MB
    print(f"peaks {peaks}, growth {growth / 2**20:.1f} MB (codes {codes / 2**20:.0f} MB)")
    assert growth < 12 * 2**20
    with h5py.File(tmp_path / "tokens2400.h5") as h5:
        assert h5["codes"].shape == (2400, 2, 64, 64)


def test_memory_request_is_computed_from_the_shapes():
    study = dict(channels=240, n_codes=2048, code_dim=256, downsample=[4, 4, 4], n_res_blocks=4)
    for attention in ("axial", "none"):
        settings = {**study, "attention": attention}
        config = VQVAEConfig(**{**settings, "downsample": (4, 4, 4)})
        model = VQVAE(config)
        counted = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
        assert vqvae_values(settings) == counted
    shapes = dict(clip=dict(frames=16, size=64), tokenizer=study, batch_size=256, n_movies=300)
    small = tokenize_mem_mb(n=10_000 + 1024, device="cuda", **shapes)
    large = tokenize_mem_mb(n=6_000_000 + 1024, device="cuda", **shapes)
    assert large - small < 1000  # 6M clips' codes alone are 12 GB
    assert large < 8000 and small > 4000  # CUDA's host side, the batch of clips, the buffer
    assert tokenize_mem_mb(n=10_000, device="cpu", **shapes) > small  # activations on the CPU
    assert tokenize_mem_mb(2, n=10_000, device="cuda", **shapes) == pytest.approx(1.5 * small, 1e-3)
    assert code_shape([4, 4, 4], 16, 64) == (4, 16, 16)
    with pytest.raises(ValueError, match="do not divide"):
        code_shape([4, 4, 4], 10, 64)


def test_killed_tokenizer_training_resumes_to_the_same_model_and_log(tmp_path, monkeypatch, caplog):
    """fit_tokenizer stopped after 3 of 6 steps (its checkpoint left, as a killed job leaves
    it), then rerun: it resumes at step 3 and writes the model and log of an uninterrupted
    run, then removes the checkpoint."""
    movies = write_movies(tmp_path, 2, seconds=4.0, size=16)
    clip = dict(frames=4, fps=8.0, size=16)
    settings = dict(
        channels=8, n_codes=16, code_dim=4, downsample=[2, 4, 4], n_res_blocks=1,
        attention="axial", n_clips=12, steps=6, batch_size=4, lr=1e-3, seed=0,
        checkpoint_every=3, encode_batch_size=8,
    )  # fmt: skip
    fit_tokenizer(movies, tmp_path / "ref.pt", tmp_path / "ref.tsv", clip=clip, settings=settings)

    real = tokenizer.train_vqvae

    def killed(*args, **kwargs):
        real(*args, **kwargs, stop_after=3)
        raise KeyboardInterrupt  # the job dies before its outputs

    checkpoint = tmp_path / "tokenizer" / "checkpoint.pt"
    outputs = (tmp_path / "tokenizer" / "vqvae.pt", tmp_path / "tokenizer" / "log.tsv")
    monkeypatch.setattr(tokenizer, "train_vqvae", killed)
    with pytest.raises(KeyboardInterrupt):
        fit_tokenizer(movies, *outputs, clip=clip, settings=settings, checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["step"] == 3
    monkeypatch.setattr(tokenizer, "train_vqvae", real)
    with caplog.at_level(logging.INFO):
        fit_tokenizer(movies, *outputs, clip=clip, settings=settings, checkpoint=checkpoint)
    assert "at step 3 of 6" in caplog.text
    assert not checkpoint.exists()
    ref, model = load_checkpoint(tmp_path / "ref.pt"), load_checkpoint(outputs[0])
    assert model.config == ref.config and model.config.attention == "axial"
    for (name, a), b in zip(ref.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(
        pd.read_csv(outputs[1], sep="\t"), pd.read_csv(tmp_path / "ref.tsv", sep="\t")
    )
