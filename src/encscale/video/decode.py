"""Movie stimuli: writing, probing and sampling video files, and aligning them to fMRI TRs.

Times are in seconds from the video stream's first frame. Frames are sampled by
sample-and-hold: the sample at time t is the last frame whose presentation time is <= t
(up to one tick of the stream's time base, so timestamps rounded by the container, e.g.
Matroska's milliseconds, do not shift a frame by one). Pixels are returned as float32 in
[-0.5, 0.5] (value / 255 - 0.5), RGB, channels last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from nilearn.glm.first_level import spm_hrf
from scipy.signal import lfilter

from encscale._lazy import optional_import
from encscale.io import PathLike, atomic_path, require_file

av = optional_import("av", "video")  # PyAV

CONTAINERS = {".mkv": "matroska", ".mp4": "mp4"}
# Pixel format each codec is written in; bgr0 keeps 8-bit RGB exactly (ffv1 is lossless).
PIXEL_FORMATS = {"libx264": "yuv420p", "mpeg4": "yuv420p", "ffv1": "bgr0"}
# A video whose frames end more than this before the duration its header declares is taken
# as truncated (a container's duration spans all its streams, which may differ slightly).
END_TOLERANCE_S = 1.0
# Windows of one video further apart than this (s) are reached by seeking, not decoding on.
SEEK_GAP_S = 10.0
# Oversampling of nilearn's HRF grid before it is interpolated at multiples of the TR.
HRF_OVERSAMPLING = 1000


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 18,
) -> None:
    """Write (T, H, W, 3) uint8 RGB ``frames`` at ``fps`` frames/s to a .mkv or .mp4 file.

    Written atomically (:func:`encscale.io.atomic_path`). ``codec``: "libx264" (yuv420p, so H
    and W must be even; quality ``crf``: 0 lossless after yuv420p, 18 ≈ visually lossless),
    "mpeg4" (yuv420p) or "ffv1" (lossless: the frames read back exactly).
    """
    path = Path(path)
    container_format = CONTAINERS.get(path.suffix.lower())
    if container_format is None:
        raise ValueError(f"{path}: unknown video suffix, expected one of {sorted(CONTAINERS)}")
    if codec not in PIXEL_FORMATS:
        raise ValueError(f"{path}: codec '{codec}' not supported, expected {sorted(PIXEL_FORMATS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"{path}: frames have shape {frames.shape}, expected (T>0, H, W, 3)")
    if frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames have dtype {frames.dtype}, expected uint8")
    if not fps > 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps}")
    height, width = frames.shape[1:3]
    pix_fmt = PIXEL_FORMATS[codec]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{path}: {codec} (yuv420p) needs even H and W, got {height}×{width}")
    with atomic_path(path) as tmp:
        try:
            with av.open(str(tmp), "w", format=container_format) as container:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(100_000))
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                if codec == "libx264":
                    stream.options = {"crf": str(crf)}
                for frame in frames:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
        except av.FFmpegError as err:
            raise ValueError(f"{path}: cannot write video with {codec}: {err}") from err


@dataclass(frozen=True)
class VideoInfo:
    """A video stream: frame count, frame rate (frames/s), duration (s) and size (pixels)."""

    n_frames: int
    fps: float
    duration_s: float
    width: int
    height: int


def _open(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``path`` and return it with its first video stream, with errors naming the file."""
    require_file(path, "video file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"{path}: not a readable video file: {err}") from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def _fps(path: Path, stream: av.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise ValueError(f"{path}: frame rate unknown")
    return float(rate)


def _declared_duration(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream
) -> float:
    """The duration (s) the header gives the video stream, else the whole container."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    raise ValueError(f"{path}: duration unknown")


def probe_video(path: PathLike) -> VideoInfo:
    """Count the frames of ``path``'s video stream (reading its packets, not decoding them).

    ``duration_s`` is where the last frame ends. Raises ValueError if the file is not a
    video, or is truncated (its frames end more than ``END_TOLERANCE_S`` before the duration
    its header declares).
    """
    path = Path(path)
    container, stream = _open(path)
    with container:
        fps = _fps(path, stream)
        declared = _declared_duration(path, container, stream)
        origin = stream.start_time or 0
        default_duration = round(1 / (fps * stream.time_base))
        n_frames, end = 0, origin
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                n_frames += 1
                end = max(end, packet.pts + (packet.duration or default_duration))
        except av.FFmpegError as err:
            raise ValueError(f"{path}: broken video data: {err}") from err
        duration_s = float((end - origin) * stream.time_base)
        if n_frames == 0 or duration_s < declared - END_TOLERANCE_S:
            raise ValueError(
                f"{path}: truncated video: frames end at {duration_s:.3f} s, "
                f"header declares {declared:.3f} s"
            )
        return VideoInfo(n_frames, fps, duration_s, stream.width, stream.height)


def frame_times(start_s: float, end_s: float, fps: float) -> np.ndarray:
    """(n,) float64 sample times start_s + k / fps for k = 0, 1, ... while < end_s.

    A time within 1e-6 sample of ``end_s`` (float round-off) counts as reaching it.
    """
    n = max(0, int(np.ceil((end_s - start_s) * fps - 1e-6)))
    return start_s + np.arange(n) / fps


def _square(frame: av.VideoFrame, size: int) -> np.ndarray:
    """(size, size, 3) float32 in [-0.5, 0.5]: shorter side scaled to ``size``, centre-cropped."""
    width, height = frame.width, frame.height
    scale = size / min(width, height)
    new_w = size if width <= height else round(width * scale)
    new_h = size if height <= width else round(height * scale)
    rgb = frame.to_ndarray(width=new_w, height=new_h, format="rgb24", interpolation="BILINEAR")
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return rgb[top : top + size, left : left + size].astype(np.float32) / 255 - 0.5


def read_frames(path: PathLike, start_s: float, end_s: float, fps: float, size: int) -> np.ndarray:
    """The frames of [start_s, end_s) resampled to ``fps`` (:func:`frame_times`, sample-and-hold).

    Seeks to the keyframe at or before ``start_s`` and decodes forward. Each frame is scaled
    so its shorter side is ``size`` (bilinear) and centre-cropped. Returns (n, size, size, 3)
    float32 in [-0.5, 0.5].
    """
    ((_, frames),) = iter_windows(path, [start_s], [end_s], fps, size)
    return frames


def iter_windows(
    path: PathLike,
    starts_s: Sequence[float] | np.ndarray,
    ends_s: Sequence[float] | np.ndarray,
    fps: float,
    size: int,
    *,
    max_gap_s: float = SEEK_GAP_S,
) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of many windows [starts_s[i], ends_s[i]) of one video, each exactly as
    :func:`read_frames` reads it, in one pass over the file.

    Windows are visited in order of start: the decoder runs on from one window to the next
    and seeks only across a gap of more than ``max_gap_s`` seconds, and each decoded frame is
    scaled once however many windows hold it. Yields (i, frames (n_i, size, size, 3)) as
    each window is complete.
    """
    path = Path(path)
    starts, ends = np.asarray(starts_s, dtype=float), np.asarray(ends_s, dtype=float)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise ValueError(f"{path}: starts {starts.shape} and ends {ends.shape} differ")
    for start_s, end_s in zip(starts, ends, strict=True):
        if not 0 <= start_s < end_s:
            raise ValueError(f"{path}: need 0 <= start_s < end_s, got [{start_s}, {end_s})")
    if not fps > 0 or size < 1:
        raise ValueError(f"{path}: need fps > 0 and size >= 1, got fps={fps}, size={size}")
    times = [frame_times(s, e, fps) for s, e in zip(starts, ends, strict=True)]
    container, stream = _open(path)
    with container:
        duration = _declared_duration(path, container, stream)
        for start_s, end_s in zip(starts, ends, strict=True):
            if end_s > duration + 1e-6:
                raise ValueError(
                    f"{path}: [{start_s}, {end_s}) s goes beyond the video's end ({duration:.3f} s)"
                )
        stream.thread_type = "AUTO"
        for group in _window_groups(starts, ends, max_gap_s):
            yield from _decode_windows(path, container, stream, group, times, size)


def _window_groups(starts: np.ndarray, ends: np.ndarray, max_gap_s: float) -> list[list[int]]:
    """Window indices in order of start, cut where a start lies more than ``max_gap_s``
    beyond every earlier window's end."""
    groups: list[list[int]] = []
    reach = -np.inf
    for i in np.argsort(starts, kind="stable").tolist():
        if starts[i] > reach + max_gap_s:
            groups.append([])
        groups[-1].append(i)
        reach = max(reach, ends[i])
    return groups


def _decode_windows(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    group: list[int],
    times: list[np.ndarray],
    size: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """Seek to the first window of ``group``, decode on until its windows are full (sample
    and hold at each sample time), yield each window when complete. Only the windows that
    overlap the decoder's position are held in memory."""
    slot_t = np.concatenate([times[i] for i in group])
    slot_w = np.concatenate([np.full(len(times[i]), i) for i in group])
    slot_k = np.concatenate([np.arange(len(times[i])) for i in group])
    order = np.argsort(slot_t, kind="stable")
    slot_t, slot_w, slot_k = slot_t[order], slot_w[order], slot_k[order]
    left = {i: len(times[i]) for i in group}
    for i in [i for i in group if not left[i]]:
        yield i, np.empty((0, size, size, 3), dtype=np.float32)
    if not len(slot_t):
        return
    out: dict[int, np.ndarray] = {}  # the windows begun and not yet complete
    tick = float(stream.time_base)
    origin = stream.start_time or 0
    first = float(slot_t[0])
    j, held, held_rgb, held_t = 0, None, None, 0.0

    def fill(frame_rgb: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal j
        w, k = int(slot_w[j]), int(slot_k[j])
        if w not in out:
            out[w] = np.empty((len(times[w]), size, size, 3), dtype=np.float32)
        out[w][k] = frame_rgb
        left[w] -= 1
        j += 1
        if not left[w]:
            yield w, out.pop(w)

    try:
        container.seek(origin + int(first / tick), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float((frame.pts - origin) * stream.time_base)
            if held is None and t > slot_t[0] + tick:
                raise ValueError(f"{path}: seeking to {first} s reached a frame at {t} s")
            while j < len(slot_t) and t > slot_t[j] + tick:
                if held_rgb is None:
                    held_rgb = _square(held, size)
                yield from fill(held_rgb)
            if j == len(slot_t):
                break
            held, held_rgb, held_t = frame, None, t
    except av.FFmpegError as err:
        raise ValueError(f"{path}: broken video data: {err}") from err
    if j < len(slot_t):
        if held is None or slot_t[-1] > held_t + END_TOLERANCE_S:
            raise ValueError(
                f"{path}: truncated video: last frame at {held_t:.3f} s, "
                f"header declares {_declared_duration(path, container, stream):.3f} s"
            )
        held_rgb = _square(held, size) if held_rgb is None else held_rgb
        while j < len(slot_t):
            yield from fill(held_rgb)


def tr_windows(
    n_trs: int, tr: float, lag: int, window_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stimulus window (s) that predicts each TR, ``lag`` TRs of haemodynamic delay before it.

    TR t covers [t·tr, (t+1)·tr); its window ends where TR t - lag ends, (t - lag + 1)·tr, and
    lasts ``window_s``. Returns start_s (n_trs,), end_s (n_trs,) and valid (n_trs,) bool,
    True where the window starts at or after 0 (a start within 1e-9 s of 0 is set to 0).
    """
    if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
        raise ValueError(f"lag must be an integer >= 0 TRs, got {lag!r}")
    if not window_s > 0 or not tr > 0:
        raise ValueError(f"window_s and tr must be > 0, got window_s={window_s}, tr={tr}")
    end_s = (np.arange(n_trs) - lag + 1) * tr
    start_s = end_s - window_s
    start_s[np.abs(start_s) < 1e-9] = 0.0
    return start_s, end_s, start_s >= 0


def canonical_hrf(tr: float, duration_s: float = 32.0) -> np.ndarray:
    """(n,) SPM canonical HRF at times 0, tr, 2·tr, ... <= ``duration_s``, summing to 1.

    nilearn's :func:`~nilearn.glm.first_level.spm_hrf` on a fine grid (tr / HRF_OVERSAMPLING),
    linearly interpolated at the multiples of ``tr`` (nilearn's grid spacing is not exactly
    tr / oversampling).
    """
    if not tr > 0 or not duration_s >= tr:
        raise ValueError(f"need 0 < tr <= duration_s, got tr={tr}, duration_s={duration_s}")
    fine = spm_hrf(tr, oversampling=HRF_OVERSAMPLING, time_length=duration_s)
    fine_times = np.linspace(0, duration_s, len(fine))
    times = np.arange(int(np.floor(duration_s / tr + 1e-9)) + 1) * tr
    hrf = np.interp(times, fine_times, fine)
    return hrf / hrf.sum()


def convolve_hrf(signal: np.ndarray, tr: float) -> np.ndarray:
    """(n_trs, k) → (n_trs, k) float64: each column causally convolved with
    :func:`canonical_hrf` (output t depends on inputs 0..t only)."""
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ValueError(f"signal has shape {signal.shape}, expected (n_trs, k)")
    return lfilter(canonical_hrf(tr), [1.0], signal.astype(np.float64), axis=0)
