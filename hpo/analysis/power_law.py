"""Power laws of optimal hyperparameters: h*(N) = a·N^b, and h*(N, D) = a·N^b·D^c.

Fitted in log space, ``ln h* = ln a + b·ln N [+ c·ln D]``, by least squares
over cells (one point per cell). Units: N is the parameter count, D tokens,
h in its own units (lr; batch size in sequences or examples per step).

Two ways to weigh the cells and bound the prediction:

* Equal weights (the default; cells' optima from near-best bands): every cell
  counts once, so no cell dominates however its own trials fell. The
  prediction interval is the classical one of a new cell, ``x·β̂ ± t·s·√(1 +
  xᵀ(XᵀX)⁻¹x)``: it widens with the distance of the target from the cells
  (in ln N and ln D) and with the scatter ``s`` of the cells around the law.
  ``s²`` is the residual variance with ``n − p`` degrees of freedom (t
  quantile), but never below the mean variance of the cells' own centres
  (`center_variances`, normal quantile): a cell cannot scatter less than its
  own noise, and with as many cells as coefficients that is all there is.
* Bootstrap weights (`replicates`, from the ``"surface"`` optima): each
  cell's weight is ``1 / (v_i + τ²)``, ``v_i`` the robust bootstrap variance
  (squared 1.4826·MAD) of its ln h* and ``τ²`` the extra scatter of cells
  around the law, chosen (Paule–Mandel) so that the weighted residuals have
  their expected chi-square value ``n - p``. Replicate ``r`` refits the law on
  the cells' ``r``-th bootstrap optima, each moved by its own draw of ``τ``,
  and one more draw of ``τ`` makes the interval one for a new cell.

Either way the law keeps coefficient draws and scatter draws, so that
everything downstream (intervals, crossovers, plots) reads one representation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
from scipy.optimize import root_scalar
from scipy.special import stdtrit

from hpo.analysis.estimate import Estimate, robust_std

_VARIANCE_FLOOR = 1e-6
_DRAWS = 4000
"""Draws behind an equal-weight law's interval: enough that the interval's ends vary by about 2%."""
_SAME_SIZE = 0.01
"""Cells whose ln N lies within this of the largest count as the largest size (`shrink_exponents`' pivot)."""


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
    interval_widening: float = 1.0
    """t/z, the factor by which an equal-weight law's draws were widened so that ±z of their robust
    spread is its ±t interval (residual variance estimated with n − p degrees of freedom); 1 otherwise.
    The draws' spread over it is the coefficients' standard error."""

    @property
    def a(self) -> float:
        """The prefactor a, in the units of h."""
        return math.exp(self.log_a)

    def predict(self, params: float, tokens: float | None = None) -> float:
        """h* at model size `params` (N) and, for an (N, D) law, token budget `tokens` (D); inf where it
        overflows a float."""
        with np.errstate(over="ignore"):
            return float(np.exp(self._design(params, tokens) @ self._coefficients))

    def estimate(self, params: float, tokens: float | None = None) -> Estimate:
        """`predict` with its bootstrap prediction interval."""
        with np.errstate(over="ignore"):
            draws = np.exp(self._log_draws(params, tokens))
        return Estimate.from_draws(self.predict(params, tokens), draws, self.level)

    def spread(self, params: float, tokens: float | None = None) -> float:
        """The robust standard deviation (1.4826·MAD) of ln h* at (N, D) over the law's draws: the spread
        behind `estimate`'s interval, in ln units (0 without draws)."""
        log_draws = self._log_draws(params, tokens)
        return robust_std(log_draws) if log_draws.size > 1 else 0.0

    def _log_draws(self, params: float, tokens: float | None) -> np.ndarray:
        """ln h* at (N, D) of every draw: its coefficients, plus a new cell's scatter."""
        return self.coefficient_replicates @ self._design(params, tokens) + self.tau * self.scatter_draws

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
    center_variances: np.ndarray | None = None,
    name: str = "h",
    level: float = 0.9,
    seed: int = 0,
) -> PowerLaw:
    """Fit ``h* = a·N^b`` (or ``a·N^b·D^c`` when `tokens` is given) to per-cell optima (module docstring).

    Args:
        params: model size N of each cell.
        optimum: optimal value h* of each cell (positive).
        tokens: token budget D of each cell, to fit the (N, D) law.
        replicates: bootstrap optima, shape (n_replicates, n_cells), as kept
            by `Optimum.replicates`; they give the weights and intervals. Without
            them (or when fewer than two replicates are positive in every cell)
            cells are weighted equally, with the classical interval.
        center_variances: each cell's own variance of ln h* (equal weights only), the floor of the
            scatter; without them a law with as many cells as coefficients has no interval.
        name: what h is, for messages and plots.
        level: confidence level of the intervals.
        seed: seed of the draws.

    Raises:
        ValueError: fewer cells than coefficients, or a non-positive optimum.
    """
    design, log_h = _checked_cells(params, optimum, tokens, name)
    rng = np.random.default_rng(seed)
    log_replicates = None if replicates is None else _log_replicates(replicates)
    if log_replicates is None or log_replicates.shape[0] < 2:
        coefficients = _weighted_fit(design, log_h, np.ones(len(log_h)))
        return _equal_weight_law(name, design, log_h, coefficients, center_variances, level, rng)
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
        c=float(coefficients[2]) if design.shape[1] == 3 else None,
        tau=math.sqrt(tau2),
        rms_log_residual=float(np.sqrt(np.mean(residuals**2))),
        coefficient_replicates=coefficient_replicates,
        scatter_draws=rng.standard_normal(len(coefficient_replicates)),
        level=level,
    )


