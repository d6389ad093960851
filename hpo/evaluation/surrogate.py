"""A cheap ground truth for search methods: learning curves on a landscape with known optima.

The landscape is `landscape.Landscape`'s (its laws, curvatures, divergence
edge and noise; lr*(N) = a_lr·N^b_lr, B*(D) = a_B·D^c_B, wd*(N) = a_wd·N^b_wd
here). A surrogate adds what happens during a run: the eval loss of a run of
N parameters with a budget of D tokens, after t ≤ D tokens, is the
landscape's loss with

* ``L*(N, t)`` in place of ``L*(N, D)``: the loss at the optimal setting falls
  as the run sees more tokens (the learning curve);
* the early optimum drifting: ``lr*_t = lr*(N)·(D / t)^γ_lr`` and
  ``B*_t = B*(D)·(t / D)^γ_B``: a short run favours a higher lr and a
  smaller batch than the full run, so judging trials early (ASHA, Hyperband)
  is informative but imperfect, as in real training;
* a diverging run (``lr > r·lr*(N)``) has a NaN loss from its first evaluation on.

At t = D the drift vanishes: `true_loss` is the noise-free full-budget loss,
`optimum` the best setting inside a search space (batch sizes powers of two),
`regret_pct` how far a setting's true loss lies above that optimum.
`with_lr_break` plants a break in the lr law above some N (the law jumps by a
factor), to test that a method notices when a law stops holding.

Units: N parameters, D and t tokens, B sequences per step, loss in nats per
token. Pure numpy: no Ray, MLflow or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from hpo.evaluation.landscape import Landscape
from hpo.study.spec import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange

__all__ = ["Surrogate"]

Setting = dict[str, float]
"""``lr``, ``batch_size`` (sequences per step) and ``weight_decay``."""


@dataclass(frozen=True)
class Surrogate:
    """Learning curves on a known landscape (`landscape`); the defaults are Chinchilla's loss law and
    SP-like optima.

    With the defaults lr*(1e6) ≈ 3.0e-3 and lr*(1e9) ≈ 1.9e-4; B*(2e7 tokens) ≈ 42
    and B*(2e10 tokens) ≈ 660 sequences; wd*(1e6) ≈ 0.070, wd*(1e9) ≈ 0.092.
    A factor 2 off lr* costs ≈ 0.72% loss, off B* ≈ 0.29%, off wd* ≈ 0.12%.
    """

    E: float = 1.69
    A: float = 406.4
    alpha: float = 0.34
    B: float = 410.7
    beta: float = 0.28
    lr_a: float = 0.75
    lr_b: float = -0.4
    batch_a: float = 0.05
    batch_c: float = 0.4
    wd_a: float = 0.04
    wd_b: float = 0.04
    wd_floor: float = 0.01
    lr_curvature: float = 0.015
    batch_curvature: float = 0.006
    wd_curvature: float = 0.003
    lr_drift: float = 0.1
    """γ_lr: lr*_t = lr*·(D/t)^γ_lr."""
    batch_drift: float = 0.2
    """γ_B: B*_t = B*·(t/D)^γ_B."""
    noise: float = 0.003
    """σ, the relative standard deviation of one evaluation."""
    divergence_ratio: float = 4.0
    """r: runs with lr > r·lr*(N) diverge."""
    break_params: float = math.inf
    """N at and above which lr* is multiplied by `break_factor` (`with_lr_break`)."""
    break_factor: float = 1.0

    def with_lr_break(self, params: float, factor: float) -> Surrogate:
        """The same landscape with lr*(N) (and the divergence edge) × `factor` for N ≥ `params`."""
        return replace(self, break_params=params, break_factor=factor)

    @cached_property
    def landscape(self) -> Landscape:
        """The landscape these fields describe (without the planted break)."""
        return Landscape(
            name="surrogate",
            E=self.E,
            A=self.A,
            alpha=self.alpha,
            B=self.B,
            beta=self.beta,
            lr_a=self.lr_a,
            lr_b=self.lr_b,
            batch_a=self.batch_a,
            batch_b=0.0,
            batch_c=self.batch_c,
            wd_a=self.wd_a,
            wd_b=self.wd_b,
            wd_floor=self.wd_floor,
            lr_curvature=self.lr_curvature,
            batch_curvature=self.batch_curvature,
            wd_curvature=self.wd_curvature,
            divergence_ratio=self.divergence_ratio,
            noise=self.noise,
        )

    @cached_property
    def _beyond_break(self) -> Landscape:
        """The landscape at and above the planted break: a_lr × the break factor."""
        return replace(self.landscape, lr_a=self.break_factor * self.lr_a)

    def optimal_lr(self, params: float) -> float:
        """lr*(N) = a_lr·N^b_lr (× the break factor above the planted break), at the full budget."""
        return (self._beyond_break if params >= self.break_params else self.landscape).optimal_lr(params)

    def optimal_batch_size(self, tokens: float) -> float:
        """B*(D) = a_B·D^c_B sequences per step (real-valued), at the full budget."""
        return self.landscape.optimal_batch_size(1.0, tokens)  # b_B = 0: N does not enter

    def optimal_weight_decay(self, params: float) -> float:
        """wd*(N) = a_wd·N^b_wd."""
        return self.landscape.optimal_weight_decay(params)

    def optimal_loss(self, params: float, tokens: float) -> float:
        """L*(N, D) = E + A·N^-α + B·D^-β, nats per token."""
        return self.landscape.optimal_loss(params, tokens)

    def diverges(self, params: float, setting: Setting) -> bool:
        """Whether a run with `setting` diverges: lr > r·lr*(N)."""
        return setting["lr"] > self.divergence_ratio * self.optimal_lr(params)

    def loss(self, params: float, tokens: float, setting: Setting, tokens_seen: float,
             rng: np.random.Generator) -> float:
        """One noisy evaluation after `tokens_seen` of the run's `tokens` (NaN if it diverges)."""
        if self.diverges(params, setting):
            return math.nan
        return self.landscape.noisy(self._loss(params, tokens, setting, tokens_seen), rng)

    def true_loss(self, params: float, tokens: float, setting: Setting) -> float:
        """The noise-free loss at the full budget (inf if the setting diverges)."""
        if self.diverges(params, setting):
            return math.inf
        return self._loss(params, tokens, setting, tokens)

    def optimum(self, params: float, tokens: float, space: SearchSpace) -> tuple[Setting, float]:
        """The best setting inside `space` at (N, D) and its true loss.

        The penalties are separable, so each hyperparameter is optimised on its
        own: lr* and wd* clipped into their ranges, the power of two of `space`
        closest to B* in log (a fixed value stays as it is).
        """
        lr, wd = self.optimal_lr(params), self.optimal_weight_decay(params)
        setting: Setting = {
            "lr": _clip(lr, space.lr),
            "batch_size": _best_power_of_two(self.optimal_batch_size(tokens), space.batch_size),
            "weight_decay": _clip(wd, space.weight_decay),
        }
        return setting, self.true_loss(params, tokens, setting)

    def regret_pct(self, params: float, tokens: float, setting: Setting, space: SearchSpace) -> float:
        """100·(true loss of `setting` / true loss of the optimum in `space` − 1): % above the optimum."""
        _, best = self.optimum(params, tokens, space)
        return 100.0 * (self.true_loss(params, tokens, setting) / best - 1.0)

    def _loss(self, params: float, tokens: float, setting: Setting, tokens_seen: float) -> float:
        progress = min(tokens_seen, tokens) / tokens
        optimum = {"lr": self.optimal_lr(params) * progress**-self.lr_drift,
                   "batch_size": self.optimal_batch_size(tokens) * progress**self.batch_drift,
                   "weight_decay": self.optimal_weight_decay(params)}
        return self.optimal_loss(params, min(tokens_seen, tokens)) * self.landscape.penalty(setting, optimum)


def _clip(value: float, bounds: LogRange | float) -> float:
    if isinstance(bounds, WeightDecayRange) and bounds.zero and value <= 0:
        return 0.0
    if isinstance(bounds, LogRange):
        return min(max(value, bounds.low), bounds.high)
    return float(bounds)


def _best_power_of_two(value: float, bounds: PowerOfTwoRange | int) -> int:
    return bounds.nearest(value) if isinstance(bounds, PowerOfTwoRange) else int(bounds)
