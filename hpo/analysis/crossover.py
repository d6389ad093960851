"""Crossovers: where two variants' tuned loss curves intersect, and where a fixed setting stops being best.

Variant crossover. Each variant, at its own tuned optimum per scale, has a loss
law L_v(N) (`loss_law`); along the path to the target (D = r·N, with r the
target's tokens per parameter, for (N, D) laws) the difference
``L_a(N) - L_b(N)`` changes sign where the curves intersect. The verdict is

* ``ahead``: an intersection lies between the largest measured size and the
  target, so the ranking at the target differs from the one measured last;
  or the fitted curves meet just beyond the target but at least half the
  bootstrap replicates (``p_flip`` ≥ 1/2) flip the ranking by the target (a
  crossing near the target is as likely before it as after: the fit's own
  point is one draw, and a flip missed costs more than one warned about);
* ``crossed``: the ranking already flipped within the measured sizes;
* ``none``: no intersection up to the target.

The interval of the crossing size comes from the bootstrap replicates that
cross, and ``p_flip`` is the share of replicates whose ranking at the target
differs from their ranking at the largest measured size.

Hyperparameter crossover. The best setting of a hyperparameter at the smallest
scale, kept fixed, is flagged when the target's predicted optimum interval
excludes it and keeping it costs more than `MATERIAL_PENALTY_PCT`. The loss
penalty at the target is read off the largest measured cell, the setting as
far from that cell's optimum as h_small is from h*, x = ln h_small - ln h*:
``½·κ·x²`` with κ = d²L/d(ln h)² of its fitted bowl, but no more than the
least rise a trial of that cell measured at least as far off on the same side
(a loss that rises away from its optimum cannot rise more at x than at a
farther setting). A quadratic fitted to the near-best trials describes the
bottom of the bowl: carried 40× off the optimum it claimed a 242% loss where
the cell's farthest trial, 15× off, measured 25%. Where no trial lies as far
as x, the farthest one's rise is the penalty and the penalty a lower bound
(`penalty_beyond_measured`). When D varies at fixed N, the cells compared are
those whose tokens per parameter are closest to the target's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import root_scalar

from hpo.analysis.estimate import Estimate
from hpo.analysis.loss_law import LossLaw
from hpo.analysis.optimum import Optimum
from hpo.analysis.power_law import PowerLaw

_GRID_POINTS = 256
AHEAD_PROBABILITY = 0.5
"""A crossing is ``ahead`` when the fitted curves cross before the target or when at least half the
bootstrap replicates rank the variants differently at the target than at the largest measured size."""
MATERIAL_PENALTY_PCT = 0.1
"""A fixed setting costing less than this (% of the loss) at the target is within run noise: not flagged."""


@dataclass(frozen=True)
class Crossover:
    """Intersection of two variants' tuned loss curves. `params` in parameters N."""

    variant_a: str
    variant_b: str
    verdict: str
    """``"ahead"``, ``"crossed"`` or ``"none"``."""
    params: Estimate
    """Model size N of the intersection with its interval (missing when verdict is ``none``)."""
    p_flip: float
    """Bootstrap probability that the ranking at the target differs from that at the largest measured N."""
    leader_at_largest: str
    leader_at_target: str


@dataclass(frozen=True)
class HyperparameterCrossover:
    """A hyperparameter's small-scale best value, kept fixed, versus the target's predicted optimum."""

    variant: str
    hyperparameter: str
    small_scale_value: float
    small_scale_params: float
    target_optimum: Estimate
    penalty_pct: float
    """Predicted loss increase at the target of keeping `small_scale_value`, in % of the target loss."""
    penalty_beyond_measured: bool
    """`small_scale_value` lies farther from the optimum than any trial of the largest cell: the penalty
    is what the farthest one cost, a lower bound."""
    flagged: bool
    """`small_scale_value` lies outside the target optimum's interval and costs > `MATERIAL_PENALTY_PCT`."""


def find_crossover(
    law_a: LossLaw,
    law_b: LossLaw,
    *,
    names: tuple[str, str],
    measured_params: tuple[float, float],
    target_params: float,
    tokens_per_param: float | None = None,
) -> Crossover:
    """Crossover verdict of variants a and b (`names`), measured over ``measured_params = (N_min, N_max)``.

    `tokens_per_param` sets D = r·N along the path for (N, D) laws.
    """
    smallest, largest = measured_params
    grid = np.geomspace(smallest, max(target_params, largest), _GRID_POINTS)
    crossings = _sign_changes(grid, law_a, law_b, tokens_per_param)
    ends = np.array([largest, target_params])
    gap_at_ends = _difference(law_a.predict, law_b.predict, ends, tokens_per_param)
    replicate_gaps = _replicate_difference(law_a, law_b, ends, tokens_per_param)
    flips = np.sign(replicate_gaps[:, 0]) != np.sign(replicate_gaps[:, 1])
    p_flip = float(flips.mean()) if len(flips) else math.nan
    ahead = [n for n in crossings if largest < n <= target_params]
    inside = [n for n in crossings if n <= largest]
    if ahead or p_flip >= AHEAD_PROBABILITY:
        verdict, low, high = "ahead", largest, target_params
    elif inside:
        verdict, low, high = "crossed", smallest, largest
    else:
        verdict, low, high = "none", math.nan, math.nan
    params = Estimate.missing()
    if verdict != "none":
        replicate_grid_gaps = _replicate_difference(law_a, law_b, grid, tokens_per_param)
        draws = np.array([_first_crossing(grid, row, low, high) for row in replicate_grid_gaps])
        point = ahead[0] if ahead else inside[-1] if verdict == "crossed" else float(np.nanmedian(draws))
        params = Estimate.from_draws(point, draws, law_a.level)
    return Crossover(
        variant_a=names[0],
        variant_b=names[1],
        verdict=verdict,
        params=params,
        p_flip=p_flip,
        leader_at_largest=names[0] if gap_at_ends[0] < 0 else names[1],
        leader_at_target=names[0] if gap_at_ends[1] < 0 else names[1],
    )


