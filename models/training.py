"""One training loop for every model family, budgeted and reported in tokens.

The budget, the learning-rate schedule and every report are in **tokens**
(for a regression family, examples), never steps, so trials with different
batch sizes are compared at equal data and a run stopped early is judged at
the learning rate it really had.

Optimizer: AdamW with decoupled weight decay, applied only to parameters with
two or more dimensions (weight matrices and embeddings; not biases or norm
gains), the nanoGPT convention, switchable with `decay_matrices_only`.

Schedule, with t the tokens seen before a step, T the budget, W the warmup
tokens and r the final learning rate as a fraction of the peak:

* warmup: lr(t) = peak · (t + 1) / W for t < W
* ``cosine``: lr(t) = peak · (r + (1 − r) · ½ (1 + cos(π (t − W) / (T − W))))
* ``wsd`` (warmup–stable–decay): peak until the last `decay_fraction` of T,
  then linearly down to r · peak at T
* ``constant``: peak after warmup

Width scaling: with ``lr_width_exponent`` = e ≠ 0 the learning rate a run
trains with is ``lr · (w_ref / w)^e`` at every step, where w is the model's
width at the scale (`ModelFamily.width`: ``d_model`` for `gpt`, hidden units
for `mlp`) and w_ref is ``lr_width_ref`` (default: the width of the family's
smallest scale). ``lr`` is then the constant c of the rule ``c / w^e``
expressed at the reference width, in the same units as a plain peak learning
rate; e = 1 is the ``c / width`` rule, e = 0 (the default) a constant lr.

Divergence: a non-finite training loss, or a smoothed training loss above
`divergence_factor` times the first step's loss, ends the run with status
``diverged`` instead of raising.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from models.family import ModelFamily
from models.train_config import Progress, TrainConfig

Status = Literal["complete", "stopped", "diverged"]

_LOSS_SMOOTHING = 0.9
_DIVERGENCE_CHECK_STEPS = 8


@dataclass
class TrainResult:
    """How a run ended. `eval_loss` is the last evaluation (NaN if diverged
    before any); `curve` holds every report in order; `initial_loss` is the
    training loss of the first step, before any update (the reference that
    divergence is judged against; NaN if no step ran)."""

    status: Status
    tokens_seen: int
    train_loss: float
    eval_loss: float
    seconds: float
    curve: list[Progress] = field(default_factory=list)
    initial_loss: float = math.nan


ReportCallback = Callable[[Progress], bool | None]
"""Called at each evaluation; returning True stops the run (status ``stopped``)."""


def lr_at(tokens_seen: int, config: TrainConfig) -> float:
    """Learning rate for the step that starts after `tokens_seen` tokens."""
    total = config.tokens
    warmup = config.warmup_fraction * total
    peak = config.lr
    floor = config.final_lr_fraction * peak
    if tokens_seen < warmup:
        return peak * (tokens_seen + 1) / warmup
    if config.schedule == "constant":
        return peak
    if config.schedule == "cosine":
        progress = min(1.0, (tokens_seen - warmup) / max(1.0, total - warmup))
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = (1 - config.decay_fraction) * total
    if tokens_seen < decay_start:
        return peak
    progress = min(1.0, (tokens_seen - decay_start) / max(1.0, total - decay_start))
    return peak - (peak - floor) * progress


def width_lr_factor(family: ModelFamily, scale: str, config: TrainConfig) -> float:
    """The factor ``(w_ref / w)^e`` that multiplies every learning rate of a run
    at `scale` (1 when ``lr_width_exponent`` is 0, without asking the family
    for a width). Raises `ValueError` if the family defines no width."""
    if config.lr_width_exponent == 0:
        return 1.0
    reference = config.lr_width_ref or family.width(family.scales[0])
    return (reference / family.width(scale)) ** config.lr_width_exponent


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on ≥2-dim parameters only (or on all of them
    when `decay_matrices_only` is False)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.decay_matrices_only:
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": config.weight_decay}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


@torch.no_grad()
def evaluate(model: nn.Module, family: ModelFamily, batch_size: int, device: str) -> float:
    """Mean loss per token over the family's fixed validation set."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for inputs, targets in family.batches("val", batch_size, seed=0):
        examples = len(inputs)
        total += model(inputs.to(device), targets.to(device)).item() * examples
        count += examples
    model.train(was_training)
    return total / count


def train(
    family: ModelFamily,
    scale: str,
    config: TrainConfig,
    report: ReportCallback | None = None,
) -> TrainResult:
    """Train `family` at `scale` for `config.tokens` tokens.

    Calls `report` every `config.eval_interval` tokens and at the end; the
    callback may stop the run. Every step's learning rate is `lr_at` times
    `width_lr_factor` (1 unless ``lr_width_exponent`` is set); reports show
    it. Seeded runs are reproducible on the CPU.
    """
    family.check_scale(scale)
    lr_factor = width_lr_factor(family, scale, config)
    torch.manual_seed(config.seed)
    model = family.build(scale, config.seed).to(config.device)
    model.train()
    optimizer = make_optimizer(model, config)
    tokens_per_step = config.batch_size * family.tokens_per_example
    train_batches = family.batches("train", config.batch_size, config.seed)

    start = time.perf_counter()
    curve: list[Progress] = []
    tokens_seen, step = 0, 0
    next_eval = config.eval_interval
    first_loss: float | None = None
    smoothed = 0.0
    window_sum = torch.zeros((), device=config.device)
    window_steps = 0
    last_train_loss = math.nan

    while tokens_seen < config.tokens:
        lr = lr_at(tokens_seen, config) * lr_factor
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = next(train_batches)
        loss = model(inputs.to(config.device), targets.to(config.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        tokens_seen += tokens_per_step
        step += 1
        window_sum += loss.detach()
        window_steps += 1

        at_eval = tokens_seen >= next_eval or tokens_seen >= config.tokens
        if at_eval or step % _DIVERGENCE_CHECK_STEPS == 0 or step == 1:
            last_train_loss = window_sum.item() / window_steps
            window_sum.zero_()
            window_steps = 0
            if first_loss is None:
                first_loss = smoothed = last_train_loss
            assert first_loss is not None
            smoothed = _LOSS_SMOOTHING * smoothed + (1 - _LOSS_SMOOTHING) * last_train_loss
            if not math.isfinite(last_train_loss) or smoothed > config.divergence_factor * first_loss:
                return _finish("diverged", tokens_seen, last_train_loss, curve, start, first_loss)
        if at_eval:
            while next_eval <= tokens_seen:
                next_eval += config.eval_interval
            eval_loss = evaluate(model, family, config.batch_size, config.device)
            progress = Progress(tokens_seen, last_train_loss, eval_loss, lr, time.perf_counter() - start)
            curve.append(progress)
            if not math.isfinite(eval_loss):
                return _finish("diverged", tokens_seen, last_train_loss, curve, start, first_loss)
            if report is not None and report(progress) and tokens_seen < config.tokens:
                return _finish("stopped", tokens_seen, last_train_loss, curve, start, first_loss)
    return _finish("complete", tokens_seen, last_train_loss, curve, start, first_loss)


def _finish(
    status: Status, tokens_seen: int, train_loss: float, curve: list[Progress], start: float,
    first_loss: float | None,
) -> TrainResult:
    eval_loss = curve[-1].eval_loss if curve else math.nan
    initial_loss = math.nan if first_loss is None else first_loss
    return TrainResult(status, tokens_seen, train_loss, eval_loss, time.perf_counter() - start, curve,
                       initial_loss)
