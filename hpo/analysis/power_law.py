"""Power laws of optimal hyperparameters: h*(N) = a·N^b, and h*(N, D) = a·N^b·D^c.

Fitted in log space, ``ln h* = ln a + b·ln N [+ c·ln D]``, by weighted least
squares. Each cell's weight is ``1 / (v_i + τ²)``: ``v_i`` is the robust
bootstrap variance (squared 1.4826·MAD) of its ln h* (a well-located optimum
counts more), and ``τ²`` the
extra scatter of cells around the law, chosen (Paule–Mandel) so that the
weighted residuals have their expected chi-square value ``n - p``. Units: N is
the parameter count, D tokens, h in its own units (lr; batch size in
sequences or examples per step).

Prediction intervals propagate the bootstrap over trials: replicate ``r``
refits the law on the cells' ``r``-th bootstrap optima, each moved by its own
draw of the between-cell scatter ``τ`` (the cells scatter about the law by
more than their bootstrap says, so the coefficients, the exponents above all,
are that much less certain), and adds one more draw of ``τ``, so the interval
is for the optimum of a new cell at the target, not just for the fitted line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from hpo.analysis.estimate import Estimate, robust_std

_VARIANCE_FLOOR = 1e-6


@dataclass(frozen=True, eq=False)
class PowerLaw:
    """``h*(N[, D]) = a·N^b[·D^c]``; `c` is None when D was not a variable of the fit."""

    name: str
    log_a: float
    b: float
    c: float | None
    tau: float
    """Scatter of cell optima around the law, in ln units (0 when within their own noise)."""
    rms_log_residual: float
    coefficient_replicates: np.ndarray
    """Bootstrap coefficients, one row ``(ln a, b[, c])`` per replicate."""
    scatter_draws: np.ndarray
    """Standard normal draws, one per replicate, that scale `tau` into prediction intervals."""
    level: float = 0.9

    @property
    def a(self) -> float:
        """The prefactor a, in the units of h."""
        return math.exp(self.log_a)

    def predict(self, params: float, tokens: float | None = None) -> float:
        """h* at model size `params` (N) and, for an (N, D) law, token budget `tokens` (D)."""
        return float(np.exp(self._design(params, tokens) @ self._coefficients))

    def estimate(self, params: float, tokens: float | None = None) -> Estimate:
        """`predict` with its bootstrap prediction interval."""
        log_draws = self.coefficient_replicates @ self._design(params, tokens)
        log_draws = log_draws + self.tau * self.scatter_draws
        return Estimate.from_draws(self.predict(params, tokens), np.exp(log_draws), self.level)

    def exponent(self, which: str = "b") -> Estimate:
        """The exponent of N (``"b"``) or of D (``"c"``) with its bootstrap interval."""
        column = {"b": 1, "c": 2}[which]
        value = self.b if which == "b" else self.c
        if value is None:
            return Estimate.missing()
        return Estimate.from_draws(value, self.coefficient_replicates[:, column], self.level, log_scale=False)

    @property
    def _coefficients(self) -> np.ndarray:
        return np.array([self.log_a, self.b] + ([] if self.c is None else [self.c]))

    def _design(self, params: float, tokens: float | None) -> np.ndarray:
        if self.c is None:
            return np.array([1.0, math.log(params)])
        if tokens is None:
            raise ValueError(f"{self.name} law depends on tokens; pass tokens=D (the token budget)")
        return np.array([1.0, math.log(params), math.log(tokens)])


def fit_power_law(
    params: np.ndarray,
    optimum: np.ndarray,
    *,
    tokens: np.ndarray | None = None,
    replicates: np.ndarray | None = None,
    name: str = "h",
    level: float = 0.9,
    seed: int = 0,
) -> PowerLaw:
    """Fit ``h* = a·N^b`` (or ``a·N^b·D^c`` when `tokens` is given) to per-cell optima.

    Args:
        params: model size N of each cell.
        optimum: optimal value h* of each cell (positive).
        tokens: token budget D of each cell, to fit the (N, D) law.
        replicates: bootstrap optima, shape (n_replicates, n_cells), as kept
            by `Optimum.replicates`; they give the weights and intervals. Without
            them (or when fewer than two replicates are positive in every cell)
            cells are weighted equally and resampled for the interval.
        name: what h is, for messages and plots.
        level: confidence level of the intervals.
        seed: seed of the scatter draws (and of the cell resampling).

    Raises:
        ValueError: fewer cells than coefficients, or a non-positive optimum.
    """
    log_h = np.log(np.asarray(optimum, dtype=float))
    design = _design_matrix(np.asarray(params, dtype=float), tokens)
    n_cells, n_coefficients = design.shape
    if n_cells < n_coefficients or np.linalg.matrix_rank(design) < n_coefficients:
        raise ValueError(
            f"{name} law: need at least {n_coefficients} cells with distinct sizes to fit; "
            "add scales (or token budgets)"
        )
    if not np.all(np.isfinite(log_h)):
        raise ValueError(f"{name} law: optima must be positive and finite; drop zero or missing cells")
    rng = np.random.default_rng(seed)
    log_replicates = None if replicates is None else _log_replicates(replicates)
    if log_replicates is None or log_replicates.shape[0] < 2:
        coefficients = _weighted_fit(design, log_h, np.ones(n_cells))
        residuals = log_h - design @ coefficients
        tau2 = float(residuals @ residuals / max(n_cells - n_coefficients, 1))
        coefficient_replicates = _resampled_fits(design, log_h, rng)
    else:
        variances = np.array([robust_std(column) ** 2 for column in log_replicates.T]) + _VARIANCE_FLOOR
        tau2 = _between_cell_variance(design, log_h, variances)
        weights = 1.0 / (variances + tau2)
        coefficients = _weighted_fit(design, log_h, weights)
        residuals = log_h - design @ coefficients
        solve = np.linalg.pinv(design * np.sqrt(weights)[:, None]) * np.sqrt(weights)
        scatter = math.sqrt(tau2) * rng.standard_normal(log_replicates.shape)
        coefficient_replicates = (log_replicates + scatter) @ solve.T
    return PowerLaw(
        name=name,
        log_a=float(coefficients[0]),
        b=float(coefficients[1]),
        c=float(coefficients[2]) if n_coefficients == 3 else None,
        tau=math.sqrt(tau2),
        rms_log_residual=float(np.sqrt(np.mean(residuals**2))),
        coefficient_replicates=coefficient_replicates,
        scatter_draws=rng.standard_normal(len(coefficient_replicates)),
        level=level,
    )


def _log_replicates(replicates: np.ndarray) -> np.ndarray:
    """ln of the bootstrap optima (n_replicates, n_cells), keeping only the replicates whose every cell
    is positive and finite: a weight-decay replicate at its exact-zero option has no logarithm."""
    values = np.asarray(replicates, dtype=float)
    return np.log(values[np.all((values > 0) & np.isfinite(values), axis=1)])


def fit_constant(optimum: np.ndarray, replicates: np.ndarray | None = None) -> float:
    """The value h* held across cells, weighted as `fit_power_law` weights them: the law with exponent 0.

    ``exp(Σ w_i ln h_i / Σ w_i)``, ``w_i = 1 / (v_i + τ²)``, with ``v_i`` a cell's robust bootstrap
    variance of ln h* (from `replicates`, shape (n_replicates, n_cells)) and ``τ²`` the Paule–Mandel
    between-cell scatter; without replicates the geometric mean. A poorly located cell (a wide
    bootstrap) counts less, which a plain median of the cells ignores.

    Raises:
        ValueError: no cell, or a non-positive optimum.
    """
    values = np.asarray(optimum, dtype=float)
    if values.size == 0 or not np.all((values > 0) & np.isfinite(values)):
        raise ValueError("constant: optima must be positive and finite, at least one")
    log_h = np.log(values)
    design = np.ones((log_h.size, 1))
    if replicates is None:
        return float(np.exp(np.mean(log_h)))
    log_replicates = _log_replicates(replicates)
    if log_replicates.shape[0] < 2:
        return float(np.exp(np.mean(log_h)))
    variances = np.array([robust_std(column) ** 2 for column in log_replicates.T]) + _VARIANCE_FLOOR
    tau2 = _between_cell_variance(design, log_h, variances)
    return float(np.exp(_weighted_fit(design, log_h, 1.0 / (variances + tau2))[0]))


def round_to_power_of_two(value: float) -> int:
    """The power of two nearest to `value` in log space (batch sizes: 96 -> 128, 90 -> 64)."""
    return int(2 ** round(math.log2(value)))


def _design_matrix(params: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    columns = [np.ones_like(params), np.log(params)]
    if tokens is not None:
        columns.append(np.log(np.asarray(tokens, dtype=float)))
    return np.column_stack(columns)


def _weighted_fit(design: np.ndarray, log_h: np.ndarray, weights: np.ndarray) -> np.ndarray:
    root = np.sqrt(weights)
    return np.linalg.lstsq(design * root[:, None], log_h * root, rcond=None)[0]


def _between_cell_variance(design: np.ndarray, log_h: np.ndarray, variances: np.ndarray) -> float:
    """Paule–Mandel τ²: weighted residual sum of squares equals its degrees of freedom."""
    degrees_of_freedom = design.shape[0] - design.shape[1]
    if degrees_of_freedom <= 0:
        return 0.0

    def excess(tau2: float) -> float:
        weights = 1.0 / (variances + tau2)
        residuals = log_h - design @ _weighted_fit(design, log_h, weights)
        return float(weights @ residuals**2) - degrees_of_freedom

    if excess(0.0) <= 0:
        return 0.0
    upper = float(np.var(log_h)) + 1.0
    return float(brentq(excess, 0.0, upper))


def _resampled_fits(design: np.ndarray, log_h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coefficients refitted on cells resampled with replacement (200 replicates, degenerate ones dropped)."""
    fits = []
    for _ in range(200):
        pick = rng.integers(0, len(log_h), len(log_h))
        if np.linalg.matrix_rank(design[pick]) == design.shape[1]:
            fits.append(np.linalg.lstsq(design[pick], log_h[pick], rcond=None)[0])
    return np.array(fits)
