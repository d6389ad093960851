"""A quadratic surface of one cell's loss in the logarithms of its hyperparameters, and its minimum.

The loss of the near-best complete trials is fitted by least squares,

    L(x) ≈ c + gᵀx + ½ xᵀHx,   x = (ln lr, ln batch_size, ln weight_decay),

over the searched hyperparameters only; its minimum inside the searched box
(the range of values tried) is the cell's *surface optimum*. "Near-best"
means within `window` (relative) of the best loss, topped up to three trials
per coefficient; where one hyperparameter alone was searched (a line: a
scale-aware check's lr probes, a user's lr sweep), topped up instead to the
best trial's *bracket*, the trials at the nearest values tried on either side
of it, through which the quadratic is the parabola of a bracketing line search
(its minimum's setting; the loss there and the curvature stay the near-best
quadratic's, which the loss laws and crossover checks read).
A loss rises more steeply on one side of its optimum than on the other (in lr:
a cliff above, a slope below), and a symmetric quadratic fitted over a whole
line of such a valley puts its minimum on the gentle side: on the committed
`gpt` ladder's checks, where all probes ran to the end, one to two octaves
below the best trial, at the lowest lr tried.

Weight decay's exact-zero option is a separate branch (trials with wd = 0
fitted without the wd dimension); the branch with the lower fitted minimum
wins. When no bowl fits (too few trials, a flat or saddle-shaped surface) the
best trial stands for the minimum.

Used for every cell's tuned loss and curvature (whatever locates the
optimum), and, with a bootstrap over trials, as the `"surface"` way of
locating the optimum (`optimum.find_optimum`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtri

from hpo.analysis.estimate import draws_spread
from hpo.vocab import HYPERPARAMETERS

TRIALS_PER_COEFFICIENT = 3
_SAME_VALUE = 1e-9
"""Values of a hyperparameter (in ln units) closer than this are the same value tried again."""


@dataclass(frozen=True)
class SurfaceFit:
    """Minimum of one cell's fitted surface. Units: hyperparameters in their own units, loss as measured."""

    setting: np.ndarray
    """lr, batch_size, weight_decay at the minimum (the best trial's value where not searched)."""
    loss: float
    curvature: dict[str, float]
    """d²L/d(ln h)² at the minimum, per searched hyperparameter (empty when no bowl fitted)."""
    fitted: bool
    """False when no bowl-shaped quadratic fitted and the best trial stands for the minimum."""
    bracketed: str | None = None
    """The hyperparameter of a line whose minimum's setting is the parabola through its best trial's
    bracket: three settings, whose losses resampling trials cannot vary, so its uncertainty is the
    bracket itself (None otherwise)."""


def best_trial(settings: np.ndarray, losses: np.ndarray) -> SurfaceFit:
    """The best trial standing for a minimum where no bowl is located (``fitted`` False, no curvature)."""
    best = int(np.argmin(losses))
    return SurfaceFit(settings[best].copy(), float(losses[best]), {}, fitted=False)


def n_coefficients(n_dims: int, degree: int = 2) -> int:
    """Coefficients of a full polynomial of `degree` in `n_dims` variables."""
    return sum(len(list(combinations_with_replacement(range(n_dims), k))) for k in range(degree + 1))


def polynomial_features(z: np.ndarray, degree: int = 2) -> np.ndarray:
    """Columns 1, z_i, z_i·z_j (i ≤ j), … up to `degree`: a full polynomial's design matrix."""
    columns = [np.ones(len(z))]
    for order in range(1, degree + 1):
        columns += [
            np.prod(z[:, list(index)], axis=1)
            for index in combinations_with_replacement(range(z.shape[1]), order)
        ]
    return np.column_stack(columns)


def fit_surface(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float
) -> SurfaceFit:
    """Best fit over the weight-decay branches (wd > 0 searched in log space; wd = 0 exactly).

    `settings` holds one row per complete trial (lr, batch_size, weight_decay), `losses` their losses.
    """
    if "weight_decay" not in searched:
        return _fit_branch(settings, losses, searched, window)
    zero = settings[:, 2] == 0
    without_wd = tuple(h for h in searched if h != "weight_decay")
    branches = [
        _fit_branch(settings[mask], losses[mask], dims, window)
        for mask, dims in ((~zero, searched), (zero, without_wd))
        if mask.any()
    ]
    return min(branches, key=lambda fit: fit.loss)


