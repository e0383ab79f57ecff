"""VQ-VAE for video clips, the first stage of VideoGPT (Yan et al. 2021).

A 3-D convolutional encoder maps a clip (B, 3, T, H, W), pixels in [-0.5, 0.5], to a grid of
vectors (B, code_dim, t, h, w) with (t, h, w) = (T, H, W) / ``downsample``; each vector is
replaced by its nearest codebook entry (an integer code) and a mirrored decoder maps the
quantised grid back to a clip. The codebook is learnt by exponential moving averages (van den
Oord et al. 2017, appendix; Razavi et al. 2019), not by gradients: the encoder gets the
reconstruction gradient through the quantiser unchanged (straight-through) plus the
commitment loss.

Each residual block of the encoder and decoder ends, as VideoGPT's ``AttentionResidualBlock``
does, in axial self-attention (:class:`AxialBlock`): multi-head attention along each of the
grid's three axes (t, h, w), summed, so every position sees every other along its line
whatever the distance; ``attention: none`` keeps the convolution-only block
(:class:`ResBlock`). As in VideoGPT's VQ-VAE, the attention has no position embedding (its
``AddBroadcastPosEmbed`` belongs to the transformer): the convolutions before it carry where
a position is.

Training (:func:`train_vqvae`) can keep a checkpoint and resume from it
(:mod:`encscale.video.resume`): a killed run resumes to exactly the state of one never
interrupted.

Randomness (the codebook's initialisation and the restart of dead codes) is drawn from a
``torch.Generator`` when one is passed to ``forward``, else from torch's global RNG.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encscale.io import PathLike, atomic_path, require_file
from encscale.video.resume import load_resume_checkpoint, save_resume_checkpoint, signature

logger = logging.getLogger(__name__)

# Laplace smoothing of the EMA code counts (avoids dividing by a zero count).
LAPLACE_EPS = 1e-5
ATTENTIONS = ("axial", "none")
AXIAL_HEADS = 2  # VideoGPT's AxialBlock(n_hiddens, 2)


@dataclass(frozen=True)
class VQVAEConfig:
    """Architecture and codebook settings (VideoGPT: channels 240, n_codes 2048, code_dim 256,
    downsample (4, 4, 4)).

    ``downsample``: (t, h, w) strides, powers of two; ``ema_decay``: decay of the codebook's
    moving averages per training step; ``commitment``: weight of the commitment loss;
    ``dead_code_threshold``: a code whose EMA usage count (vectors per batch) falls below it is
    restarted (0 disables restarts); ``attention``: ``axial`` (VideoGPT's residual blocks, with
    axial attention; ``channels`` must be even) or ``none`` (convolutions only).
    """

    channels: int = 240
    n_codes: int = 2048
    code_dim: int = 256
    downsample: tuple[int, int, int] = (4, 4, 4)
    n_res_blocks: int = 4
    ema_decay: float = 0.99
    commitment: float = 0.25
    dead_code_threshold: float = 1.0
    attention: str = "axial"

    def __post_init__(self) -> None:
        for name in ("channels", "n_codes", "code_dim"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"VQVAEConfig.{name} must be an integer >= 1")
        ds = tuple(self.downsample)
        if len(ds) != 3 or not all(isinstance(s, int) and s >= 1 and s & (s - 1) == 0 for s in ds):
            raise ValueError(
                f"VQVAEConfig.downsample must be 3 powers of two (t, h, w), got {self.downsample}"
            )
        object.__setattr__(self, "downsample", ds)
        if not (isinstance(self.n_res_blocks, int) and self.n_res_blocks >= 0):
            raise ValueError("VQVAEConfig.n_res_blocks must be an integer >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"VQVAEConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.commitment >= 0.0:
            raise ValueError(f"VQVAEConfig.commitment must be >= 0, got {self.commitment}")
        if not self.dead_code_threshold >= 0.0:
            raise ValueError(
                f"VQVAEConfig.dead_code_threshold must be >= 0, got {self.dead_code_threshold}"
            )
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"VQVAEConfig.attention must be one of {', '.join(ATTENTIONS)}, "
                f"got {self.attention!r}"
            )
        if self.attention == "axial" and self.channels % AXIAL_HEADS:
            raise ValueError(
                f"VQVAEConfig.channels must be even with axial attention ({AXIAL_HEADS} heads "
                f"of channels / {AXIAL_HEADS}), got {self.channels}"
            )


def clip_from_frames(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) frames as :func:`~encscale.video.decode.read_frames` returns them
    → (3, T, H, W)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames have shape {frames.shape}, expected (T, H, W, 3)")
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))


def _random_rows(flat: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """``k`` rows of ``flat`` (N, D) drawn at random, without replacement when N >= k."""
    n = flat.shape[0]
    device = generator.device if generator is not None else flat.device
    if n >= k:
        idx = torch.randperm(n, generator=generator, device=device)[:k]
    else:
        idx = torch.randint(n, (k,), generator=generator, device=device)
    return flat[idx.to(flat.device)]


class Codebook(nn.Module):
    """EMA vector quantiser with ``n_codes`` codes of dimension ``code_dim``.

    Buffers: ``embeddings`` (n_codes, code_dim); ``ema_count`` (n_codes,), the moving average
    of how many vectors each code is assigned per batch; ``ema_sum`` (n_codes, code_dim), the
    moving average of their sum; ``initialised``, set by the first training batch, which
    copies random encoder outputs into the codebook (count 1 each).

    Each training step, with decay γ and the batch's counts n_k and sums s_k::

        ema_count = γ ema_count + (1 - γ) n_k;   ema_sum = γ ema_sum + (1 - γ) s_k
        embeddings_k = ema_sum_k / ((ema_count_k + ε) / (Σ ema_count + K ε) Σ ema_count)

    then every code with ``ema_count < dead_code_threshold`` is restarted at a random encoder
    output of the batch, its count set to the threshold and its sum to count × embedding.
    Eval mode only quantises.
    """

    def __init__(
        self,
        n_codes: int,
        code_dim: int,
        *,
        ema_decay: float = 0.99,
        commitment: float = 0.25,
        dead_code_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_codes = n_codes
        self.code_dim = code_dim
        self.ema_decay = ema_decay
        self.commitment = commitment
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embeddings", torch.zeros(n_codes, code_dim))
        self.register_buffer("ema_count", torch.zeros(n_codes))
        self.register_buffer("ema_sum", torch.zeros(n_codes, code_dim))
        self.register_buffer("initialised", torch.tensor(False))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index (N,) int64 of the nearest code (Euclidean) to each row of ``flat`` (N, D)."""
        dist = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.embeddings.T
            + self.embeddings.pow(2).sum(1)[None]
        )
        return dist.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, t, h, w) → their embeddings (B, code_dim, t, h, w)."""
        return F.embedding(codes, self.embeddings).movedim(-1, 1)

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``z`` (B, D, t, h, w).

        Returns the quantised grid (B, D, t, h, w; the codes' embeddings before this step's
        EMA update; straight-through: its gradient goes to ``z``), the codes (B, t, h, w)
        int64, the commitment loss (``commitment`` × mean squared distance of ``z`` to its
        codes, gradient to ``z`` only) and the perplexity (exp of the entropy of the batch's
        code usage; 1 … n_codes).
        """
        if z.ndim != 5 or z.shape[1] != self.code_dim:
            raise ValueError(f"codebook input has shape {tuple(z.shape)}, expected (B, D, t, h, w)")
        flat = z.detach().movedim(1, -1).reshape(-1, self.code_dim)
        if self.training and not bool(self.initialised):
            self._initialise(flat, generator)
        codes_flat = self.nearest(flat)
        onehot = F.one_hot(codes_flat, self.n_codes).to(flat.dtype)
        codes = codes_flat.view(z.shape[0], *z.shape[2:])
        q = self.lookup(codes)
        if self.training:
            self._update(flat, onehot, generator)
        commitment = self.commitment * F.mse_loss(z, q.detach())
        quantised = z + (q - z).detach()
        usage = onehot.mean(0)
        perplexity = torch.exp(-torch.special.xlogy(usage, usage).sum())
        return quantised, codes, commitment, perplexity

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor, generator: torch.Generator | None) -> None:
        self.embeddings.copy_(_random_rows(flat, self.n_codes, generator))
        self.ema_sum.copy_(self.embeddings)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(
        self, flat: torch.Tensor, onehot: torch.Tensor, generator: torch.Generator | None
    ) -> None:
        g = self.ema_decay
        self.ema_count.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.ema_sum.mul_(g).add_(onehot.T @ flat, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + LAPLACE_EPS) / (total + self.n_codes * LAPLACE_EPS) * total
        self.embeddings.copy_(self.ema_sum / smoothed[:, None])
        dead = self.ema_count < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            self.embeddings[dead] = _random_rows(flat, n_dead, generator)
            self.ema_count[dead] = self.dead_code_threshold
            self.ema_sum[dead] = self.embeddings[dead] * self.dead_code_threshold


