"""Settings of one training run and what it reports, in tokens (no torch: a study file's checks read them).

`TrainConfig` is what `models.train` trains with; `Progress` is what it
reports at each evaluation. Token counts are prediction targets (for a
regression family, examples). models/train.py documents the schedule and the
divergence test these settings drive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Progress", "Schedule", "TrainConfig"]

Schedule = Literal["cosine", "wsd", "constant"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Token counts are prediction targets."""

    lr: float
    batch_size: int
    tokens: int
    weight_decay: float = 0.0
    schedule: Schedule = "cosine"
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2
    final_lr_fraction: float = 0.1
    grad_clip: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.95)
    decay_matrices_only: bool = True
    eval_every_tokens: int | None = None
    divergence_factor: float = 3.0
    lr_width_exponent: float = 0.0
    lr_width_ref: float | None = None
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a positive learning rate"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("tokens", self.tokens >= 1, "a positive token budget"),
            ("weight_decay", self.weight_decay >= 0, "a weight decay >= 0"),
            ("schedule", self.schedule in ("cosine", "wsd", "constant"), "one of cosine, wsd, constant"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "a fraction in [0, 1)"),
            ("decay_fraction", 0 < self.decay_fraction <= 1, "a fraction in (0, 1]"),
            ("final_lr_fraction", 0 <= self.final_lr_fraction <= 1, "a fraction in [0, 1]"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "a positive norm or None"),
            ("eval_every_tokens", self.eval_every_tokens is None or self.eval_every_tokens >= 1,
             "a positive token count or None"),
            ("divergence_factor", self.divergence_factor > 1, "a factor > 1"),
            ("lr_width_exponent", math.isfinite(self.lr_width_exponent), "a finite exponent, e.g. 0 or 1"),
            ("lr_width_ref", self.lr_width_ref is None or 0 < self.lr_width_ref < math.inf,
             "a positive width (channels) or None"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: use {fix}")

    @property
    def eval_interval(self) -> int:
        """Tokens between evaluations: `eval_every_tokens`, else a tenth of the budget."""
        return self.eval_every_tokens or max(1, self.tokens // 10)


@dataclass(frozen=True)
class Progress:
    """What the loop reports at each evaluation."""

    tokens_seen: int
    train_loss: float
    eval_loss: float
    lr: float
    seconds: float
