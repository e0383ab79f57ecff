"""Movie stimuli: writing and probing videos, sampling frames, TR windows and the HRF."""

from __future__ import annotations

import re

import av
import numpy as np
import pytest
from nilearn.glm.first_level import spm_hrf
from scipy.stats import gamma

from encscale.video.decode import (
    canonical_hrf,
    convolve_hrf,
    frame_times,
    iter_windows,
    probe_video,
    read_frames,
    tr_windows,
    write_video,
)


def smooth_frames(n: int, height: int, width: int) -> np.ndarray:
    """(n, height, width, 3) uint8 slowly varying colour waves, easy for a lossy codec."""
    y, x = np.mgrid[:height, :width]
    t = np.arange(n)[:, None, None, None]
    phase = np.array([0.0, 2.0, 4.0])
    wave = np.sin(x[None, ..., None] / 9 + y[None, ..., None] / 13 + t / 4 + phase)
    return np.round(128 + 60 * wave).astype(np.uint8)


def grey_frames(levels: np.ndarray, side: int = 32) -> np.ndarray:
    """One uniform grey (side × side) frame per level."""
    return np.broadcast_to(
        np.asarray(levels, np.uint8)[:, None, None, None], (len(levels), side, side, 3)
    ).copy()


def scaled(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) / 255 - 0.5


def named(path) -> str:
    return re.escape(str(path))


# --- writing and probing ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_libx264_round_trip(tmp_path, suffix):
    frames = smooth_frames(24, 48, 64)
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, 8.0)
    info = probe_video(path)
    assert (info.n_frames, info.fps, info.width, info.height) == (24, 8.0, 64, 48)
    assert abs(info.duration_s - 3.0) <= 1 / 8
    # 64 × 48 at size 48: no scaling, the centre 48 columns (8..56).
    got = read_frames(path, 0.0, 3.0, 8.0, 48)
    assert got.shape == (24, 48, 48, 3) and got.dtype == np.float32
    assert np.abs(got - scaled(frames[:, :, 8:56])).mean() < 0.02
    assert list(tmp_path.iterdir()) == [path]


def test_ffv1_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (24, 48, 48, 3), dtype=np.uint8)
    path = tmp_path / "clip.mkv"
    write_video(path, frames, 8.0, codec="ffv1")
    info = probe_video(path)
    assert (info.n_frames, info.fps, info.duration_s) == (24, 8.0, 3.0)
    np.testing.assert_allclose(read_frames(path, 0.0, 3.0, 8.0, 48), scaled(frames), atol=1e-6)


# --- sampling ---------------------------------------------------------------------------


@pytest.fixture
def grey_video(tmp_path):
    """3 s at 10 fps, frame i a uniform grey of level 8·i, lossless."""
    path = tmp_path / "grey.mkv"
    write_video(path, grey_frames(8 * np.arange(30)), 10.0, codec="ffv1")
    return path


def levels(clip: np.ndarray) -> list[int]:
    """The grey level of each (uniform) frame of a read clip."""
    assert np.ptp(clip, axis=(1, 2, 3)).max() == 0
    return [round((v + 0.5) * 255) for v in clip[:, 0, 0, 0]]


@pytest.mark.parametrize(
    ("start", "end", "fps", "frames"),
    [
        (1.0, 2.0, 4.0, [10, 12, 15, 17]),  # 1.0, 1.25, 1.5, 1.75 s
        (0.95, 1.3, 10.0, [9, 10, 11, 12]),  # between frames: the earlier one is held
        (0.0, 0.5, 20.0, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),  # upsampling repeats frames
        (2.5, 3.0, 4.0, [25, 27]),
    ],
)
def test_read_frames_sample_and_hold(grey_video, start, end, fps, frames):
    assert levels(read_frames(grey_video, start, end, fps, 32)) == [8 * i for i in frames]


