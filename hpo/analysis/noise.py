"""Run-to-run noise of the loss, estimated from the trials themselves (no repeated runs needed).

In every cell, a full polynomial in the logarithms of the searched
hyperparameters — cubic where the cell has the trials for it, else quadratic,
so that the surface's own curvature and skew are not counted as noise — is
fitted by least squares to the complete trials within `window` of the cell's
best loss (topped up to three trials per coefficient). Those trials are then
chosen again as the *surface* places them, among the trials within
`CANDIDATE_WIDENING` × `window` of the best loss: the ones whose fitted loss
L̂ is within `window` of the least fitted (topped up in the order of L̂); the
surface is refitted to them and its residuals read. Chosen by their own noisy
losses alone, the trials are those that drew favourable noise and their
residuals are truncated: where σ is as large as the window (sweeps of small
models, 1-3% from seed to seed) that read 0.65-0.75 σ, and every near-best
band built on it was too narrow for the flat optimum it should hold. The
noise σ is the robust spread (1.4826·MAD) of the relative residuals
``L / L̂ - 1``, each cell's scaled by ``sqrt(n / (n - p))`` for the p
coefficients fitted to its n trials, pooled over the cells. Units: a fraction
of the loss (0.001 = 0.1%).

σ sets how sharply `near_best` separates trials that are as good as the best
from those that are not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import numpy as np

from hpo.analysis.estimate import robust_std
from hpo.analysis.surface import TRIALS_PER_COEFFICIENT, n_coefficients, polynomial_features

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 0.02
"""Trials within 2% of their cell's best loss: near enough the optimum that a cubic follows the surface."""
CANDIDATE_WIDENING = 3.0
"""Trials up to 3 × the window behind the best loss may be chosen as the surface places them (one whose
noise put it beyond the window comes back in where the surface puts it inside)."""
_DEGREES = (3, 2)


def estimate_noise(
    cells: Iterable[tuple[np.ndarray, np.ndarray]], *, window: float = DEFAULT_WINDOW
) -> float | None:
    """σ, the relative noise of one loss, pooled over `cells`; None when no cell has enough trials.

    Args:
        cells: per cell, ``(log_settings, losses)``: the ln of each complete
            trial's searched hyperparameters (one row per trial) and its loss.
        window: trials within this relative distance of the cell's best loss are fitted.
    """
    residuals = [cell_residuals(log_settings, losses, window) for log_settings, losses in cells]
    residuals = [r for r in residuals if r.size]
    if not residuals:
        return None
    pooled = np.concatenate(residuals)
    noise = robust_std(pooled)
    logger.debug("loss noise %.3g%% from %d residuals in %d cells", 100 * noise, pooled.size, len(residuals))
    return noise if math.isfinite(noise) and noise > 0 else None


def cell_residuals(
    log_settings: np.ndarray, losses: np.ndarray, window: float = DEFAULT_WINDOW
) -> np.ndarray:
    """Relative residuals ``L / L̂ - 1`` of one cell's polynomial surface, scaled by ``sqrt(n / (n - p))``;
    empty when the cell has too few trials for a quadratic (or tried a single setting)."""
    n_dims = log_settings.shape[1]
    for degree in _DEGREES:
        n_coefficient = n_coefficients(n_dims, degree)
        needed = TRIALS_PER_COEFFICIENT * n_coefficient
        if n_dims == 0 or len(losses) < needed:
            continue
        near = _lowest(losses, window, needed)
        surface = _fit_polynomial(log_settings[near], losses[near], degree)
        if surface is None:
            continue
        candidates = _lowest(losses, CANDIDATE_WIDENING * window, needed)
        fitted = np.full(len(losses), np.inf)
        fitted[candidates] = surface(log_settings[candidates])
        if fitted.min() <= 0:
            continue
        near = _lowest(fitted, window, needed)
        surface = _fit_polynomial(log_settings[near], losses[near], degree)
        if surface is None:
            continue
        residuals = losses[near] / surface(log_settings[near]) - 1.0
        return residuals * math.sqrt(near.sum() / (near.sum() - n_coefficient))
    return np.empty(0)


def _fit_polynomial(
    log_settings: np.ndarray, losses: np.ndarray, degree: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The least-squares polynomial of `degree` in the (standardised) log settings, as a function of log
    settings; None where a setting does not vary or the design is rank-deficient."""
    spread = log_settings.std(axis=0)
    if np.any(spread == 0):
        return None
    mean = log_settings.mean(axis=0)
    features = polynomial_features((log_settings - mean) / spread, degree)
    coefficients, _, rank, _ = np.linalg.lstsq(features, losses, rcond=None)
    if rank < features.shape[1]:
        return None
    return lambda rows: polynomial_features((rows - mean) / spread, degree) @ coefficients


def _lowest(losses: np.ndarray, window: float, at_least: int) -> np.ndarray:
    """Mask of the losses within `window` of the least, or of the `at_least` lowest where fewer are."""
    near = losses <= losses.min() * (1.0 + window)
    if near.sum() < at_least:
        near = np.zeros_like(near)
        near[np.argsort(losses)[:at_least]] = True
    return near
