"""The movie study's stimuli.h5: every TR clip of the encoding's movies, with its codes."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from encscale.data.cneuromod import TR
from encscale.video.decode import read_frames, write_video
from encscale.video.stimuli import prepare_movie_stimuli
from encscale.video.vqvae import VQVAE, VQVAEConfig, clip_from_frames, save_checkpoint

CLIP = {"frames": 4, "fps": 8.0, "size": 16}  # 0.5 s clips


def test_prepare_movie_stimuli(tmp_path):
    rng = np.random.default_rng(0)
    movies = {}
    for name, n_frames in (("friends_s01e01a", 40), ("bourne01", 28)):  # 5 s and 3.5 s
        movies[name] = tmp_path / f"{name}.mkv"
        write_video(movies[name], rng.integers(0, 256, (n_frames, 16, 16, 3), dtype=np.uint8), 8.0)
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(channels=8, n_codes=16, code_dim=4, downsample=(2, 4, 4))).eval()
    save_checkpoint(model, tmp_path / "tokenizer.pt")
    out = tmp_path / "results" / "stimuli.h5"
    prepare_movie_stimuli(
        movies, tmp_path / "tokenizer.pt", out, clip=CLIP, batch_size=2, provenance={"rule": "r"}
    )
    with h5py.File(out, "r") as h5:
        movie = h5["movie"][()].astype(str)
        tr, start_s, end_s, codes = (h5[k][()] for k in ("tr", "start_s", "end_s", "codes"))
        attrs = dict(h5.attrs)
    # TRs that end within the movie: 3 of 5 s, 2 of 3.5 s (TR 1.49 s); movies by name
    assert movie.tolist() == ["bourne01"] * 2 + ["friends_s01e01a"] * 3
    assert tr.tolist() == [0, 1, 0, 1, 2]
    np.testing.assert_allclose(end_s, (tr + 1) * TR)
    np.testing.assert_allclose(start_s, end_s - 0.5)
    # each row's codes: the tokenizer's codes of the clip ending with its TR
    clips = np.stack(
        [
            clip_from_frames(read_frames(movies[m], s, e, CLIP["fps"], CLIP["size"]))
            for m, s, e in zip(movie, start_s, end_s, strict=True)
        ]
    )
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(clips)).numpy()
    assert codes.dtype == np.int16 and codes.shape == (5, 2, 4, 4)
    np.testing.assert_array_equal(codes, expected)
    assert attrs["tr"] == TR and attrs["n_codes"] == 16
    assert (attrs["frames"], attrs["fps"], attrs["size"]) == (4, 8.0, 16)
    assert attrs["encscale_rule"] == "r"
