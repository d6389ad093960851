"""How much steeper a cell's loss rises above a hyperparameter's optimum than below it.

Real learning-rate landscapes are not symmetric in ln lr: a factor 2 above
the optimum costs more than a factor 2 below (the run nears its stability
edge). Per cell and per hyperparameter h, the *profile* of the loss in ln h
(the lowest loss of the complete trials in each quarter-octave bin of h, so
that the other hyperparameters sit near their best) within `window` of the
cell's best loss is fitted by an asymmetric parabola,

    L / L_best − 1 = m + κ_below·u² (u < 0) + κ_above·u² (u > 0),   u = ln h − x₀,

by least squares in (x₀, m, κ_below, κ_above). The *steepness ratio*
κ_above / κ_below of a variant pools its cells' ratios (cells fitted only
where the profile has two bins or more on each side of its lowest one): the
mean m of their ln, shrunk towards 0 (a symmetric loss) by the James–Stein
factor ``max(0, 1 − se²/m²)``, se the standard error of m: the empirical
Bayes estimate under a normal prior centred on symmetry whose width the cells
set. A few noisy cells (an adaptive search's) leave it near 1; the 15 cells
of the Step Law grids give 5.2 for lr, 1.35 for batch size. The ratio is a
number, no units; 3 means three times steeper above.

`extrapolate` uses it to turn a predicted distribution of the optimum into
one setting (`point_offset`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache
from statistics import NormalDist

import numpy as np
from scipy.optimize import root_scalar

DEFAULT_WINDOW = 0.05
"""Profile points within 5% of the cell's best loss: on a grid of √2 steps in lr, three to five a side."""
_BIN = math.log(2) / 4
"""Quarter-octave bins of ln h: a grid's values (steps of √2 or more) fall one to a bin."""
_MIN_SIDE = 2
_CENTRES = 33
"""Candidate positions x₀ of the parabola's vertex per pass; each pass refines around the last best."""
_REFINEMENTS = 3
_RATIO_LIMITS = (1e-2, 1e2)


def cell_steepness_ratio(
    values: np.ndarray, losses: np.ndarray, *, window: float = DEFAULT_WINDOW
) -> float | None:
    """κ_above / κ_below of one cell's complete trials (`values` of h > 0, their `losses`); None when the
    profile has fewer than two bins on a side of its lowest one.

    For x₀ on a grid between the second and the second-last profile points, the parabola is linear in
    (m, κ_below, κ_above) and solved by least squares; the x₀ with the least squared residual and both
    curvatures positive is kept, and the grid refined around it."""
    x, y = _profile(values, losses, window)
    lowest = int(np.argmin(y)) if y.size else 0
    if lowest < _MIN_SIDE or y.size - 1 - lowest < _MIN_SIDE:
        return None
    centres = np.linspace(x[1], x[-2], _CENTRES)
    fit = _best_vertex(x, y, centres)
    if fit is None:
        return None
    for _ in range(_REFINEMENTS):
        step = centres[1] - centres[0]
        centres = np.linspace(fit[0] - step, fit[0] + step, _CENTRES)
        fit = _best_vertex(x, y, centres) or fit
    return float(np.clip(fit[2] / fit[1], *_RATIO_LIMITS))


def _best_vertex(x: np.ndarray, y: np.ndarray, centres: np.ndarray) -> tuple[float, float, float] | None:
    """(x₀, κ_below, κ_above) of the least-squares parabola among vertices `centres` with both
    curvatures positive; None when there is none."""
    u = x[None, :] - centres[:, None]
    design = np.stack([np.ones_like(u), np.where(u < 0, u, 0.0) ** 2, np.where(u > 0, u, 0.0) ** 2], axis=2)
    normal = np.einsum("cnk,cnl->ckl", design, design) + 1e-12 * np.eye(3)
    coefficients = np.linalg.solve(normal, np.einsum("cnk,n->ck", design, y)[..., None])[..., 0]
    residual = ((np.einsum("cnk,ck->cn", design, coefficients) - y) ** 2).sum(axis=1)
    bowl = (coefficients[:, 1] > 0) & (coefficients[:, 2] > 0)
    if not bowl.any():
        return None
    best = int(np.argmin(np.where(bowl, residual, np.inf)))
    return float(centres[best]), float(coefficients[best, 1]), float(coefficients[best, 2])


def _profile(values: np.ndarray, losses: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """(ln h, L / L_best − 1) of the lowest-loss trial in each quarter-octave bin of h, ascending in h,
    those within `window` of the best only."""
    keep = values > 0
    logs, relative = np.log(values[keep]), losses[keep] / losses[keep].min() - 1.0
    bins = np.round(logs / _BIN)
    order = np.lexsort((relative, bins))
    first = np.concatenate([[True], bins[order][1:] != bins[order][:-1]])
    x, y = logs[order][first], relative[order][first]
    return x[y <= window], y[y <= window]


def pooled_steepness_ratio(ratios: Iterable[float | None]) -> float:
    """The cells' ratios (None: the cell could not tell) pooled in ln and shrunk towards 1 (symmetric):
    ``exp(m·max(0, 1 − se²/m²))``, m the mean of their ln and se its standard error; 1 with fewer than
    two cells that tell."""
    logs = np.array([math.log(r) for r in ratios if r is not None])
    if logs.size < 2:
        return 1.0
    mean = float(logs.mean())
    error2 = float(logs.var(ddof=1)) / logs.size
    return math.exp(mean * max(0.0, 1.0 - error2 / mean**2)) if mean != 0 else 1.0


@cache
def point_offset(ratio: float) -> float:
    """Where to set h when its optimum's ln is predicted ~ N(μ, s²) and the loss is ``κ·ratio·u²`` above
    the optimum and ``κ·u²`` below: ``ln h = μ + z·s``, z minimising the expected loss,

        ratio·E[(z − Z)₊²] + E[(Z − z)₊²],   Z standard normal,

    i.e. the root of ``ratio·(zΦ(z) + φ(z)) = φ(z) − z(1 − Φ(z))``. z = 0 for a symmetric loss, −0.44
    for ratio 3, −0.71 for 6 (set h below the median when overshooting costs more)."""
    if ratio == 1.0:
        return 0.0

    normal = NormalDist()

    def excess(z: float) -> float:
        above = z * normal.cdf(z) + normal.pdf(z)
        below = normal.pdf(z) - z * normal.cdf(-z)
        return ratio * above - below

    return float(root_scalar(excess, bracket=(-5.0, 5.0), method="brentq").root)
