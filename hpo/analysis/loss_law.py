"""Loss scaling laws: L(N) = E + A·N^-α, L(N, D) = E + A/N^α + B/D^β, and L(C) = E + A·C^-α.

Fitted the way Hoffmann et al. (2022, "Chinchilla", approach 3) and the
Besiroglu et al. (2024) replication do it, with a robust loss: the Huber loss
(δ = 1e-3) of the relative residual ``(L̂ - L)/L`` (≈ ln L̂ - ln L) is
minimised. Units: N parameters, D tokens, compute C = 6·N·D FLOPs, L the
evaluation loss.

The prefactors E, A, B enter linearly, so the fit is a search over the one
or two exponents only (variable projection): for given exponents, the best
non-negative prefactors solve a Huber regression by iteratively reweighted
least squares. A grid of exponents gives the starts, a compass search refines
them. All of it runs on whole batches of exponents and bootstrap replicates
at once, which is what makes two hundred refits take a fraction of a second.

Intervals come from bootstrap refits: either on given loss replicates (the
cells' bootstrap optima, `Optimum.replicates`) or on points resampled with
replacement, each searched from the full fit's exponents. A prediction
interval also adds `tau`, the points' scatter around the law beyond their own
bootstrap noise, so it is for a new measurement, not only the curve.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from hpo.analysis.estimate import Estimate, robust_std

HUBER_DELTA = 1e-3
_EXPONENT_BOUNDS = (1e-3, 3.0)
_GRID_EXPONENTS = np.geomspace(0.02, 3.0, 12)
"""Starting exponents, each a factor 1.58 from the next; every pair of them for an (N, D) law."""
_STARTS = 3
_FIRST_STEP = math.log(np.sqrt(_GRID_EXPONENTS[1] / _GRID_EXPONENTS[0]))
"""First compass step, in ln units of an exponent: half a grid step."""
_SEARCH_STEPS = 16
_IRLS_STEPS = 12
_EXPONENT_COLUMNS = (2, 4)
"""Columns of θ = (ln E, ln A', α[, ln B', β]) that hold the exponents."""
_ZERO_FLOOR = 1e-300
"""A linear coefficient (E, A', B') fitted at its bound 0 is held here in θ, whose entries are logs."""
_LOG_NEGLIGIBLE = math.log(1e-150)
"""Below this log a coefficient is the floor of a term fitted at 0 (far above the floor, so no rounding of
its log makes it a number), and the law holds exactly 0."""


@dataclass(frozen=True, eq=False)
class LossLaw:
    """``L = E + A·x^-α [+ B·D^-β]``; x is N (``variable="params"``) or C = 6ND (``"compute"``)."""

    E: float
    A: float
    alpha: float
    B: float | None
    beta: float | None
    variable: str
    rms_log_residual: float
    """Root-mean-square of ln L̂ - ln L over the fitted points (0.01 ≈ 1% error)."""
    tau: float
    """Scatter of points around the law beyond their own bootstrap noise, in ln units."""
    replicates: np.ndarray
    """Bootstrap parameters, one row ``(E, A, α[, B, β])`` per replicate."""
    scatter_draws: np.ndarray
    """Standard normal draws, one per replicate, that scale `tau` into prediction intervals."""
    level: float = 0.9

    def predict(self, x: float | np.ndarray, tokens: float | np.ndarray | None = None) -> np.ndarray:
        """Loss at size (or compute) `x` and, for an (N, D) law, token budget `tokens`."""
        return _loss(self._parameters, np.asarray(x, dtype=float), self._tokens(tokens))

    def estimate(self, x: float, tokens: float | None = None) -> Estimate:
        """`predict` at one point with its bootstrap prediction interval (fit uncertainty and `tau`)."""
        draws = self.replicate_predictions(np.array([x]), None if tokens is None else np.array([tokens]))[
            :, 0
        ]
        draws = draws * np.exp(self.tau * self.scatter_draws[: len(draws)])
        return Estimate.from_draws(float(self.predict(x, tokens)), draws, self.level)

    def replicate_predictions(self, x: np.ndarray, tokens: np.ndarray | None = None) -> np.ndarray:
        """Losses of every bootstrap replicate at the points `x`: shape (n_replicates, len(x))."""
        x = np.asarray(x, dtype=float)
        return np.array([_loss(row, x, self._tokens(tokens)) for row in self.replicates])

    def compute_optimal(self, compute: float) -> tuple[float, float]:
        """Compute-optimal ``(N, D)`` at budget C = 6·N·D FLOPs of an (N, D) law.

        ``N_opt = G·(C/6)^(β/(α+β))`` with ``G = (αA / (βB))^(1/(α+β))``, ``D_opt = C / (6·N_opt)``.
        """
        if self.B is None or self.beta is None:
            raise ValueError("compute_optimal needs an L(N, D) law; fit with tokens=D")
        total = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / total)
        params = g * (compute / 6.0) ** (self.beta / total)
        return params, compute / (6.0 * params)

    @property
    def _parameters(self) -> np.ndarray:
        extra = [] if self.B is None else [self.B, self.beta]
        return np.array([self.E, self.A, self.alpha, *extra])

    def _tokens(self, tokens: float | np.ndarray | None) -> np.ndarray | None:
        if self.B is None:
            return None
        if tokens is None:
            raise ValueError("this L(N, D) law needs tokens=D (the token budget) to predict")
        return np.asarray(tokens, dtype=float)


def fit_loss_law(
    params: np.ndarray,
    loss: np.ndarray,
    *,
    tokens: np.ndarray | None = None,
    replicates: np.ndarray | None = None,
    n_bootstrap: int = 200,
    huber_delta: float = HUBER_DELTA,
    level: float = 0.9,
    seed: int = 0,
) -> LossLaw:
    """Fit ``L(N) = E + A·N^-α``, or ``L(N, D) = E + A/N^α + B/D^β`` when `tokens` is given.

    Args:
        params: model size N of each point.
        loss: loss of each point (e.g. a cell's tuned optimum loss).
        tokens: token budget D of each point, for the (N, D) law.
        replicates: bootstrap losses, shape (n_replicates, n_points), to refit
            for the intervals; without them points are resampled `n_bootstrap` times.
        n_bootstrap: replicates when resampling points.
        huber_delta: relative residual beyond which a point's pull stops growing: 1e-3 (Chinchilla's)
            for measured points; about the points' own noise for fitted ones (cells' tuned losses).
        level: confidence level of the intervals.
        seed: seed of the resampling.

    Raises:
        ValueError: fewer points than the law's parameters plus one.
    """
    return _fit(
        np.asarray(params, dtype=float),
        np.asarray(loss, dtype=float),
        tokens,
        replicates,
        n_bootstrap,
        level,
        seed,
        variable="params",
        huber_delta=huber_delta,
    )


def fit_compute_loss_law(
    compute: np.ndarray,
    loss: np.ndarray,
    *,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> LossLaw:
    """Fit ``L(C) = E + A·C^-α`` against training compute C ≈ 6·N·D FLOPs (e.g. isoFLOP minima)."""
    return _fit(
        np.asarray(compute, dtype=float),
        np.asarray(loss, dtype=float),
        None,
        None,
        n_bootstrap,
        level,
        seed,
        variable="compute",
        huber_delta=HUBER_DELTA,
    )


def _fit(
    x: np.ndarray,
    loss: np.ndarray,
    tokens: np.ndarray | None,
    replicates: np.ndarray | None,
    n_bootstrap: int,
    level: float,
    seed: int,
    variable: str,
    huber_delta: float,
) -> LossLaw:
    x_center = float(np.log(x).mean())
    log_x = np.log(x) - x_center
    d_center = 0.0 if tokens is None else float(np.log(np.asarray(tokens, dtype=float)).mean())
    log_d = None if tokens is None else np.log(np.asarray(tokens, dtype=float)) - d_center
    n_parameters = 3 if log_d is None else 5
    if len(loss) < n_parameters + 1:
        raise ValueError(
            f"loss law: {len(loss)} points cannot fit {n_parameters} parameters; "
            f"measure at least {n_parameters + 1} scales"
        )
    problem = _Problem(log_x, log_d, loss, huber_delta)
    ones = np.ones((1, len(loss)))
    theta = _best_fit(problem, loss[None, :], ones)[0]
    residuals = _log_prediction(theta, log_x, log_d) - np.log(loss)
    degrees_of_freedom = max(len(loss) - n_parameters, 1)
    rng = np.random.default_rng(seed)
    if replicates is not None:
        usable = np.asarray(replicates, dtype=float)
        usable = usable[np.all(usable > 0, axis=1)]
        noise = sum(robust_std(column) ** 2 for column in np.log(usable).T)
        tau2 = max(0.0, (float(residuals @ residuals) - noise) / degrees_of_freedom)
        targets, counts = usable, np.ones_like(usable)
    else:
        tau2 = float(residuals @ residuals) / degrees_of_freedom
        picks = rng.integers(0, len(loss), (n_bootstrap, len(loss)))
        counts = np.stack([np.bincount(pick, minlength=len(loss)) for pick in picks]).astype(float)
        targets = np.broadcast_to(loss, counts.shape)
    replicate_thetas = _refit(problem, theta, targets, counts) if len(counts) else np.empty((0, n_parameters))
    centers = (x_center, d_center)
    return LossLaw(
        *_natural(theta, centers),
        variable=variable,
        rms_log_residual=float(np.sqrt(np.mean(residuals**2))),
        tau=math.sqrt(tau2),
        replicates=np.array([_natural_row(t, centers) for t in replicate_thetas]).reshape(-1, n_parameters),
        scatter_draws=rng.standard_normal(len(replicate_thetas)),
        level=level,
    )


@dataclass(frozen=True)
class _Problem:
    """Points of a fit: centred ln x, centred ln D (or None), and the losses that scale the residuals."""

    log_x: np.ndarray
    log_d: np.ndarray | None
    scale: np.ndarray
    huber_delta: float

    @property
    def n_exponents(self) -> int:
        return 1 if self.log_d is None else 2

    def basis(self, exponents: np.ndarray) -> np.ndarray:
        """Columns 1, e^(-α·ln x)[, e^(-β·ln D)] over the losses, shape (batch, points, 1 + exponents)."""
        columns = [np.ones((len(exponents), len(self.log_x))), np.exp(-np.outer(exponents[:, 0], self.log_x))]
        if self.log_d is not None:
            columns.append(np.exp(-np.outer(exponents[:, 1], self.log_d)))
        return np.stack(columns, axis=2) / self.scale[None, :, None]


def _profile(
    problem: _Problem, exponents: np.ndarray, targets: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of exponents: the best non-negative (E, A'[, B']) and the Huber objective.

    The prefactors enter linearly, so for fixed exponents the fit is a Huber
    regression of the relative residual ``(L̂ - L)/L`` (≈ ln L̂ - ln L), solved by
    iteratively reweighted least squares; `counts` weight the points (a
    bootstrap resample counts a point as often as it was drawn).
    """
    basis = problem.basis(exponents)
    delta = problem.huber_delta
    y = targets / problem.scale
    coefficients = _nonnegative_least_squares(basis, y, counts)
    residual = np.matmul(basis, coefficients[..., None])[..., 0] - y
    for _ in range(_IRLS_STEPS - 1):
        weights = counts * np.minimum(1.0, delta / np.maximum(np.abs(residual), 1e-300))
        coefficients = _nonnegative_least_squares(basis, y, weights)
        residual = np.matmul(basis, coefficients[..., None])[..., 0] - y
    absolute = np.abs(residual)
    huber = np.where(absolute <= delta, 0.5 * residual**2, delta * (absolute - 0.5 * delta))
    return coefficients, (counts * huber).sum(axis=1) / (delta * counts.sum(axis=1))


