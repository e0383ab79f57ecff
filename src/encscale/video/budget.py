"""Memory of the movie study's heavy jobs, from the shapes alone: the tokenizer's encoding
job (rule ``tokenize_clips``) and a GPT-2 run (rule ``train_gpt``).

Torch-free: the workflow's planning calls it (a dry run imports no heavy module). Each
request adds a quarter to the estimated peak, and half as much again for every retry
(:func:`request_mb`).

**Encoding.** :func:`encscale.video.tokenizer.tokenize_pretraining_clips` writes the codes
as it encodes them, so its peak resident memory is a constant part that does not depend on
the number of clips n, plus a few bytes per clip of bookkeeping (:func:`tokenize_peak_bytes`)::

    peak = base (+ CUDA's host side on a GPU)
         + 2 × model values (parameters and buffers, float32; loading holds them twice)
         + 2 × batch × 3 × frames × size² × 4        (the batch's clips, listed and stacked)
         + on the CPU: batch × 4 × (16 × frames × size² + 2 × max(channels, 16) × the first
           layer's positions)   (the clips and the largest activation, in and out, in
                                 oneDNN's blocked layouts, which pad channels to 16)
         + 2 × CODE_BUFFER_BYTES                       (the codes' buffer, and one merge read)
         + BYTES_PER_CLIP × n                          (the clip table and the row order)
         + WINDOW_BYTES × the clips of the largest movie (its windows, read in one pass)

where the largest movie's clips are taken as 2 n / movies (movies drawn in proportion to
their length, the longest at most twice the average). The request (:func:`tokenize_mem_mb`)
adds a quarter. At the study's size (6M clips of 16 × 64 × 64 encoded 256 at a time on a
GPU, codes 4 × 16 × 16: 12 GB of them) it is 6.4 GB, 0.5 GB more than for 10k clips; the
former route held every code in memory (a 32 GB job). With ``tokenizer.checkpoint`` (a VQ-VAE
trained elsewhere) the config's architecture keys stand for it in this estimate.

**A GPT-2 run.** :func:`encscale.video.runs.read_codes` reads only the run's rows: its
``n_train`` training clips and the ``n_val`` clips of each validation set, of L = t × h × w
codes each. Its peak resident memory (:func:`gpt_peak_bytes`), with P the model's parameters
(:func:`gpt_parameters`) and S = L + 1 tokens a sequence::

    peak = base (with transformers) (+ CUDA's host side on a GPU)
         + (n_train + 2 × n_val) × L × 2          (the codes, int16: training, overlap, held-out)
         + 2 × n_val × S × 8                      (the validation sequences, int64)
         + 16 × n_train                           (an epoch's permutation of the rows, int64,
                                                   and its making)
         + 16 × P                                 (float32 weights, gradients and AdamW's two
                                                   moments; on a GPU, a resumed checkpoint's)
         + on the CPU: batch × S × 4 × (8 × vocabulary + layers × (24 × width + 2 × heads × S))
                                                  (activations: logits and their gradients,
                                                   each block's, attention's scores)

the activations' factors measured on the CPU (torch 2.x, transformers 5) and rounded up. At
the study's size (L = 1024, n_val 1024, the base model's 34M parameters, on a GPU) the 6M
run's peak is 17 GB, 12.3 GB of it codes (a request of 20 GiB), and the 10k run's 4.6 GB
(5.4 GiB); every run read the whole file before, and each asked for 32 GB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

CODE_BUFFER_BYTES = 256 * 2**20  # codes held before a sorted run is written to scratch
BASE_BYTES = 600 * 2**20  # the interpreter with torch, PyAV, h5py and pandas: measured RSS
CUDA_HOST_BYTES = 3 * 2**30  # host memory of a CUDA context with cuDNN's and cuBLAS's kernels
BYTES_PER_CLIP = 64  # start, movie index, row order, sorted runs, drawing transients
WINDOW_BYTES = 512  # per window of a movie read in one pass: its frame times and slots
GPT_BASE_BYTES = 768 * 2**20  # the interpreter with torch, transformers, h5py and pandas,
# and a training step's fixed allocations: measured 0.55-0.65 GB on the CPU
CODE_BYTES = 2  # a code, int16
TOKEN_BYTES = 8  # a token of a sequence, int64
BYTES_PER_TRAIN_CLIP = 16  # an epoch's permutation (int64) and its making
BYTES_PER_PARAMETER = 16  # float32 weights, gradients, AdamW's first and second moments
LOGIT_VALUES = 8  # float32 values per token and vocabulary entry on the CPU (measured)
BLOCK_VALUES = 24  # float32 values per token and width unit of a block on the CPU (measured)
SCORE_VALUES = 2  # float32 attention scores kept per token, head and position (measured)


def code_shape(downsample: Sequence[int], frames: int, size: int) -> tuple[int, int, int]:
    """(t, h, w) of a clip's codes: (frames, size, size) / downsample."""
    t, h, w = (int(s) for s in downsample)
    if frames % t or size % h or size % w:
        raise ValueError(
            f"clips of {frames} frames of {size} × {size} px do not divide by downsample "
            f"{list(downsample)}"
        )
    return frames // t, size // h, size // w


def _strides(downsample: Sequence[int]) -> list[tuple[int, int, int]]:
    logs = [int(math.log2(s)) for s in downsample]
    return [tuple(2 if i < n else 1 for n in logs) for i in range(max(logs))]


