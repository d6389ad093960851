"""The optimum of one cell (variant, model size N, token budget D), with a bootstrap interval.

Not the argmin of a noisy table: the loss of the near-best complete trials is
fitted by a quadratic in the logarithms of the searched hyperparameters,

    L(x) ≈ c + gᵀx + ½ xᵀHx,   x = (ln lr, ln batch_size, ln weight_decay),

and the optimum is the minimum of that surface inside the searched box (the
range of values tried). "Near-best" means within `window` (relative) of the
best loss, topped up to three trials per coefficient. A hyperparameter is
*searched* when the cell tried at least three distinct positive values of it;
otherwise it is held at the best trial's value. Weight decay's exact-zero
option is a separate branch (trials with wd = 0 fitted without the wd
dimension); the branch with the lower fitted minimum wins.

The interval comes from refitting on trials resampled with replacement (its
width from the replicates' robust spread, see `Estimate.from_draws`); when no
surface fitted and the best trial stands for the optimum, from the settings of
the near-best trials instead (at least the three best). The
replicates are kept (`Optimum.replicates`, winsorised at 3 robust standard
deviations) so that laws fitted across cells propagate the same bootstrap
(`power_law`, `loss_law`).

Diverged trials are data: the lowest learning rate at which a trial diverged
is the cell's *stability edge*. An optimum at the top of the lr range with
diverged trials above it is flagged `near_stability_edge` (widening the range
would not help); an optimum at the edge of the searched range otherwise is
flagged in `at_edge` ("widen the range").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from hpo.analysis.estimate import Estimate, robust_std

logger = logging.getLogger(__name__)

HYPERPARAMETERS = ("lr", "batch_size", "weight_decay")
_EDGE_FRACTION = 0.05
_MIN_DISTINCT_VALUES = 3
_TRIALS_PER_COEFFICIENT = 3
_TAIL_CLIP = 3.0


@dataclass(frozen=True, eq=False)
class Optimum:
    """Best setting of one cell. Units: lr; batch size in sequences/examples per step; loss."""

    variant: str
    scale: str
    params: float
    tokens: float
    lr: Estimate
    batch_size: Estimate
    weight_decay: Estimate
    loss: Estimate
    searched: tuple[str, ...]
    at_edge: dict[str, str]
    stability_edge_lr: float | None
    near_stability_edge: bool
    too_few_trials: bool
    surface_fitted: bool
    """False when no bowl-shaped quadratic fitted the near-best trials: the best trial is used instead."""
    n_complete: int
    n_diverged: int
    n_pruned: int
    curvature: dict[str, float] = field(default_factory=dict)
    """d²L/d(ln h)² of the fitted surface at the optimum, per searched hyperparameter."""
    replicates: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    """Bootstrap optima, one row per replicate: lr, batch_size, weight_decay, loss."""

    def value(self, hyperparameter: str) -> Estimate:
        """The estimate for ``"lr"``, ``"batch_size"``, ``"weight_decay"`` or ``"loss"``."""
        return getattr(self, hyperparameter)


@dataclass(frozen=True)
class _SurfaceFit:
    setting: np.ndarray  # natural units, in HYPERPARAMETERS order
    loss: float
    curvature: dict[str, float]
    bounds: dict[str, tuple[float, float]]  # searched range, natural units
    fitted: bool


def find_optimum(
    rows: pd.DataFrame,
    *,
    window: float = 0.01,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Optimum:
    """Optimum of one cell's trials (rows of a normalised trial table, one cell only).

    Args:
        rows: trials of one (variant, params, tokens); see `trials.normalize_trials`.
        window: near-best trials are those within this relative distance of the best loss.
        n_bootstrap: bootstrap replicates for the intervals (0 for none).
        level: confidence level of the intervals.
        seed: seed of the resampling.

    Raises:
        ValueError: `rows` span several cells, or hold no complete trial.
    """
    if rows[["variant", "params", "tokens"]].drop_duplicates().shape[0] != 1:
        raise ValueError("find_optimum: rows must come from one cell (variant, params, tokens); group first")
    complete = rows[rows["status"] == "complete"]
    diverged = rows[rows["status"] == "diverged"]
    first = rows.iloc[0]
    if complete.empty:
        raise ValueError(
            f"find_optimum: no complete trial in cell {first['variant']}/{first['scale']}; "
            "run trials to their full token budget"
        )
    settings = complete.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
    losses = complete["loss"].to_numpy(dtype=float)
    tried = rows.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
    searched = tuple(h for i, h in enumerate(HYPERPARAMETERS) if _is_searched(tried[:, i]))
    fit = _fit_cell(settings, losses, searched, window)
    replicates = _bootstrap(settings, losses, searched, window, n_bootstrap, seed)
    if not fit.fitted and searched:
        replicates[:, :3] = _near_best_draws(settings, losses, window, n_bootstrap, seed)
    replicates = _clip_tails(replicates)
    estimates = {
        h: Estimate.from_draws(fit.setting[i], replicates[:, i], level, log_scale=fit.setting[i] > 0)
        for i, h in enumerate(HYPERPARAMETERS)
    }
    stability_edge = float(diverged["lr"].min()) if not diverged.empty else None
    at_edge = _edges(fit)
    diverged_above = bool((diverged["lr"] >= complete["lr"].max()).any())
    if at_edge.get("lr") == "high" and diverged_above:
        del at_edge["lr"]
    near_stability_edge = stability_edge is not None and fit.setting[0] >= stability_edge / 2
    n_coefficients = _n_coefficients(len(searched))
    optimum = Optimum(
        variant=str(first["variant"]),
        scale=str(first["scale"]),
        params=float(first["params"]),
        tokens=float(first["tokens"]),
        lr=estimates["lr"],
        batch_size=estimates["batch_size"],
        weight_decay=estimates["weight_decay"],
        loss=Estimate.from_draws(fit.loss, replicates[:, 3], level),
        searched=searched,
        at_edge=at_edge,
        stability_edge_lr=stability_edge,
        near_stability_edge=near_stability_edge,
        too_few_trials=len(complete) < _TRIALS_PER_COEFFICIENT * n_coefficients,
        surface_fitted=fit.fitted or not searched,
        n_complete=len(complete),
        n_diverged=len(diverged),
        n_pruned=int((rows["status"] == "pruned").sum()),
        curvature=fit.curvature,
        replicates=replicates,
    )
    logger.debug(
        "optimum of %s/%s: lr=%.3g bs=%.3g",
        optimum.variant,
        optimum.scale,
        optimum.lr.value,
        optimum.batch_size.value,
    )
    return optimum


def _is_searched(values: np.ndarray) -> bool:
    return np.unique(values[values > 0]).size >= _MIN_DISTINCT_VALUES


def _n_coefficients(n_dims: int) -> int:
    return 1 + n_dims + n_dims * (n_dims + 1) // 2


def _bootstrap(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float, n: int, seed: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    replicates = np.empty((n, 4))
    for b in range(n):
        pick = rng.integers(0, len(losses), len(losses))
        fit = _fit_cell(settings[pick], losses[pick], searched, window)
        replicates[b] = [*fit.setting, fit.loss]
    return replicates


def _near_best_draws(
    settings: np.ndarray, losses: np.ndarray, window: float, n: int, seed: int
) -> np.ndarray:
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
    near = distinct[: max(within, _TRIALS_PER_COEFFICIENT)]
    return settings[np.random.default_rng(seed).permutation(np.resize(near, n))]


def _clip_tails(replicates: np.ndarray) -> np.ndarray:
    """Winsorise each column at its median ± 3 robust standard deviations (in ln units for positive columns).

    A rare resample that lost the trials pinning the minimum down lands far
    away; clipped, it still counts as a large deviation without dominating the
    spread of the laws fitted from these replicates. A column whose robust
    spread is zero (over half the replicates on one value: an optimum pressed
    on a bound of the searched box, or near-best settings that share it) is
    left as it is: clipped, every replicate would collapse onto that value and
    the interval (`Estimate.from_draws`) would claim a certainty the trials lack.
    """
    clipped = replicates.copy()
    if len(clipped) == 0:
        return clipped
    for column in clipped.T:
        positive = bool(np.all(column > 0))
        values = np.log(column) if positive else column
        median, spread = np.median(values), robust_std(values)
        if spread == 0:
            continue
        values = np.clip(values, median - _TAIL_CLIP * spread, median + _TAIL_CLIP * spread)
        column[:] = np.exp(values) if positive else values
    return clipped


def _fit_cell(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float
) -> _SurfaceFit:
    """Best fit over the weight-decay branches (wd > 0 searched in log space; wd = 0 exactly)."""
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


def _fit_branch(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], window: float
) -> _SurfaceFit:
    """Quadratic in log hyperparameters over the near-best trials, minimised inside the searched box."""
    best = int(np.argmin(losses))
    dims = [HYPERPARAMETERS.index(h) for h in searched]
    log_settings = np.log(settings[:, dims])
    bounds = {
        h: (float(settings[:, d].min()), float(settings[:, d].max()))
        for h, d in zip(searched, dims, strict=True)
    }
    fallback = _SurfaceFit(settings[best].copy(), float(losses[best]), {}, bounds, fitted=False)
    n_coefficients = _n_coefficients(len(dims))
    if not dims or len(losses) < n_coefficients + 2:
        return fallback
    near = losses <= losses[best] * (1.0 + window)
    if near.sum() < _TRIALS_PER_COEFFICIENT * n_coefficients:
        near = np.zeros_like(near)
        near[np.argsort(losses)[: _TRIALS_PER_COEFFICIENT * n_coefficients]] = True
    center = log_settings[near].mean(axis=0)
    spread = log_settings[near].std(axis=0)
    if np.any(spread == 0):
        return fallback
    z = (log_settings[near] - center) / spread
    coefficients, _, rank, _ = np.linalg.lstsq(_features(z), losses[near], rcond=None)
    if rank < n_coefficients:
        return fallback
    gradient, hessian = _gradient_and_hessian(coefficients, len(dims))
    low = (log_settings.min(axis=0) - center) / spread
    high = (log_settings.max(axis=0) - center) / spread
    if not np.all(np.linalg.eigvalsh(hessian) > 0):
        return fallback
    z_best = _minimise_quadratic(gradient, hessian, low, high)
    setting = settings[best].copy()
    setting[dims] = np.exp(center + spread * z_best)
    loss = float(coefficients[0] + gradient @ z_best + 0.5 * z_best @ hessian @ z_best)
    curvature = {h: float(hessian[i, i] / spread[i] ** 2) for i, h in enumerate(searched)}
    return _SurfaceFit(setting, loss, curvature, bounds, fitted=True)


def _features(z: np.ndarray) -> np.ndarray:
    """Columns 1, z_i, z_i·z_j (i ≤ j) of a full quadratic."""
    columns = [np.ones(len(z)), *z.T]
    columns += [z[:, i] * z[:, j] for i, j in combinations_with_replacement(range(z.shape[1]), 2)]
    return np.column_stack(columns)


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


def _edges(fit: _SurfaceFit) -> dict[str, str]:
    """Searched hyperparameters whose optimum lies within 5% (of the log range) of the range's ends."""
    edges: dict[str, str] = {}
    for h in fit.bounds:
        low, high = np.log(fit.bounds[h])
        if high <= low:
            continue
        position = (np.log(fit.setting[HYPERPARAMETERS.index(h)]) - low) / (high - low)
        if position <= _EDGE_FRACTION:
            edges[h] = "low"
        elif position >= 1.0 - _EDGE_FRACTION:
            edges[h] = "high"
    return edges