def _nonnegative_least_squares(basis: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares per batch row; a coefficient that comes out negative is fixed at 0 and the
    others refitted (one active-set pass: the terms of a loss law are rarely negative together)."""
    weighted = basis * weights[..., None]
    normal = np.matmul(weighted.transpose(0, 2, 1), basis)
    right = np.matmul(weighted.transpose(0, 2, 1), y[..., None])[..., 0]
    ridge = 1e-12 * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(basis.shape[2])
    coefficients = np.linalg.solve(normal + ridge, right[..., None])[..., 0]
    negative = coefficients < 0
    if negative.any():
        keep = ~negative
        normal = np.where(keep[:, :, None] & keep[:, None, :], normal, np.eye(basis.shape[2]))
        coefficients = np.linalg.solve(normal + ridge, np.where(keep, right, 0.0)[..., None])[..., 0]
        coefficients = np.maximum(coefficients, 0.0)
    return coefficients


def _best_fit(problem: _Problem, targets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """θ = (ln E, ln A', α[, ln B', β]) of the point fit (one row of `targets` and `counts`): a grid of
    exponents, then a compass search from its `_STARTS` best points. Several starts matter: with
    δ = 1e-3 the Huber loss is nearly L1 and a descent can stall at a kink."""
    grid = np.array(list(itertools.product(_GRID_EXPONENTS, repeat=problem.n_exponents)))
    _, objective = _profile(problem, grid, *_repeat(targets, counts, len(grid)))
    starts = grid[np.argsort(objective)[:_STARTS]]
    thetas, objective = _search(problem, starts, *_repeat(targets, counts, len(starts)))
    return thetas[[int(np.argmin(objective))]]


def _refit(problem: _Problem, theta: np.ndarray, targets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """θ of every bootstrap replicate (rows of `targets` and `counts`), each searched from the point fit."""
    exponents = np.repeat(theta[None, list(_EXPONENT_COLUMNS[: problem.n_exponents])], len(counts), axis=0)
    return _search(problem, exponents, targets, counts)[0]


def _repeat(targets: np.ndarray, counts: np.ndarray, times: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row of `targets` and `counts` repeated `times` times in place (row r becomes rows r·times…)."""
    return np.repeat(targets, times, axis=0), np.repeat(counts, times, axis=0)