def test_read_after_seek_equals_read_from_start(grey_video):
    whole = read_frames(grey_video, 0.0, 3.0, 10.0, 32)
    np.testing.assert_array_equal(read_frames(grey_video, 2.0, 3.0, 10.0, 32), whole[20:])
    np.testing.assert_array_equal(read_frames(grey_video, 1.3, 2.1, 10.0, 32), whole[13:21])


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
@pytest.mark.parametrize("max_gap_s", [0.0, 2.0, 100.0])
def test_iter_windows_reads_each_window_as_read_frames(tmp_path, codec, max_gap_s):
    """Overlapping, repeated, distant and unsorted windows, read in one pass (decoding on,
    or seeking across gaps): each equals its own read_frames, sample for sample."""
    path = tmp_path / "smooth.mkv"
    write_video(path, smooth_frames(120, 48, 64), 10.0, codec=codec)  # 12 s
    starts = np.array([7.3, 0.0, 0.45, 0.45, 1.0, 10.9, 3.33, 0.2])
    ends = starts + np.array([0.8, 0.5, 1.0, 1.0, 0.05, 1.1, 2.0, 0.3])
    got = dict(iter_windows(path, starts, ends, 8.0, 32, max_gap_s=max_gap_s))
    assert sorted(got) == list(range(len(starts)))
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        np.testing.assert_array_equal(got[i], read_frames(path, start, end, 8.0, 32))


def test_iter_windows_errors_name_the_file_and_window(grey_video):
    with pytest.raises(ValueError, match=rf"{named(grey_video)}: \[2.5, 3.5\) s goes beyond"):
        list(iter_windows(grey_video, [0.0, 2.5], [1.0, 3.5], 10.0, 32))
    with pytest.raises(ValueError, match="need 0 <= start_s < end_s"):
        list(iter_windows(grey_video, [1.0], [1.0], 10.0, 32))


def test_uniform_frame_scales_to_same_level(grey_video):
    assert levels(read_frames(grey_video, 1.0, 1.2, 10.0, 12)) == [80, 88]


@pytest.mark.parametrize("portrait", [False, True])
def test_centre_crop(tmp_path, portrait):
    """96 wide × 64 high, size 32: scaled to 48 × 32, whose centre 32 columns are the
    original columns 16..80; the outer bands (0..16, 80..96) are cut off."""
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:, :16] = (250, 0, 0)
    frame[:, 16:48] = (0, 200, 0)
    frame[:, 48:80] = (0, 0, 200)
    frame[:, 80:] = (250, 250, 250)
    frames = np.stack([frame] * 2)
    if portrait:
        frames = frames.transpose(0, 2, 1, 3)
    path = tmp_path / "bands.mkv"
    write_video(path, frames, 2.0, codec="ffv1")
    got = (read_frames(path, 0.0, 1.0, 2.0, 32)[0] + 0.5) * 255
    if portrait:
        got = got.transpose(1, 0, 2)
    np.testing.assert_allclose(got[:, 1:15], np.broadcast_to([0, 200, 0], (32, 14, 3)), atol=0.5)
    np.testing.assert_allclose(got[:, 17:31], np.broadcast_to([0, 0, 200], (32, 14, 3)), atol=0.5)
    # Bilinear scaling blends the edge columns with the cut-off bands (250) by < 1/6.
    assert got[:, [0, 31], 0].max() < 40 and got[:, 31, 1].max() < 40
    # Exact, without scaling: 64 × 48 at size 48 keeps columns 8..56.
    frames = np.random.default_rng(1).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    write_video(path, frames, 2.0, codec="ffv1")
    np.testing.assert_array_equal(read_frames(path, 0.0, 1.0, 2.0, 48), scaled(frames[:, :, 8:56]))