def find_hyperparameter_crossover(
    variant: str,
    hyperparameter: str,
    optima: tuple[Optimum, ...],
    law: PowerLaw,
    *,
    target_params: float,
    target_tokens: float | None,
    target_loss: float,
) -> HyperparameterCrossover:
    """Is the smallest scale's best `hyperparameter` still good at the target? See the module docstring."""
    smallest = _closest_budget(optima, min(o.params for o in optima), target_params, target_tokens)
    largest = _closest_budget(optima, max(o.params for o in optima), target_params, target_tokens)
    small_value = smallest.value(hyperparameter).value
    target = law.estimate(target_params, target_tokens if law.c is not None else None)
    offset = math.log(small_value / target.value)
    curvature = largest.curvature.get(hyperparameter)
    bowl = math.inf if curvature is None else 0.5 * curvature * offset**2
    rise, beyond = measured_rise(largest.rises.get(hyperparameter, np.empty((0, 2))), offset)
    measured = rise * largest.loss.value
    penalty = min(bowl, measured)
    known = math.isfinite(penalty)
    penalty_pct = 100.0 * penalty / target_loss if known else 0.0
    return HyperparameterCrossover(
        variant=variant,
        hyperparameter=hyperparameter,
        small_scale_value=small_value,
        small_scale_params=smallest.params,
        target_optimum=target,
        penalty_pct=penalty_pct,
        penalty_beyond_measured=known and beyond and measured < bowl,
        flagged=not target.covers(small_value) and penalty_pct > MATERIAL_PENALTY_PCT,
    )


def measured_rise(rises: np.ndarray, offset: float) -> tuple[float, bool]:
    """The least relative loss rise of the trials at least `offset` (ln units) from the optimum on its
    side (`Optimum.rises` rows), and False; the farthest such trial's, and True, where none is that far;
    inf where no trial lies on that side."""
    side = rises[np.sign(rises[:, 0]) == np.sign(offset)] if offset != 0 else rises[:0]
    if side.size == 0:
        return math.inf, False
    distance = np.abs(side[:, 0])
    far = distance >= abs(offset)
    if far.any():
        return float(side[far, 1].min()), False
    return float(side[distance == distance.max(), 1].min()), True


def _closest_budget(
    optima: tuple[Optimum, ...], params: float, target_params: float, target_tokens: float | None
) -> Optimum:
    """The cell of size `params` closest to the target in tokens per parameter (else the largest D)."""
    cells = [o for o in optima if o.params == params]
    if target_tokens is None:
        return max(cells, key=lambda o: o.tokens)
    target_ratio = target_tokens / target_params
    return min(cells, key=lambda o: abs(math.log(o.tokens / o.params / target_ratio)))


def _path_tokens(params: np.ndarray, tokens_per_param: float | None) -> np.ndarray | None:
    return None if tokens_per_param is None else params * tokens_per_param


def _difference(
    predict_a: Callable[..., np.ndarray],
    predict_b: Callable[..., np.ndarray],
    params: np.ndarray,
    tokens_per_param: float | None,
) -> np.ndarray:
    """L_a - L_b along the path D = r·N (tokens ignored by laws in N only)."""
    tokens = _path_tokens(params, tokens_per_param)
    return predict_a(params, tokens) - predict_b(params, tokens)


def _replicate_difference(
    law_a: LossLaw, law_b: LossLaw, params: np.ndarray, tokens_per_param: float | None
) -> np.ndarray:
    """L_a - L_b of paired bootstrap replicates, shape (n_replicates, len(params))."""
    tokens = _path_tokens(params, tokens_per_param)
    losses_a = law_a.replicate_predictions(params, tokens)
    losses_b = law_b.replicate_predictions(params, tokens)
    count = min(len(losses_a), len(losses_b))
    return losses_a[:count] - losses_b[:count]


def _sign_changes(
    grid: np.ndarray, law_a: LossLaw, law_b: LossLaw, tokens_per_param: float | None
) -> list[float]:
    """Sizes N where L_a - L_b changes sign, refined by Brent's method."""

    def gap(params: float) -> float:
        return float(_difference(law_a.predict, law_b.predict, np.array([params]), tokens_per_param)[0])

    difference = _difference(law_a.predict, law_b.predict, grid, tokens_per_param)
    changes = np.flatnonzero(np.sign(difference[:-1]) * np.sign(difference[1:]) < 0)
    return [root_scalar(gap, bracket=(grid[i], grid[i + 1]), method="brentq").root for i in changes]


def _first_crossing(grid: np.ndarray, difference: np.ndarray, low: float, high: float) -> float:
    """First N in [low, high] where a replicate's difference changes sign (linear in ln N); NaN if none."""
    changes = np.flatnonzero(np.sign(difference[:-1]) * np.sign(difference[1:]) < 0)
    for i in changes:
        fraction = difference[i] / (difference[i] - difference[i + 1])
        params = math.exp(math.log(grid[i]) + fraction * math.log(grid[i + 1] / grid[i]))
        if low <= params <= high:
            return params
    return math.nan
