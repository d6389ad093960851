"""Loss scaling laws: L(N) = E + A·N^-α, L(N, D) = E + A/N^α + B/D^β, and L(C) = E + A·C^-α.

Fitted the way Hoffmann et al. (2022, "Chinchilla", approach 3) and the
Besiroglu et al. (2024) replication do it: in log space,
``ln L̂ = logsumexp(e, a - α·ln N [, b - β·ln D])`` with ``E = eᵉ, A = eᵃ,
B = eᵇ``, minimising the Huber loss (δ = 1e-3) of ``ln L̂ - ln L`` with
L-BFGS-B, started from the best points of a grid of starting values. Units: N
parameters, D tokens, compute C = 6·N·D FLOPs, L the evaluation loss.

Intervals come from bootstrap refits: either on given loss replicates (the
cells' bootstrap optima, `Optimum.replicates`) or on points resampled with
replacement, each started from the full fit and the best grid point. A
prediction interval also adds `tau`, the points' scatter around the law beyond
their own bootstrap noise, so it is for a new measurement, not only the curve.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from hpo.analysis.estimate import Estimate, robust_std

HUBER_DELTA = 1e-3
_STARTS_REFINED = 8
_STARTS_REFINED_BOOTSTRAP = 1
_EXPONENT_BOUNDS = (1e-3, 3.0)
_LOG_PREFACTOR_BOUNDS = (-30.0, 150.0)


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
    log_loss = np.log(loss)
    theta = _best_fit(log_x, log_d, log_loss, _STARTS_REFINED)
    residuals = _log_prediction(theta, log_x, log_d) - log_loss
    degrees_of_freedom = max(len(loss) - n_parameters, 1)
    rng = np.random.default_rng(seed)
    replicate_thetas = []
    if replicates is not None:
        usable = np.asarray(replicates, dtype=float)
        usable = usable[np.all(usable > 0, axis=1)]
        noise = sum(robust_std(column) ** 2 for column in np.log(usable).T)
        tau2 = max(0.0, (float(residuals @ residuals) - noise) / degrees_of_freedom)
        for row in usable:
            replicate_thetas.append(_best_fit(log_x, log_d, np.log(row), _STARTS_REFINED_BOOTSTRAP, (theta,)))
    else:
        tau2 = float(residuals @ residuals) / degrees_of_freedom
        for _ in range(n_bootstrap):
            pick = rng.integers(0, len(loss), len(loss))
            d_pick = None if log_d is None else log_d[pick]
            replicate_thetas.append(
                _best_fit(log_x[pick], d_pick, log_loss[pick], _STARTS_REFINED_BOOTSTRAP, (theta,))
            )
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


def _log_terms(theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None) -> np.ndarray:
    """Rows ln E, ln(A·x^-α)[, ln(B·D^-β)] at every point."""
    terms = [np.full_like(log_x, theta[0]), theta[1] - theta[2] * log_x]
    if log_d is not None:
        terms.append(theta[3] - theta[4] * log_d)
    return np.stack(terms)


def _log_prediction(theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None) -> np.ndarray:
    return _logsumexp(_log_terms(theta, log_x, log_d))


def _logsumexp(terms: np.ndarray) -> np.ndarray:
    """ln Σ exp over the first axis, computed stably (a fast path for scipy.special.logsumexp)."""
    peak = terms.max(axis=0)
    return peak + np.log(np.exp(terms - peak).sum(axis=0))


def _objective(
    theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None, log_loss: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean Huber loss of the log residuals divided by δ (≈ mean |residual| beyond δ), and its gradient."""
    stacked = _log_terms(theta, log_x, log_d)
    log_prediction = _logsumexp(stacked)
    residual = log_prediction - log_loss
    absolute = np.abs(residual)
    huber = np.where(absolute <= HUBER_DELTA, 0.5 * residual**2, HUBER_DELTA * (absolute - 0.5 * HUBER_DELTA))
    slope = np.clip(residual, -HUBER_DELTA, HUBER_DELTA)
    share = np.exp(stacked - log_prediction) * slope
    gradient = [share[0].sum(), share[1].sum(), -(share[1] * log_x).sum()]
    if log_d is not None:
        gradient += [share[2].sum(), -(share[2] * log_d).sum()]
    scale = 1.0 / (HUBER_DELTA * len(log_loss))
    return float(huber.sum()) * scale, np.array(gradient) * scale