@pytest.mark.parametrize(
    ("start", "end", "fps", "expected"),
    [
        (1.49, 4.47, 4.0, [1.49 + 0.25 * k for k in range(12)]),  # last 4.24 < 4.47 < 4.49
        (0.0, 3.0, 8.0, [k / 8 for k in range(24)]),  # 3.0 exactly excluded
        (0.0, 1.0, 3.0, [0.0, 1 / 3, 2 / 3]),  # 3 · (1/3) rounds to 1.0: excluded
        (0.1, 0.7, 10.0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),  # (0.7 - 0.1) · 10 = 5.999...
        (2.0, 2.0, 8.0, []),
    ],
)
def test_frame_times(start, end, fps, expected):
    got = frame_times(start, end, fps)
    assert got.dtype == np.float64 and len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_frame_times_hand_values():
    np.testing.assert_allclose(frame_times(1.49, 4.47, 4.0)[[0, 1, -1]], [1.49, 1.74, 4.24])
    assert frame_times(0.0, 3.0, 8.0)[-1] == 2.875


# --- TR windows and the HRF -------------------------------------------------------------


def test_tr_windows():
    start, end, valid = tr_windows(8, 1.49, 3, 2.98)
    assert (start[5], end[5], valid[5]) == (pytest.approx(1.49), pytest.approx(4.47), True)
    assert (start[3], end[3], valid[3]) == (pytest.approx(-1.49), pytest.approx(1.49), False)
    assert (start[4], end[4], valid[4]) == (0.0, pytest.approx(2.98), True)
    assert valid.tolist() == [False] * 4 + [True] * 4
    np.testing.assert_allclose(end - start, 2.98)
    # lag 0: TR t's window ends with it, at (t + 1)·tr.
    start, end, valid = tr_windows(4, 1.49, 0, 1.49)
    np.testing.assert_allclose(end, [1.49, 2.98, 4.47, 5.96])
    assert valid.all() and start[0] == 0.0


def test_tr_windows_start_at_zero_despite_round_off():
    # 3 · 0.7 = 2.0999999999999996 < 2.1: the window of TR 2 starts at -4e-16.
    start, _, valid = tr_windows(4, 0.7, 0, 2.1)
    assert start[2] == 0.0 and valid.tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("lag", "window", "message"),
    [
        (-1, 2.0, "lag must be an integer >= 0 TRs, got -1"),
        (1.5, 2.0, "lag must be an integer >= 0 TRs, got 1.5"),
        (1, 0.0, "window_s and tr must be > 0, got window_s=0.0"),
        (1, -1.0, "window_s and tr must be > 0, got window_s=-1.0"),
    ],
)
def test_tr_windows_rejects_bad_arguments(lag, window, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tr_windows(8, 1.49, lag, window)


def test_canonical_hrf():
    tr = 1.49
    hrf = canonical_hrf(tr)
    assert hrf.shape == (22,)  # 0, 1.49, ..., 31.29 s
    assert hrf.sum() == pytest.approx(1.0, abs=1e-12)
    assert hrf.argmax() == 3 == round(5.0 / tr)  # the peak (~5 s) at 4.47 s
    assert hrf[0] == 0.0 and hrf.min() < 0 and hrf.argmin() > 6  # undershoot after the peak
    # SPM's double gamma (peak shape 6, undershoot shape 16, ratio 0.167) at exactly k·tr.
    t = np.arange(22) * tr
    spm = gamma.pdf(t, 6) - 0.167 * gamma.pdf(t, 16)
    np.testing.assert_allclose(hrf, spm / spm.sum(), atol=5e-4)
    # nilearn's own oversampled curve, read at the same times.
    fine = spm_hrf(tr, oversampling=50)
    coarse = np.interp(t, np.linspace(0, 32, len(fine)), fine)
    np.testing.assert_allclose(hrf, coarse / coarse.sum(), atol=5e-3)


def test_convolve_hrf_impulse_and_causality():
    tr = 1.49
    hrf = canonical_hrf(tr)
    signal = np.zeros((40, 2))
    signal[10, 0] = 1.0
    signal[5, 1] = 2.0
    out = convolve_hrf(signal, tr)
    assert out.shape == (40, 2)
    np.testing.assert_array_equal(out[:, 0], np.r_[np.zeros(10), hrf, np.zeros(8)])
    np.testing.assert_allclose(out[:, 1], np.r_[np.zeros(5), 2 * hrf, np.zeros(13)], atol=1e-15)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3))
    later = x.copy()
    later[13:] = rng.standard_normal((17, 3))
    np.testing.assert_array_equal(convolve_hrf(later, tr)[:13], convolve_hrf(x, tr)[:13])
    assert not np.allclose(convolve_hrf(later, tr)[13:], convolve_hrf(x, tr)[13:])