class ResBlock(nn.Module):
    """x + conv1(relu(bn(conv3(relu(bn(x)))))) on (B, C, T, H, W): the residual block without
    attention (``attention: none``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            nn.Conv3d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            nn.Conv3d(channels, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class AxialAttention(nn.Module):
    """Multi-head self-attention along one axis (0: t, 1: h, 2: w) of a channels-last grid
    (B, t, h, w, C): each line of positions along ``axis`` attends within itself.

    VideoGPT's ``MultiHeadAttention`` with ``AxialAttention``: query, key and value projections
    without bias (initialised N(0, 1/C)), softmax(q kᵀ / √d) v per head of d = C / heads
    channels, and an output projection with bias (weights N(0, 1/C)).
    """

    def __init__(self, channels: int, heads: int, axis: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0 (t), 1 (h) or 2 (w), got {axis}")
        self.heads = heads
        self.axis = axis
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(channels, channels, bias=False)
        self.value = nn.Linear(channels, channels, bias=False)
        self.out = nn.Linear(channels, channels)
        for layer in (self.query, self.key, self.value, self.out):
            nn.init.normal_(layer.weight, std=1.0 / math.sqrt(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        length = (t, h, w)[self.axis]
        d = c // self.heads

        def lines(y: torch.Tensor) -> torch.Tensor:
            # (B, t, h, w, C) → (B · the other two axes, heads, length, d)
            y = y.view(b, t, h, w, self.heads, d).movedim(1 + self.axis, 4)
            return y.reshape(-1, self.heads, length, d)

        q, k, v = lines(self.query(x)), lines(self.key(x)), lines(self.value(x))
        a = F.scaled_dot_product_attention(q, k, v)
        other = [n for i, n in enumerate((t, h, w)) if i != self.axis]
        a = a.view(b, *other, self.heads, length, d).movedim(4, 1 + self.axis)
        return self.out(a.reshape(b, t, h, w, c))


class AxialBlock(nn.Module):
    """The sum of :class:`AxialAttention` along t, h and w, on (B, C, t, h, w) (VideoGPT's
    ``AxialBlock``)."""

    def __init__(self, channels: int, heads: int = AXIAL_HEADS) -> None:
        super().__init__()
        self.attn_t = AxialAttention(channels, heads, 0)
        self.attn_h = AxialAttention(channels, heads, 1)
        self.attn_w = AxialAttention(channels, heads, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)
        y = self.attn_w(x) + self.attn_h(x) + self.attn_t(x)
        return y.movedim(-1, 1).contiguous()


class AttentionResBlock(nn.Module):
    """VideoGPT's ``AttentionResidualBlock`` on (B, C, T, H, W): x + axial(relu(bn(
    conv1(relu(bn(conv3(relu(bn(x))))))))), the 3×3×3 convolution to C / 2 channels and the
    1×1×1 back to C."""

    def __init__(self, channels: int, heads: int = AXIAL_HEADS) -> None:
        super().__init__()
        half = channels // 2
        self.block = nn.Sequential(
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            nn.Conv3d(channels, half, 3, padding=1, bias=False),
            nn.BatchNorm3d(half),
            nn.ReLU(),
            nn.Conv3d(half, channels, 1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            AxialBlock(channels, heads),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_block(channels: int, attention: str) -> nn.Module:
    """The residual block of ``attention`` (:data:`ATTENTIONS`)."""
    return AttentionResBlock(channels) if attention == "axial" else ResBlock(channels)


def _steps(downsample: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per-layer strides: axis a is halved in the first log2(downsample[a]) layers."""
    logs = [int(math.log2(s)) for s in downsample]
    return [tuple(2 if i < n else 1 for n in logs) for i in range(max(logs))]