def shrink_exponents(law: PowerLaw, params: np.ndarray, tokens: np.ndarray | None = None) -> PowerLaw:
    """`law` with each exponent shrunk towards 0 by what its own noise leaves of it.

    An exponent b with standard error s (the robust standard deviation of its
    draws over `PowerLaw.interval_widening`: the t quantile of a law fitted to a
    few cells widens its interval, not the error of its estimate; read with it,
    a three-cell law's s would be 3.8 times its standard error and every such
    exponent shrunk to nearly 0) becomes κ·b, ``κ = b² / (b² + s²)``: the linear
    shrinkage of least expected squared error for an estimate of b with noise s,
    b read off the fit. A well-resolved exponent (s ≪ |b|) keeps its value; one lost in its
    noise (s ≳ |b|) tends to 0, the hyperparameter held constant, whose
    extrapolation error does not grow with the distance to the target as a
    noisy slope's does; a slope as large as its noise keeps half its value,
    where dropping it would hold the hyperparameter at the cells' mean even
    when every cell says it falls with N. The law pivots about the largest
    cells' ln N (and their mean ln D): there its prediction does not move, and
    with κ = 0 the hyperparameter is held at the fitted law's value at the
    largest size, the measured one nearest a target beyond the ladder. Held at
    the cells' mean instead (the pivot until 2026-12-06), a ladder whose
    smaller sizes' optima lie above its largest's, as lr's do, put the target
    on the small sizes' side: one grid step up the cliff of the replayed `gpt`
    ladder, 11% above its best, in 9 of 100 searches at T = 8 (3 with the
    largest size as pivot; benchmarks/README.md). Every draw is
    moved by the same amount, so the interval keeps its width and covers the
    shrunk law's bias too.

    Args:
        law: a fitted law (`fit_power_law`, `power_law_about`).
        params: model size N of the cells it was fitted to.
        tokens: their token budgets D, for an (N, D) law.
    """
    coefficients = np.array([law.log_a, law.b] + ([] if law.c is None else [law.c]))
    draws = law.coefficient_replicates.copy()
    log_params = np.log(np.asarray(params, dtype=float))
    pivots = [float(log_params.max())]
    if law.c is not None:
        if tokens is None:
            raise ValueError(f"{law.name} law depends on tokens; pass the cells' tokens")
        largest = log_params >= log_params.max() - _SAME_SIZE
        pivots.append(float(np.mean(np.log(np.asarray(tokens, dtype=float))[largest])))
    for column, pivot in enumerate(pivots, start=1):
        b = coefficients[column]
        spread = robust_std(draws[:, column]) / law.interval_widening if len(draws) > 1 else 0.0
        if b == 0 or spread == 0:
            continue
        shift = b * spread**2 / (b**2 + spread**2)
        coefficients[column] -= shift
        coefficients[0] += shift * pivot
        draws[:, column] -= shift
        draws[:, 0] += shift * pivot
    return replace(
        law,
        log_a=float(coefficients[0]),
        b=float(coefficients[1]),
        c=None if law.c is None else float(coefficients[2]),
        coefficient_replicates=draws,
    )


def power_law_about(
    coefficients: np.ndarray,
    params: np.ndarray,
    optimum: np.ndarray,
    *,
    tokens: np.ndarray | None = None,
    center_variances: np.ndarray | None = None,
    name: str = "h",
    level: float = 0.9,
    seed: int = 0,
) -> PowerLaw:
    """A law with given coefficients ``(ln a, b[, c])`` (fitted some other way, e.g. `joint_surface`)
    whose interval is that of a new cell: the scatter of the cells' optima about it and their design,
    as for an equal-weight `fit_power_law`. Arguments and errors as there."""
    design, log_h = _checked_cells(params, optimum, tokens, name)
    coefficients = np.asarray(coefficients, dtype=float)
    rng = np.random.default_rng(seed)
    return _equal_weight_law(name, design, log_h, coefficients, center_variances, level, rng)


