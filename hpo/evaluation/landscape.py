"""One synthetic loss landscape with known optima: the ground truth every evaluation draws from.

The full-budget loss of a run of N parameters trained on D tokens with peak
learning rate lr, batch size B (sequences per step) and weight decay wd is

    L(N, D; lr, B, wd) = L*(N, D) · (1 + s·κ_lr·ln²(lr / lr*) + κ_B·ln²(B / B*)
                                      + κ_wd·ln²((wd + w₀) / (wd* + w₀))) · (1 + σ·ε)

with

* the loss law ``L*(N, D) = E + A·N^-α + B_D·D^-β`` (Chinchilla's form): the
  loss at the optimal setting;
* the optimum laws ``lr*(N, D) = a_lr·N^b_lr·D^c_lr``,
  ``B*(N, D) = a_B·N^b_B·D^c_B`` and ``wd*(N, D) = a_wd·N^b_wd``;
* curvatures κ (the loss increase per squared e-fold off the optimum), and
  ``s`` = `high_lr_steepness` above lr* (1 below): real lr landscapes are
  steeper above their optimum than below; w₀ a floor so that wd = 0 is defined;
* a divergence edge: a run with ``lr > r·lr*`` diverges (no loss);
* ε standard normal, one draw per evaluation, σ the relative noise.

Used by `surrogate` (learning curves, to judge search methods: it adds how
the loss and the optimum move during a run) and by `synthetic` (trial tables,
to judge the fits). Scalar arithmetic with `math`, one setting at a time, so a
landscape gives the same numbers bit for bit wherever it is evaluated.

Units: N parameters, D tokens, B sequences per step, loss in nats per token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Landscape:
    """Known laws of one variant's loss landscape (module docstring). The defaults: lr* = 30·N^-0.5,
    B* = 0.5·N^0.3, L* = 1.8 + 400·N^-0.34, weight decay without effect, divergence above 6·lr*."""

    name: str = "default"
    """The variant (the trial table's ``variant``)."""
    E: float = 1.8
    A: float = 400.0
    alpha: float = 0.34
    B: float = 0.0
    beta: float = 0.3
    lr_a: float = 30.0
    lr_b: float = -0.5
    lr_c: float = 0.0
    batch_a: float = 0.5
    batch_b: float = 0.3
    batch_c: float = 0.0
    wd_a: float = 0.1
    wd_b: float = 0.0
    wd_floor: float = 0.01
    """w₀: the floor that makes wd = 0 a point of the weight-decay penalty."""
    lr_curvature: float = 0.01
    batch_curvature: float = 0.004
    wd_curvature: float = 0.0
    high_lr_steepness: float = 1.0
    """s: the lr penalty above lr* is s times the one below."""
    divergence_ratio: float = 6.0
    """r: a run with lr > r·lr* diverges."""
    noise: float = 0.002
    """σ, the relative standard deviation of one evaluation."""

    def optimal_lr(self, params: float, tokens: float | None = None) -> float:
        """lr*(N, D) = a·N^b·D^c; D may be left out of a law without it (c = 0)."""
        return _power_law(self.lr_a, params, self.lr_b, tokens, self.lr_c, "lr")

    def optimal_batch_size(self, params: float, tokens: float | None = None) -> float:
        """B*(N, D) = a·N^b·D^c sequences per step (real-valued); D may be left out when c = 0."""
        return _power_law(self.batch_a, params, self.batch_b, tokens, self.batch_c, "batch size")

    def optimal_weight_decay(self, params: float) -> float:
        """wd*(N) = a·N^b."""
        return self.wd_a * params**self.wd_b

    def optimal_loss(self, params: float, tokens: float) -> float:
        """L*(N, D) = E + A·N^-α + B·D^-β: the loss at the optimal setting, nats per token."""
        return self.E + self.A * params**-self.alpha + self.B * tokens**-self.beta

    def optimum(self, params: float, tokens: float) -> dict[str, float]:
        """lr*, B* and wd* at (N, D), keyed as a setting."""
        return {
            "lr": self.optimal_lr(params, tokens),
            "batch_size": self.optimal_batch_size(params, tokens),
            "weight_decay": self.optimal_weight_decay(params),
        }

    def penalty(self, setting: Mapping[str, float], optimum: Mapping[str, float]) -> float:
        """The factor ``1 + s·κ_lr·ln²(lr/lr*) + κ_B·ln²(B/B*) + κ_wd·ln²((wd + w₀)/(wd* + w₀))`` of a
        `setting` against an `optimum` (both keyed ``lr``, ``batch_size``, ``weight_decay``)."""
        lr_offset = math.log(setting["lr"] / optimum["lr"])
        steepness = self.high_lr_steepness if lr_offset > 0 else 1.0
        floor = self.wd_floor
        wd_ratio = (setting["weight_decay"] + floor) / (optimum["weight_decay"] + floor)
        return (
            1.0
            + self.lr_curvature * steepness * lr_offset**2
            + self.batch_curvature * math.log(setting["batch_size"] / optimum["batch_size"]) ** 2
            + self.wd_curvature * math.log(wd_ratio) ** 2
        )

    def diverges(self, params: float, tokens: float | None, lr: float) -> bool:
        """Whether a run at `lr` diverges: lr > r·lr*(N, D)."""
        return lr > self.divergence_ratio * self.optimal_lr(params, tokens)

    def true_loss(self, params: float, tokens: float, setting: Mapping[str, float]) -> float:
        """The noise-free full-budget loss of `setting` (inf if it diverges)."""
        if self.diverges(params, tokens, setting["lr"]):
            return math.inf
        return self.optimal_loss(params, tokens) * self.penalty(setting, self.optimum(params, tokens))

    def noisy(self, loss: float, rng: np.random.Generator) -> float:
        """One evaluation of a run whose noise-free loss is `loss`: ``loss·(1 + σ·ε)``."""
        return loss * (1.0 + self.noise * float(rng.standard_normal()))


def _power_law(a: float, params: float, b: float, tokens: float | None, c: float, name: str) -> float:
    """a·N^b·D^c; D only when c ≠ 0."""
    if c == 0:
        return a * params**b
    if tokens is None:
        raise ValueError(f"the {name} law depends on D; pass tokens")
    return a * params**b * tokens**c