def vqvae_values(tokenizer: Mapping[str, Any]) -> int:
    """Parameters and buffers of :class:`encscale.video.vqvae.VQVAE` with the ``tokenizer``
    settings (``channels``, ``n_codes``, ``code_dim``, ``downsample``, ``n_res_blocks``,
    ``attention``), counted from its layers."""
    c, d, k = tokenizer["channels"], tokenizer["code_dim"], tokenizer["n_codes"]
    blocks = tokenizer["n_res_blocks"]
    steps = _strides(tokenizer["downsample"])
    kernel = [math.prod(4 if s == 2 else 3 for s in stride) for stride in steps]

    def bn(ch: int) -> int:  # weight, bias, running mean and variance, batch count
        return 4 * ch + 1

    if tokenizer.get("attention", "axial") == "axial":
        half = c // 2
        attention = 3 * (4 * c * c + c)  # q, k, v, out along t, h and w
        block = bn(c) + 27 * c * half + bn(half) + half * c + bn(c) + attention
    else:
        block = bn(c) + 27 * c * c + bn(c) + c * c
    encoder = sum((3 if i == 0 else c) * c * n + c for i, n in enumerate(kernel))
    encoder += (c if steps else 3) * c * 27 + c + blocks * block + bn(c) + c * d + d
    codebook = 2 * k * d + k + 1
    decoder = d * c + c + blocks * block + bn(c) + sum(c * c * n + c for n in kernel)
    decoder += c * 3 * 27 + 3
    return encoder + codebook + decoder


def tokenize_peak_bytes(
    *,
    n: int,
    n_movies: int,
    clip: Mapping[str, Any],
    tokenizer: Mapping[str, Any],
    batch_size: int,
    device: str,
    buffer_bytes: int = CODE_BUFFER_BYTES,
) -> int:
    """Peak resident memory (bytes) of encoding ``n`` clips of ``n_movies`` movies (module
    docstring). ``clip``: ``frames``, ``size``; ``tokenizer``: the VQ-VAE's settings."""
    frames, size = clip["frames"], clip["size"]
    code_shape(tokenizer["downsample"], frames, size)  # checks the shapes
    peak = BASE_BYTES + (CUDA_HOST_BYTES if device.startswith("cuda") else 0)
    peak += 2 * 4 * vqvae_values(tokenizer)
    peak += 2 * batch_size * 3 * frames * size * size * 4
    if not device.startswith("cuda"):
        (t, h, w), *_ = _strides(tokenizer["downsample"]) or [(1, 1, 1)]
        first = (frames // t) * (size // h) * (size // w)
        channels = max(tokenizer["channels"], 16)
        peak += batch_size * 4 * (16 * frames * size * size + 2 * channels * first)
    peak += 2 * buffer_bytes
    peak += BYTES_PER_CLIP * n + WINDOW_BYTES * math.ceil(2 * n / max(n_movies, 1))
    return peak


def request_mb(peak: float, attempt: int = 1) -> int:
    """A job's memory request (MB) for an estimated ``peak`` (bytes): a quarter more for what
    the estimate leaves out (allocator slack, the HDF5 library), and half as much again for
    every retry (Snakemake's ``attempt``)."""
    return math.ceil(peak * 1.25 * (1 + 0.5 * (attempt - 1)) / 2**20)


def tokenize_mem_mb(attempt: int = 1, **shapes: Any) -> int:
    """The encoding job's memory request (MB): :func:`request_mb` of
    :func:`tokenize_peak_bytes` of ``shapes``."""
    return request_mb(tokenize_peak_bytes(**shapes), attempt)


def gpt_parameters(*, width: int, layers: int, context: int, n_codes: int) -> int:
    """Parameters of :func:`encscale.video.gpt.build_gpt`'s GPT-2: token (codes + the start
    token) and position embeddings, ``layers`` blocks (two layer norms, attention's qkv and
    output projections, the 4 × width MLP) and the final layer norm; the output layer shares
    the token embeddings."""
    d = width
    return (n_codes + 1) * d + context * d + layers * (12 * d * d + 13 * d) + 2 * d


def gpt_peak_bytes(
    *,
    n_train: int,
    n_val: int,
    code_positions: int,
    width: int,
    layers: int,
    heads: int,
    context: int,
    n_codes: int,
    batch_size: int,
    device: str,
) -> int:
    """Peak resident memory (bytes) of a GPT-2 run on ``n_train`` clips, validated on
    ``n_val`` of each set, with ``code_positions`` (t × h × w) codes a clip (module
    docstring)."""
    seq = code_positions + 1
    params = gpt_parameters(width=width, layers=layers, context=context, n_codes=n_codes)
    peak = GPT_BASE_BYTES + (CUDA_HOST_BYTES if device.startswith("cuda") else 0)
    peak += (n_train + 2 * n_val) * code_positions * CODE_BYTES
    peak += 2 * n_val * seq * TOKEN_BYTES
    peak += BYTES_PER_TRAIN_CLIP * n_train
    peak += BYTES_PER_PARAMETER * params
    if not device.startswith("cuda"):
        per_token = LOGIT_VALUES * (n_codes + 1)
        per_token += layers * (BLOCK_VALUES * width + SCORE_VALUES * heads * seq)
        peak += batch_size * seq * 4 * per_token
    return peak


def gpt_mem_mb(attempt: int = 1, **shapes: Any) -> int:
    """A GPT-2 run's memory request (MB): :func:`request_mb` of :func:`gpt_peak_bytes` of
    ``shapes``."""
    return request_mb(gpt_peak_bytes(**shapes), attempt)