def _checked_cells(
    params: np.ndarray, optimum: np.ndarray, tokens: np.ndarray | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix (1, ln N[, ln D]) and ln h* of the cells; ValueError when they cannot fit a law."""
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
    return design, log_h


def _log_replicates(replicates: np.ndarray) -> np.ndarray:
    """ln of the bootstrap optima (n_replicates, n_cells), keeping only the replicates whose every cell
    is positive and finite: a weight-decay replicate at its exact-zero option has no logarithm."""
    values = np.asarray(replicates, dtype=float)
    return np.log(values[np.all((values > 0) & np.isfinite(values), axis=1)])


def blend_laws(law: PowerLaw, other: PowerLaw) -> PowerLaw:
    """`law` with its coefficients (ln a, b[, c]) moved halfway to `other`'s, its draws moved with them:
    the blend's centre is the geometric mean of the two laws' predictions at every (N[, D]), its interval
    `law`'s width about that centre.

    Raises:
        ValueError: one law is in (N, D) and the other in N alone.
    """
    if (law.c is None) != (other.c is None):
        raise ValueError(f"{law.name}: cannot blend a law in (N, D) with a law in N alone")
    shift = (other._coefficients - law._coefficients) / 2
    return replace(
        law,
        log_a=law.log_a + float(shift[0]),
        b=law.b + float(shift[1]),
        c=None if law.c is None else law.c + float(shift[2]),
        coefficient_replicates=law.coefficient_replicates + shift,
    )


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


def _design_matrix(params: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    columns = [np.ones_like(params), np.log(params)]
    if tokens is not None:
        columns.append(np.log(np.asarray(tokens, dtype=float)))
    return np.column_stack(columns)


def _weighted_fit(design: np.ndarray, log_h: np.ndarray, weights: np.ndarray) -> np.ndarray:
    root = np.sqrt(weights)
    return np.linalg.lstsq(design * root[:, None], log_h * root, rcond=None)[0]


def _between_cell_variance(design: np.ndarray, log_h: np.ndarray, variances: np.ndarray) -> float:
    """Paule–Mandel τ²: weighted residual sum of squares equals its degrees of freedom.

    The excess falls with τ² towards −(degrees of freedom), so a root lies above 0 whenever the
    excess at 0 is positive; the bracket's upper end is doubled until the excess changes sign (cells
    decades apart with tight bootstraps need τ² above the variance of ln h)."""
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
    while excess(upper) > 0:
        upper *= 2.0
    return float(root_scalar(excess, bracket=(0.0, upper), method="brentq").root)


def _equal_weight_law(
    name: str,
    design: np.ndarray,
    log_h: np.ndarray,
    coefficients: np.ndarray,
    center_variances: np.ndarray | None,
    level: float,
    rng: np.random.Generator,
) -> PowerLaw:
    """The law with `coefficients` (least squares with every cell counted once, unless fitted another
    way), and draws whose robust spread is the classical prediction interval: normal draws of the
    coefficients (covariance ``s²(XᵀX)⁻¹``) and of a new cell's scatter (``s``), both scaled by t/z
    when ``s²`` is the residual variance (t with n − p degrees of freedom), so that
    ``Estimate.from_draws`` (±z robust spreads) gives ±t. No draws (no interval) when nothing bounds
    the scatter: as many cells as coefficients and no `center_variances`."""
    n_cells, n_coefficients = design.shape
    residuals = log_h - design @ coefficients
    degrees_of_freedom = n_cells - n_coefficients
    residual_variance = float(residuals @ residuals) / degrees_of_freedom if degrees_of_freedom else 0.0
    floor = float(np.mean(center_variances)) if center_variances is not None else 0.0
    variance = max(residual_variance, floor)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    widen = float(stdtrit(degrees_of_freedom, 0.5 + level / 2)) / z if residual_variance > floor else 1.0
    n_draws = _DRAWS if variance > 0 else 0
    root = np.linalg.cholesky(np.linalg.inv(design.T @ design)) * math.sqrt(variance)
    coefficient_draws = coefficients + widen * rng.standard_normal((n_draws, n_coefficients)) @ root.T
    return PowerLaw(
        name=name,
        log_a=float(coefficients[0]),
        b=float(coefficients[1]),
        c=float(coefficients[2]) if n_coefficients == 3 else None,
        tau=math.sqrt(variance),
        rms_log_residual=float(np.sqrt(np.mean(residuals**2))),
        coefficient_replicates=coefficient_draws,
        scatter_draws=widen * rng.standard_normal(n_draws),
        level=level,
        interval_widening=float(widen),
    )