def bootstrap_surface(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float, n: int, seed: int
) -> np.ndarray:
    """Minima of `n` surfaces refitted on trials resampled with replacement: rows lr, batch, wd, loss."""
    rng = np.random.default_rng(seed)
    replicates = np.empty((n, 4))
    for b in range(n):
        pick = rng.integers(0, len(losses), len(losses))
        fit = fit_surface(settings[pick], losses[pick], searched, window)
        replicates[b] = [*fit.setting, fit.loss]
    return replicates


def near_best_draws(settings: np.ndarray, losses: np.ndarray, window: float, n: int, seed: int) -> np.ndarray:
    """`n` settings cycling through the near-best distinct settings (within
    `window` of the best loss, at least the three best), each as often, so no
    one holds half the draws and zeroes their median absolute deviation: the uncertainty of a
    cell whose optimum is its best trial. Resampling trials would mostly redraw
    that same trial (a bootstrap resample holds it with probability
    1 − (1 − 1/n)^n ≈ 2/3), a spread of zero that would let the cell outweigh
    well-measured ones in a law; a setting tried twice counts once."""
    order = np.argsort(losses)
    _, first_seen = np.unique(settings[order], axis=0, return_index=True)
    distinct = order[np.sort(first_seen)]
    within = int(np.sum(losses[distinct] <= losses.min() * (1.0 + window)))
    near = distinct[: max(within, TRIALS_PER_COEFFICIENT)]
    return settings[np.random.default_rng(seed).permutation(np.resize(near, n))]


def normal_scores(replicates: np.ndarray) -> np.ndarray:
    """Each column's replicates as normal scores about its median with its robust spread, in ln units,
    ranks kept.

    The k-th smallest of n replicates becomes ``exp(median + σ·Φ⁻¹((k − ½)/n))``,
    median and σ (`draws_spread`) those of the column's ln, ties ranked in the
    replicates' (random) order so that the scores keep σ even where a few
    settings recur. A cell's interval and its weight in a law are both read
    from σ; a law propagates the replicates themselves, and a rare resample
    that lost the trials pinning the minimum down lands far away, so raw
    replicates would give the law a wider spread than its weights assume (on
    synthetic ladders, lr and batch-size intervals covering 93% and 95% at a
    90% level, the loss's 98%). As normal scores they carry σ and nothing
    more, and each replicate keeps its rank in every column, so the columns'
    dependence is kept.

    Left as they are: a column with a value at or below 0 (weight decay's
    exact-zero branch among positive draws, two options rather than a
    spread), and one whose robust spread is zero (over half the replicates
    on one value: an optimum pressed on a bound of the searched box, or
    near-best settings that share it): rescaled, every replicate would
    collapse onto that value and the interval (`Estimate.from_draws`) would
    claim a certainty the trials lack.
    """
    scored = replicates.copy()
    for column in scored.T:
        if column.size == 0 or np.any(column <= 0):
            continue
        values = np.log(column)
        median, spread = np.median(values), draws_spread(values)
        if spread == 0:
            continue
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable") + 1
        column[:] = np.exp(median + spread * ndtri((ranks - 0.5) / len(values)))
    return scored