def _search(
    problem: _Problem, exponents: np.ndarray, targets: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compass search of the exponents (in ln units, one step size per row, halved when no neighbour
    improves), every row at once; returns the θ rows and their objectives."""
    offsets = np.array([o for o in itertools.product((-1, 0, 1), repeat=problem.n_exponents) if any(o)])
    low, high = np.log(_EXPONENT_BOUNDS)
    log_exponents = np.clip(np.log(exponents), low, high)
    coefficients, objective = _profile(problem, np.exp(log_exponents), targets, counts)
    step = np.full(len(exponents), _FIRST_STEP)
    rows = np.arange(len(exponents))
    for _ in range(_SEARCH_STEPS):
        candidates = np.clip(log_exponents[:, None, :] + step[:, None, None] * offsets, low, high)
        flat = candidates.reshape(-1, problem.n_exponents)
        trial_coefficients, trial_objective = _profile(
            problem, np.exp(flat), *_repeat(targets, counts, len(offsets))
        )
        trial_objective = trial_objective.reshape(len(rows), len(offsets))
        best = np.argmin(trial_objective, axis=1)
        better = trial_objective[rows, best] < objective
        log_exponents[better] = candidates[rows, best][better]
        coefficients[better] = trial_coefficients.reshape(len(rows), len(offsets), -1)[rows, best][better]
        objective[better] = trial_objective[rows, best][better]
        step = np.where(better, step, step / 2)
    return _theta(coefficients, np.exp(log_exponents)), objective


def _theta(coefficients: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """Rows (ln E, ln A', α[, ln B', β]) from linear coefficients and exponents (a zero term: the floor)."""
    logs = np.log(np.maximum(coefficients, _ZERO_FLOOR))
    columns = [logs[:, 0], logs[:, 1], exponents[:, 0]]
    if exponents.shape[1] == 2:
        columns += [logs[:, 2], exponents[:, 1]]
    return np.column_stack(columns)


def _log_terms(theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None) -> np.ndarray:
    """Rows ln E, ln(A·x^-α)[, ln(B·D^-β)] at every point."""
    terms = [np.full_like(log_x, theta[0]), theta[1] - theta[2] * log_x]
    if log_d is not None:
        terms.append(theta[3] - theta[4] * log_d)
    return np.stack(terms)


def _log_prediction(theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None) -> np.ndarray:
    terms = _log_terms(theta, log_x, log_d)
    peak = terms.max(axis=0)
    return peak + np.log(np.exp(terms - peak).sum(axis=0))


def _natural_row(theta: np.ndarray, centers: tuple[float, float]) -> np.ndarray:
    """(E, A, α[, B, β]) from the fitted (e, a, α[, b, β]) of centred ln x and ln D.

    The fit uses ``a - α·(ln x - c)``, which decorrelates a and α; ``ln A = a + α·c``.
    """
    natural = [_exp(theta[0]), _exp(theta[1], theta[2] * centers[0]), theta[2]]
    if len(theta) == 5:
        natural += [_exp(theta[3], theta[4] * centers[1]), theta[4]]
    return np.array(natural)


def _exp(log_coefficient: float, offset: float = 0.0) -> float:
    """A coefficient from its fitted log (plus `offset`, the centring): exactly 0 for a term fitted at 0."""
    return 0.0 if log_coefficient < _LOG_NEGLIGIBLE else math.exp(log_coefficient + offset)


def _natural(
    theta: np.ndarray, centers: tuple[float, float]
) -> tuple[float, float, float, float | None, float | None]:
    row = _natural_row(theta, centers)
    if len(row) == 5:
        return row[0], row[1], row[2], row[3], row[4]
    return row[0], row[1], row[2], None, None


def _loss(parameters: np.ndarray, x: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    loss = parameters[0] + parameters[1] * x ** -parameters[2]
    if tokens is not None and len(parameters) == 5:
        loss = loss + parameters[3] * tokens ** -parameters[4]
    return loss