def _kernel(stride: tuple[int, ...]) -> tuple[int, ...]:
    # kernel 4, padding 1 halves (stride 2) / doubles (transposed) an axis; 3, padding 1 keeps it
    return tuple(4 if s == 2 else 3 for s in stride)


class VQVAE(nn.Module):
    """Encoder → :class:`Codebook` → decoder over clips (B, 3, T, H, W) in [-0.5, 0.5]."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        steps = _steps(config.downsample)
        enc: list[nn.Module] = []
        in_ch = 3
        for stride in steps:
            enc += [nn.Conv3d(in_ch, c, _kernel(stride), stride, padding=1), nn.ReLU()]
            in_ch = c
        enc += [nn.Conv3d(in_ch, c, 3, padding=1)]
        enc += [residual_block(c, config.attention) for _ in range(config.n_res_blocks)]
        enc += [nn.BatchNorm3d(c), nn.ReLU(), nn.Conv3d(c, config.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.codebook = Codebook(
            config.n_codes,
            config.code_dim,
            ema_decay=config.ema_decay,
            commitment=config.commitment,
            dead_code_threshold=config.dead_code_threshold,
        )
        dec: list[nn.Module] = [nn.Conv3d(config.code_dim, c, 1)]
        dec += [residual_block(c, config.attention) for _ in range(config.n_res_blocks)]
        dec += [nn.BatchNorm3d(c), nn.ReLU()]
        for stride in reversed(steps):
            dec += [nn.ConvTranspose3d(c, c, _kernel(stride), stride, padding=1), nn.ReLU()]
        dec += [nn.Conv3d(c, 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor) -> None:
        ds = self.config.downsample
        if (
            x.ndim != 5
            or x.shape[1] != 3
            or any(n % s for n, s in zip(x.shape[2:], ds, strict=True))
        ):
            raise ValueError(
                f"clips have shape {tuple(x.shape)}, expected (B, 3, T, H, W) with (T, H, W) "
                f"divisible by downsample {ds}"
            )

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct clips ``x`` (B, 3, T, H, W).

        Returns the reconstruction (B, 3, T, H, W), the codes (B, t, h, w) and the loss terms
        ``recon`` (MSE, pixel units²), ``commitment`` (already weighted) and ``perplexity``
        (see :func:`train_vqvae` for the loss). ``generator``: see the module docstring.
        """
        self._check(x)
        quantised, codes, commitment, perplexity = self.codebook(self.encoder(x), generator)
        recon = self.decoder(quantised)
        terms = {
            "recon": F.mse_loss(recon, x),
            "commitment": commitment,
            "perplexity": perplexity,
        }
        return recon, codes, terms

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, 3, T, H, W) → codes (B, t, h, w) int64, without touching the codebook."""
        self._check(x)
        z = self.encoder(x)
        flat = z.movedim(1, -1).reshape(-1, self.config.code_dim)
        return self.codebook.nearest(flat).view(z.shape[0], *z.shape[2:])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, t, h, w) int → clips (B, 3, T, H, W)."""
        if codes.ndim != 4:
            raise ValueError(f"codes have shape {tuple(codes.shape)}, expected (B, t, h, w)")
        if codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < self.config.n_codes:
            raise ValueError(f"codes must be in [0, {self.config.n_codes})")
        return self.decoder(self.codebook.lookup(codes.long()))