def _fit_branch(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float
) -> SurfaceFit:
    """Quadratic in log hyperparameters over the near-best trials, minimised inside the searched box; a
    line's minimum located through its best trial's bracket (module docstring), its loss and curvature
    still the near-best quadratic's (the best trial's loss and none where that is no bowl)."""
    best = int(np.argmin(losses))
    dims = [HYPERPARAMETERS.index(h) for h in searched]
    log_settings = np.log(settings[:, dims])
    fallback = best_trial(settings, losses)
    n_coefficient = n_coefficients(len(dims))
    if not dims or len(losses) < n_coefficient + 2:
        return fallback
    near = losses <= losses[best] * (1.0 + window)
    topped_up = near.sum() < TRIALS_PER_COEFFICIENT * n_coefficient
    if topped_up:
        near = np.zeros_like(near)
        near[np.argsort(losses)[: TRIALS_PER_COEFFICIENT * n_coefficient]] = True
    fit = _quadratic_minimum(settings, log_settings, losses, near, best, searched) or fallback
    line_bracket = bracket(log_settings[:, 0], best) if len(dims) == 1 and topped_up else None
    if line_bracket is not None and line_bracket.any():
        line = _quadratic_minimum(settings, log_settings, losses, line_bracket, best, searched)
        if line is not None:
            return SurfaceFit(line.setting, fit.loss, fit.curvature, fitted=True, bracketed=searched[0])
    return fit


def _quadratic_minimum(settings: np.ndarray, log_settings: np.ndarray, losses: np.ndarray, near: np.ndarray,
                       best: int, searched: tuple[str, ...]) -> SurfaceFit | None:
    """The full quadratic least-squares fit to the `near` trials and its minimum inside the box of every
    trial's settings; None when it is no bowl (too few distinct settings, or not convex)."""
    dims = [HYPERPARAMETERS.index(h) for h in searched]
    center = log_settings[near].mean(axis=0)
    spread = log_settings[near].std(axis=0)
    if np.any(spread == 0):
        return None
    z = (log_settings[near] - center) / spread
    coefficients, _, rank, _ = np.linalg.lstsq(polynomial_features(z), losses[near], rcond=None)
    if rank < n_coefficients(len(dims)):
        return None
    gradient, hessian = _gradient_and_hessian(coefficients, len(dims))
    if not np.all(np.linalg.eigvalsh(hessian) > 0):
        return None
    low = (log_settings.min(axis=0) - center) / spread
    high = (log_settings.max(axis=0) - center) / spread
    z_best = _minimise_quadratic(gradient, hessian, low, high)
    setting = settings[best].copy()
    setting[dims] = np.exp(center + spread * z_best)
    loss = float(coefficients[0] + gradient @ z_best + 0.5 * z_best @ hessian @ z_best)
    curvature = {h: float(hessian[i, i] / spread[i] ** 2) for i, h in enumerate(searched)}
    return SurfaceFit(setting, loss, curvature, fitted=True)


def bracket(values: np.ndarray, best: int) -> np.ndarray:
    """The trials at the `best` trial's value and at the nearest values tried on either side of it (a
    line search's bracket, `values` in ln units); none when the best value is the lowest or highest
    tried (the minimum is not bracketed)."""
    at_best = np.isclose(values, values[best], rtol=0.0, atol=_SAME_VALUE)
    below, above = values[values < values[best] - _SAME_VALUE], values[values > values[best] + _SAME_VALUE]
    if below.size == 0 or above.size == 0:
        return np.zeros(values.size, dtype=bool)
    neighbours = [np.isclose(values, edge, rtol=0.0, atol=_SAME_VALUE) for edge in (below.max(), above.min())]
    return at_best | neighbours[0] | neighbours[1]


def _gradient_and_hessian(coefficients: np.ndarray, n_dims: int) -> tuple[np.ndarray, np.ndarray]:
    gradient = coefficients[1 : 1 + n_dims]
    hessian = np.zeros((n_dims, n_dims))
    pairs = combinations_with_replacement(range(n_dims), 2)
    for c, (i, j) in zip(coefficients[1 + n_dims :], pairs, strict=True):
        if i == j:
            hessian[i, i] = 2.0 * c
        else:
            hessian[i, j] = hessian[j, i] = c
    return gradient, hessian


def _minimise_quadratic(
    gradient: np.ndarray, hessian: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """argmin of gᵀz + ½ zᵀHz (H positive definite) over the box [low, high]."""
    stationary = np.linalg.solve(hessian, -gradient)
    if np.all((stationary >= low) & (stationary <= high)):
        return stationary
    result = minimize(
        lambda z: (gradient @ z + 0.5 * z @ hessian @ z, gradient + hessian @ z),
        np.clip(stationary, low, high),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(low, high, strict=True)),
    )
    return result.x