def _bounds(log_loss: np.ndarray, n_parameters: int) -> list[tuple[float, float]]:
    log_floor = (float(log_loss.min()) - 15.0, float(log_loss.min()))
    prefactor_and_exponent = [_LOG_PREFACTOR_BOUNDS, _EXPONENT_BOUNDS]
    return [log_floor, *prefactor_and_exponent * ((n_parameters - 1) // 2)]


def _starting_grid(log_x: np.ndarray, log_d: np.ndarray | None, log_loss: np.ndarray) -> np.ndarray:
    """Starts spread over the irreducible share E/L and the exponents, scaled to the data.

    A term's prefactor is set so that it carries its share of the reducible
    loss at the geometric mean of the data's x (and D). One start per row.
    """
    floor = float(log_loss.min())
    mid_x = float(log_x.mean())
    exponents = (0.1, 0.25, 0.4, 0.6, 0.9, 1.3)
    irreducible_shares = (0.1, 0.3, 0.5, 0.7, 0.9)
    if log_d is None:
        return np.array(
            [
                [floor + math.log(share), floor + math.log(1 - share) + alpha * mid_x, alpha]
                for share, alpha in itertools.product(irreducible_shares, exponents)
            ]
        )
    mid_d = float(log_d.mean())
    starts = []
    for share, split, alpha, beta in itertools.product(
        irreducible_shares, (0.25, 0.5, 0.75), exponents, exponents
    ):
        reducible = floor + math.log(1 - share)
        starts.append(
            [
                floor + math.log(share),
                reducible + math.log(split) + alpha * mid_x,
                alpha,
                reducible + math.log(1 - split) + beta * mid_d,
                beta,
            ]
        )
    return np.array(starts)


def _best_fit(
    log_x: np.ndarray,
    log_d: np.ndarray | None,
    log_loss: np.ndarray,
    n_refined: int,
    extra_starts: tuple[np.ndarray, ...] = (),
) -> np.ndarray:
    """Refine the `n_refined` best grid starts (and `extra_starts`) with L-BFGS-B; keep the best.

    Several starts matter: with δ = 1e-3 the Huber loss is nearly L1 and a
    single descent stalls at a kink.
    """
    starts = _starting_grid(log_x, log_d, log_loss)
    terms = [
        np.broadcast_to(starts[:, :1], (len(starts), len(log_x))),
        starts[:, 1:2] - np.outer(starts[:, 2], log_x),
    ]
    if log_d is not None:
        terms.append(starts[:, 3:4] - np.outer(starts[:, 4], log_d))
    residuals = _logsumexp(np.stack(terms)) - log_loss
    scores = np.abs(residuals).sum(axis=1)
    chosen = [*starts[np.argsort(scores)[:n_refined]], *extra_starts]
    fits = [_refine(start, log_x, log_d, log_loss) for start in chosen]
    return min(fits, key=lambda theta: _objective(theta, log_x, log_d, log_loss)[0])


def _refine(
    theta: np.ndarray, log_x: np.ndarray, log_d: np.ndarray | None, log_loss: np.ndarray
) -> np.ndarray:
    bounds = _bounds(log_loss, len(theta))
    start = np.clip(theta, [b[0] for b in bounds], [b[1] for b in bounds])
    result = minimize(
        _objective, start, args=(log_x, log_d, log_loss), jac=True, method="L-BFGS-B", bounds=bounds
    )
    return result.x


def _natural_row(theta: np.ndarray, centers: tuple[float, float]) -> np.ndarray:
    """(E, A, α[, B, β]) from the fitted (e, a, α[, b, β]) of centred ln x and ln D.

    The fit uses ``a - α·(ln x - c)``, which decorrelates a and α; ``ln A = a + α·c``.
    """
    natural = [math.exp(theta[0]), math.exp(theta[1] + theta[2] * centers[0]), theta[2]]
    if len(theta) == 5:
        natural += [math.exp(theta[3] + theta[4] * centers[1]), theta[4]]
    return np.array(natural)


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