def train_vqvae(
    model: VQVAE,
    clips: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Callable[[int, dict], None] | None = None,
    checkpoint: PathLike | None = None,
    checkpoint_every: int = 100,
    stop_after: int | None = None,
    data_id: Any = None,
) -> list[dict]:
    """Train ``model`` in place with Adam on random batches of ``clips`` (N, 3, T, H, W).

    The loss is recon / var(clips) + commitment (VideoGPT divides by its data's variance, so
    the commitment term's weight does not depend on the clips' contrast). Batches (drawn
    without replacement within a batch) and the codebook's randomness come from one generator
    seeded with ``seed``; the model's initial weights are the caller's. Returns
    one record per step: ``step``, ``recon_loss``, ``commitment``, ``perplexity`` (of the
    batch, before that step's update); ``log(step, record)`` is called with each step run.

    ``checkpoint``: a file rewritten every ``checkpoint_every`` steps and at the last one
    (weights, optimiser, generator state, step, records; :mod:`encscale.video.resume`). If it
    holds a run of the same settings (config, steps, batch size, rate, seed, the clips' shape
    and ``data_id``, which names the clips: e.g. their files' identity), the run resumes from
    it, the checkpoint's weights replacing ``model``'s, and ends in exactly the state (weights
    and records) of a run never interrupted. ``stop_after`` ends the run after that many steps
    in total (a checkpoint is written), as a killed job would.
    """
    model._check(clips)
    n = clips.shape[0]
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the number of clips), got {batch_size}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    variance = clips.var().item()
    if not variance > 0:
        raise ValueError("clips are constant (zero variance): nothing to reconstruct")
    run = signature(
        dict(
            config=asdict(model.config),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            clips=list(clips.shape),
            data=data_id,
        )
    )
    records: list[dict] = []
    first = 0
    resumed = load_resume_checkpoint(checkpoint, run) if checkpoint else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimiser.load_state_dict(resumed["optimiser"])
        generator.set_state(resumed["generator"])
        records, first = resumed["records"], resumed["step"]
        logger.info("resumed from %s at step %d of %d", checkpoint, first, steps)
    last = steps if stop_after is None else min(steps, stop_after)
    model.train()
    for step in range(first, last):
        idx = torch.randperm(n, generator=generator)[:batch_size]
        batch = clips[idx].to(device)
        _, _, terms = model(batch, generator)
        loss = terms["recon"] / variance + terms["commitment"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        record = {
            "step": step,
            "recon_loss": terms["recon"].item(),
            "commitment": terms["commitment"].item(),
            "perplexity": terms["perplexity"].item(),
        }
        records.append(record)
        if log is not None:
            log(step, record)
        done = step + 1
        if checkpoint and (done % checkpoint_every == 0 or done == last):
            save_resume_checkpoint(
                checkpoint,
                run,
                model=model.state_dict(),
                optimiser=optimiser.state_dict(),
                generator=generator.get_state(),
                step=done,
                records=records,
            )
    return records


def save_checkpoint(model: VQVAE, path: PathLike) -> None:
    """Write ``{"config": asdict(model.config), "state": state_dict}`` atomically to ``path``."""
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(model.config), "state": model.state_dict()}, tmp)


def load_checkpoint(path: PathLike) -> VQVAE:
    """The :class:`VQVAE` saved by :func:`save_checkpoint` at ``path``, on the CPU, in eval mode."""
    path = require_file(path, "VQ-VAE checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read VQ-VAE checkpoint (truncated?): {err}") from err
    if not isinstance(ckpt, dict) or not {"config", "state"} <= ckpt.keys():
        raise ValueError(f"{path}: not a VQ-VAE checkpoint (expected keys 'config' and 'state')")
    try:
        # a checkpoint saved before attention was a setting has none
        model = VQVAE(VQVAEConfig(**{"attention": "none", **ckpt["config"]}))
        model.load_state_dict(ckpt["state"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: VQ-VAE checkpoint does not match its config: {err}") from err
    return model.eval()
