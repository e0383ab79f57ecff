"""GPT-2 over VQ-VAE codes, the second stage of VideoGPT: build, train, resume, hidden states.

A clip's codes (t, h, w) are read in raster order behind a start token: the sequence is
``[BOS, c_0, …, c_{L-1}]`` with BOS = ``n_codes``, and the model (Hugging Face
``GPT2LMHeadModel``, no dropout, PyTorch's fused attention) learns to predict every code
from the ones before it.

Training (:func:`train_gpt`): AdamW, linear warm-up then cosine decay to ``min_lr_frac`` of
the peak rate, gradient-norm clipping, and a precision of

- ``fp32``: float32 throughout (on a GPU with TF32 matrix units off, torch's default, so the
  comparison with 16-bit is with true float32);
- ``bf16``: autocast to bfloat16, float32 weights and optimiser;
- ``fp16``: autocast to float16 with dynamic loss scaling (``torch.amp.GradScaler``).

A run sees ``n_samples`` clips (with repeats) out of its ``n_train`` distinct ones: epochs of
seeded permutations of them, reshuffled every epoch (:func:`batch_rows`), so a run may take
more steps than one pass over its clips. The loss is validated on named sets of clips
(:data:`VAL_SETS`): ``heldout``, clips of episodes no training clip comes from, and
``overlap``, clips of the training movies (their windows overlap training windows), each
logged as ``val_loss_<name>``.

Batches are a function of (seed, step) alone, so a run killed at any point and resumed from
its last checkpoint (:mod:`encscale.video.resume`) takes the same steps on the same data as
one never interrupted; on the CPU the resumed weights are bitwise equal. Training FLOPs are
estimated as 6 × parameters × tokens (Kaplan et al. 2020; all parameters, embeddings
included).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from encscale._lazy import optional_import
from encscale.io import PathLike, atomic_path, require_file
from encscale.torchtools import (
    PRECISIONS,
    autocast,
    count_parameters,
    import_torchvision,
    peak_memory_mb,
)
from encscale.video.resume import load_resume_checkpoint, save_resume_checkpoint, signature

log = logging.getLogger(__name__)

LOG_COLUMNS = [
    "step",
    "samples",
    "tokens",
    "loss",
    "val_loss_heldout",
    "val_loss_overlap",
    "lr",
    "grad_norm",
    "loss_scale",
    "tokens_per_s",
    "wall_s",
    "peak_mem_mb",
    "flops",
]
# The validation sets, each logged as val_loss_<name>: clips of held-out episodes, and clips
# of the training movies (windows overlapping the training clips').
VAL_SETS = ("heldout", "overlap")


@dataclass(frozen=True)
class GPTSpec:
    """Architecture: hidden size ``width``, ``layers`` blocks of ``heads`` attention heads,
    over ``n_codes`` codes in sequences of at most ``context`` tokens (start token included)."""

    width: int
    layers: int
    heads: int
    context: int
    n_codes: int

    def __post_init__(self) -> None:
        for name in ("width", "layers", "heads", "context", "n_codes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTSpec.{name} must be an integer >= 1, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")


@dataclass(frozen=True)
class TrainSettings:
    """One training run: ``n_samples`` clips seen, repeats included (``batch_size`` per step,
    so ⌈n_samples / batch_size⌉ steps; more than the run's distinct clips: several epochs over
    them, :func:`batch_rows`), peak learning rate ``lr`` reached after ``warmup_frac`` of the
    steps, AdamW ``weight_decay`` and betas,
    gradients clipped to norm ``grad_clip``, ``precision`` fp32/bf16/fp16; a checkpoint every
    ``checkpoint_every`` steps and a log row every ``log_every`` steps; the validation loss
    every ``eval_every`` steps (and at the end) on each validation set."""

    n_samples: int
    batch_size: int = 32
    lr: float = 3e-4
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    precision: str = "fp32"
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    eval_every: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for name in ("n_samples", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainSettings.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.min_lr_frac <= 1 and 0 <= self.warmup_frac < 1):
            raise ValueError("need lr > 0, 0 <= min_lr_frac <= 1 and 0 <= warmup_frac < 1")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")
        object.__setattr__(self, "betas", tuple(self.betas))

    @property
    def steps(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)


def build_gpt(spec: GPTSpec, seed: int = 0) -> torch.nn.Module:
    """A GPT-2 with seeded random weights for ``spec`` (vocabulary: codes + the start token)."""
    import_torchvision()  # transformers imports it; see encscale.torchtools
    transformers = optional_import("transformers", "video")

    config = transformers.GPT2Config(
        vocab_size=spec.n_codes + 1,
        n_positions=spec.context,
        n_embd=spec.width,
        n_layer=spec.layers,
        n_head=spec.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=spec.n_codes,
        eos_token_id=spec.n_codes,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
    return model


def with_start_token(codes: torch.Tensor, n_codes: int) -> torch.Tensor:
    """Codes (B, t, h, w) or (B, L) → token sequences (B, L + 1) behind the start token."""
    flat = codes.reshape(codes.shape[0], -1).long()
    if flat.numel() and not 0 <= int(flat.min()) <= int(flat.max()) < n_codes:
        raise ValueError(f"codes must be in [0, {n_codes})")
    bos = torch.full((flat.shape[0], 1), n_codes, dtype=torch.long, device=flat.device)
    return torch.cat([bos, flat], dim=1)


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_frac · lr`` at the last step."""
    total = settings.steps
    warmup = int(settings.warmup_frac * total)
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup - 1, 1)
    floor = settings.min_lr_frac
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def batch_rows(step: int, n_train: int, settings: TrainSettings) -> np.ndarray:
    """Rows of the training clips used at ``step``: epochs of seeded permutations, read in
    order, so every step's batch follows from (seed, step) alone."""
    start = step * settings.batch_size
    stop = min(start + settings.batch_size, settings.n_samples)
    positions = np.arange(start, stop)
    epochs, offsets = np.divmod(positions, n_train)
    rows = np.empty(len(positions), dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([settings.seed, int(epoch)]).permutation(n_train)
        rows[epochs == epoch] = order[offsets[epochs == epoch]]
    return rows


def sequence_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) over the codes of ``tokens`` (B, L + 1)."""
    logits = model(input_ids=tokens).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
    )


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, tokens: torch.Tensor, precision: str, batch_size: int
) -> float:
    """Mean next-token loss (nats) over the sequences ``tokens`` (N, L + 1)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size].to(device)
        with autocast(device, precision):
            loss = sequence_loss(model, batch)
        total += float(loss) * len(batch)
        count += len(batch)
    model.train(was_training)
    return total / max(count, 1)


