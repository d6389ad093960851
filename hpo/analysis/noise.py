"""Run-to-run noise of the loss, estimated from the trials themselves (no repeated runs needed).

In every cell, a full polynomial in the logarithms of the searched
hyperparameters — cubic where the cell has the trials for it, else quadratic,
so that the surface's own curvature and skew are not counted as noise — is
fitted by least squares to the complete trials within `window` of the cell's
best loss (topped up to three trials per coefficient). The noise σ is the
robust spread (1.4826·MAD) of the relative residuals ``L / L̂ - 1``, each
cell's scaled by ``sqrt(n / (n - p))`` for the p coefficients fitted to its
n trials, pooled over the cells. Units: a fraction of the loss (0.001 = 0.1%).

σ sets how sharply `near_best` separates trials that are as good as the best
from those that are not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np

from hpo.analysis.estimate import robust_std
from hpo.analysis.surface import TRIALS_PER_COEFFICIENT, n_coefficients, polynomial_features

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 0.02
"""Trials within 2% of their cell's best loss: near enough the optimum that a cubic follows the surface."""
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
        near = losses <= losses.min() * (1.0 + window)
        if near.sum() < needed:
            near = np.zeros_like(near)
            near[np.argsort(losses)[:needed]] = True
        spread = log_settings[near].std(axis=0)
        if np.any(spread == 0):
            return np.empty(0)
        z = (log_settings[near] - log_settings[near].mean(axis=0)) / spread
        features = polynomial_features(z, degree)
        coefficients, _, rank, _ = np.linalg.lstsq(features, losses[near], rcond=None)
        if rank < n_coefficient:
            continue
        residuals = losses[near] / (features @ coefficients) - 1.0
        return residuals * math.sqrt(near.sum() / (near.sum() - n_coefficient))
    return np.empty(0)