@pytest.mark.parametrize("shape", [(30,), (30, 2, 2)])
def test_convolve_hrf_rejects_bad_shape(shape):
    with pytest.raises(ValueError, match="expected"):
        convolve_hrf(np.zeros(shape), 1.49)


# --- bad input --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.mkv"
    with pytest.raises(FileNotFoundError, match=named(path)):
        probe_video(path)
    with pytest.raises(FileNotFoundError, match=named(path)):
        read_frames(path, 0.0, 1.0, 8.0, 32)


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mkv"
    path.write_text("not a video\n" * 100)
    with pytest.raises(ValueError, match=named(path)):
        probe_video(path)
    with pytest.raises(ValueError, match=named(path)):
        read_frames(path, 0.0, 1.0, 8.0, 32)


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mkv", "ffv1"), (".mkv", "libx264"), (".mp4", "libx264")]
)
def test_truncated_video(tmp_path, suffix, codec):
    whole = tmp_path / f"whole{suffix}"
    write_video(whole, smooth_frames(24, 48, 48), 8.0, codec=codec)
    path = tmp_path / f"half{suffix}"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=named(path)):
        probe_video(path)
    with pytest.raises(ValueError, match=named(path)):
        read_frames(path, 2.0, 3.0, 8.0, 32)


def test_read_beyond_the_end(grey_video):
    with pytest.raises(ValueError, match=rf"{named(grey_video)}.*\(3\.000 s\)"):
        read_frames(grey_video, 2.0, 3.5, 10.0, 32)
    with pytest.raises(ValueError, match=named(grey_video)):
        read_frames(grey_video, -0.5, 1.0, 10.0, 32)


@pytest.mark.parametrize(
    ("frames", "kwargs", "message"),
    [
        (np.zeros((2, 32, 32, 3), np.float32), {}, "dtype float32"),
        (np.zeros((2, 32, 32), np.uint8), {}, "shape"),
        (np.zeros((0, 32, 32, 3), np.uint8), {}, "shape"),
        (np.zeros((2, 33, 32, 3), np.uint8), {}, "even"),
        (np.zeros((2, 32, 31, 3), np.uint8), {"codec": "mpeg4"}, "even"),
        (np.zeros((2, 32, 32, 3), np.uint8), {"codec": "vp9"}, "codec"),
        (np.zeros((2, 32, 32, 3), np.uint8), {"crf": -100}, "libx264"),
    ],
)
def test_write_video_rejects_bad_input(tmp_path, frames, kwargs, message):
    path = tmp_path / "out" / "clip.mkv"
    with pytest.raises(ValueError, match=rf"{named(path)}.*{message}"):
        write_video(path, frames, 8.0, **kwargs)
    assert not path.exists() and not list(tmp_path.rglob("*.tmp-*"))


def test_write_video_failing_midway_leaves_no_file(tmp_path, monkeypatch):
    real = av.VideoFrame
    calls = []

    class FailingFrame:
        @staticmethod
        def from_ndarray(array, format):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("encoder died")
            return real.from_ndarray(array, format=format)

    monkeypatch.setattr(av, "VideoFrame", FailingFrame)
    path = tmp_path / "clip.mkv"
    with pytest.raises(RuntimeError, match="encoder died"):
        write_video(path, smooth_frames(24, 48, 48), 8.0, codec="ffv1")
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


def test_write_video_rejects_unknown_suffix(tmp_path):
    path = tmp_path / "clip.avi"
    with pytest.raises(ValueError, match=named(path)):
        write_video(path, smooth_frames(2, 32, 32), 8.0)