def run_signature(
    spec: GPTSpec, settings: TrainSettings, n_train: int, n_val: int | Mapping[str, int]
) -> str:
    """A hash of everything that defines a run (:func:`encscale.video.resume.signature`): a
    checkpoint is resumed only if it matches (``n_val``: the clips of each validation set)."""
    return signature(
        dict(spec=asdict(spec), settings=asdict(settings), n_train=n_train, n_val=n_val)
    )


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights: the step reached, the log so far and the
    training time spent before the last resume."""

    step: int = 0
    rows: list[dict[str, Any]] | None = None
    wall_s: float = 0.0


def train_gpt(
    model: torch.nn.Module,
    train_codes: np.ndarray,
    val_codes: Mapping[str, np.ndarray],
    spec: GPTSpec,
    settings: TrainSettings,
    *,
    checkpoint: PathLike | None = None,
    stop_after: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place on clips' codes (N, t, h, w) or (N, L) and return the log rows.

    Each clip is one sequence, its codes behind the start token (:func:`with_start_token`);
    the codes stay in their compact integer type until a batch is drawn. ``val_codes``: the
    validation sets' codes by name (:data:`VAL_SETS`; a set left out is logged as NaN).

    ``model``'s weights are the initial ones unless ``checkpoint`` holds a matching run, which
    is then resumed (weights, optimiser, loss scale, step, log). ``stop_after`` ends the run
    after that many steps in total (a checkpoint is written), as a killed job would. The log
    has one row per ``log_every`` steps and one at the last step (columns ``LOG_COLUMNS``;
    ``val_loss_*`` NaN where not evaluated).
    """
    train_codes = np.asarray(train_codes).reshape(len(train_codes), -1)
    unknown = sorted(set(val_codes) - set(VAL_SETS))
    if unknown:
        raise ValueError(f"unknown validation sets {unknown} (known: {list(VAL_SETS)})")
    val_codes = {k: np.asarray(v).reshape(len(v), -1) for k, v in val_codes.items()}
    if len(train_codes) == 0:
        raise ValueError("no training clips")
    shapes = {k: v.shape[1:] for k, v in val_codes.items()}
    if train_codes.shape[1] + 1 > spec.context or any(
        shape != train_codes.shape[1:] for shape in shapes.values()
    ):
        raise ValueError(
            f"clips of {train_codes.shape[1]} codes (validation: {shapes}) do not "
            f"fit a context of {spec.context} tokens with the start token"
        )
    device = next(model.parameters()).device
    n_val = {k: len(v) for k, v in sorted(val_codes.items())}
    run = run_signature(spec, settings, len(train_codes), n_val)
    val_tokens = {
        k: with_start_token(torch.from_numpy(v), spec.n_codes) for k, v in val_codes.items()
    }
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
        betas=settings.betas,
        fused=device.type == "cuda",
    )
    scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
    state = TrainState(rows=[])
    resumed = load_resume_checkpoint(checkpoint, run) if checkpoint else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimiser.load_state_dict(resumed["optimiser"])
        if scaler is not None:
            scaler.load_state_dict(resumed["scaler"])
        state = TrainState(resumed["step"], resumed["rows"], resumed["wall_s"])
        log.info("resumed from %s at step %d of %d", checkpoint, state.step, settings.steps)
    resumed = None  # its tensors are copied: free them (encscale.video.budget.gpt_peak_bytes)

    n_params = count_parameters(model)
    seq_tokens = train_codes.shape[1]  # predicted tokens per sequence
    last = settings.steps if stop_after is None else min(settings.steps, stop_after)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, tokens_since, window_t0 = time.perf_counter(), 0, time.perf_counter()
    for step in range(state.step, last):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, settings)
        rows = batch_rows(step, len(train_codes), settings)
        batch = with_start_token(torch.from_numpy(train_codes[rows]), spec.n_codes)
        batch = batch.to(device, non_blocking=True)
        with autocast(device, settings.precision):
            loss = sequence_loss(model, batch)
        optimiser.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
        else:
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        if scaler is not None:
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.step()
        tokens_since += len(rows) * seq_tokens
        done = step + 1
        final = done == settings.steps
        if done % settings.log_every == 0 or final:
            loss_value = float(loss.detach())  # synchronises the device
            now = time.perf_counter()
            evaluate_now = final or (settings.eval_every and done % settings.eval_every == 0)
            val = {
                name: evaluate(model, val_tokens[name], settings.precision, settings.batch_size)
                if evaluate_now and name in val_tokens and len(val_tokens[name])
                else math.nan
                for name in VAL_SETS
            }
            samples = min(done * settings.batch_size, settings.n_samples)
            row = dict(
                step=done,
                samples=samples,
                tokens=samples * seq_tokens,
                loss=loss_value,
                **{f"val_loss_{name}": value for name, value in val.items()},
                lr=optimiser.param_groups[0]["lr"],
                grad_norm=float(grad_norm),
                loss_scale=float(scaler.get_scale()) if scaler is not None else 1.0,
                tokens_per_s=tokens_since / (now - window_t0),
                wall_s=state.wall_s + now - t0,  # time before a resume included
                peak_mem_mb=peak_memory_mb(device),
                flops=6.0 * n_params * samples * seq_tokens,
            )
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss is {loss_value} at step {done}")
            state.rows.append(row)
            if progress is not None:
                progress(row)
            tokens_since, window_t0 = 0, time.perf_counter()
        if checkpoint and (done % settings.checkpoint_every == 0 or done == last):
            saving = time.perf_counter()
            save_resume_checkpoint(
                checkpoint,
                run,
                model=model.state_dict(),
                optimiser=optimiser.state_dict(),
                scaler=scaler.state_dict() if scaler is not None else None,
                step=done,
                rows=state.rows,
                wall_s=state.wall_s + saving - t0,  # time trained so far, before resumes too
            )
            window_t0 += time.perf_counter() - saving  # throughput counts training steps only
        state.step = done
    return state.rows


@torch.no_grad()
def hidden_states(
    model: torch.nn.Module, tokens: torch.Tensor, precision: str = "fp32"
) -> list[torch.Tensor]:
    """Every layer's hidden states, (B, L, width) each, float32: the embeddings first, then
    the output of each block (the last after the final layer norm, as GPT-2 returns it)."""
    device = next(model.parameters()).device
    with autocast(device, precision):
        out = model(input_ids=tokens.to(device), output_hidden_states=True)
    return [h.float() for h in out.hidden_states]


def save_gpt(model: torch.nn.Module, spec: GPTSpec, path: PathLike) -> None:
    """Write the trained model (spec and weights) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"spec": asdict(spec), "state": model.state_dict()}, tmp)


def load_gpt(path: PathLike, device: str = "cpu") -> tuple[torch.nn.Module, GPTSpec]:
    """The model saved by :func:`save_gpt`, in eval mode on ``device``, and its spec."""
    path = require_file(path, "GPT-2 model file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        spec = GPTSpec(**saved["spec"])
    except Exception as err:
        raise ValueError(f"{path}: not a readable GPT-2 model file (truncated?): {err}") from err
    model = build_gpt(spec)
    model.load_state_dict(saved["state"])
    return model.to(device).eval(), spec
