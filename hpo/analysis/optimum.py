"""The optimum of one cell (variant, model size N, token budget D), with an interval and diagnostics.

Two ways to locate it (`method`; `scaling_fit` chooses between them for a
whole sweep):

* ``"near_best"``: the centre of the cell's near-best band (`near_best`), the
  settings whose loss is within `tolerance` of the best as far as the
  run-to-run noise tells; the interval is that band. On a flat landscape the
  band is wide and its centre stable, where the argmin wanders.
* ``"surface"`` (the default): the minimum of a quadratic surface fitted to the near-best
  trials (`surface`); the interval comes from refitting on trials resampled
  with replacement (its width from the replicates' robust spread, see
  `Estimate.from_draws`), or, when no surface fitted and the best trial stands
  for the optimum, from the settings of the near-best trials (at least the
  three best). The replicates are kept (`Optimum.replicates`, as normal scores
  with that robust spread: `surface.normal_scores`) so that laws fitted across
  cells can propagate them. A minimum pressed on an end of the range tried
  with no near-best trial in that half of the range (`_supported`) is not
  located: a quadratic through a flat ridge, where the best lr rises with
  batch size, slides its minimum along it into a corner where every trial is
  worse than the best; the best trial stands for it instead.

Either way the cell's tuned loss and curvature are the quadratic surface's
(its minimum; the best trial's loss where no bowl fits). A hyperparameter is
*searched* when the cell tried at least three distinct positive values of it
(complete, pruned or diverged); otherwise it is held at the best trial's value.

Diverged trials are data: the lowest learning rate at which a trial diverged
is the cell's *stability edge*. An optimum at the top of the lr range with
diverged trials above it is flagged `near_stability_edge` (widening the range
would not help); an optimum at the edge of the searched range otherwise is
flagged in `at_edge` ("widen the range").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hpo.analysis.estimate import Estimate
from hpo.analysis.near_best import DEFAULT_TOLERANCE, band_edges, membership, near_best_band
from hpo.analysis.noise import estimate_noise
from hpo.analysis.surface import (
    TRIALS_PER_COEFFICIENT,
    SurfaceFit,
    best_trial,
    bootstrap_surface,
    bracket,
    fit_surface,
    n_coefficients,
    near_best_draws,
    normal_scores,
)
from hpo.vocab import COMPLETE, DIVERGED, HYPERPARAMETERS, PRUNED

logger = logging.getLogger(__name__)

METHODS = ("near_best", "surface")
_EDGE_FRACTION = 0.05
_MIN_DISTINCT_VALUES = 3


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
    """False when no bowl-shaped quadratic fitted the near-best trials (the best trial's loss is used)."""
    n_complete: int
    n_diverged: int
    n_pruned: int
    method: str = "surface"
    """How the optimum was located: ``"near_best"`` (centre of the near-best band) or ``"surface"``."""
    curvature: dict[str, float] = field(default_factory=dict)
    """d²L/d(ln h)² of the fitted surface at its minimum, per searched hyperparameter."""
    center_error: dict[str, float] = field(default_factory=dict)
    """``"near_best"``: standard error of ln h at the band's centre, per searched hyperparameter (the
    band's spread over √(effective trials)); what a law fitted across cells takes as the least scatter."""
    surface_minimum: dict[str, float] = field(default_factory=dict)
    """The minimum of the cell's quadratic surface (the best trial's value where no bowl fitted), per
    searched hyperparameter: the optimum itself for ``"surface"``; beside a band's centre for
    ``"near_best"``, where ``scaling_fit``'s ``"blend"`` averages the laws of the two."""
    rises: dict[str, np.ndarray] = field(default_factory=dict)
    """Per searched hyperparameter, one row per complete trial: ln(h / h*), the trial's distance from
    this cell's optimum, and its loss over the cell's best trial's minus 1 (what a setting that far off
    cost)."""
    replicates: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    """Bootstrap optima of the ``"surface"`` method, one row per replicate: lr, batch_size, weight_decay,
    loss, each column as normal scores with its robust spread (empty for ``"near_best"``)."""

    def value(self, hyperparameter: str) -> Estimate:
        """The estimate for ``"lr"``, ``"batch_size"``, ``"weight_decay"`` or ``"loss"``."""
        return getattr(self, hyperparameter)

    def locates(self, hyperparameter: str) -> bool:
        """Whether this cell searched `hyperparameter` and located a positive optimum of it: a cell that
        ran it at one value (as a plan chose it) or whose optimum is weight decay's exact 0 says nothing
        of how its optimum moves, so laws and held values are fitted from the other cells."""
        return hyperparameter in self.searched and self.value(hyperparameter).value > 0


def find_optimum(
    rows: pd.DataFrame,
    *,
    method: str = "surface",
    tolerance: float = DEFAULT_TOLERANCE,
    noise: float | None = None,
    window: float = 0.01,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Optimum:
    """Optimum of one cell's trials (rows of a normalised trial table, one cell only).

    Args:
        rows: trials of one (variant, params, tokens); see `trials.normalize_trials`.
        method: ``"near_best"`` or ``"surface"`` (module docstring).
        tolerance: ``"near_best"``: a loss within this relative distance of the best is as good.
        noise: ``"near_best"``: relative noise σ of one loss; None estimates it from
            the cell's own trials (`noise.estimate_noise`), or takes `tolerance` when too few.
        window: the quadratic surface is fitted to trials within this relative distance of the best.
        n_bootstrap: ``"surface"``: bootstrap replicates for the intervals (0 for none).
        level: confidence level of the intervals (of the band, for ``"near_best"``).
        seed: seed of the resampling.

    Raises:
        ValueError: `rows` span several cells, hold no complete trial, or `method` is unknown.
    """
    _check_cell(rows, method)
    complete = rows[rows["status"] == COMPLETE]
    diverged = rows[rows["status"] == DIVERGED]
    first = rows.iloc[0]
    settings = complete.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
    losses = complete["loss"].to_numpy(dtype=float)
    tried = rows.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
    searched = tuple(h for i, h in enumerate(HYPERPARAMETERS) if _is_searched(tried[:, i]))
    surface = fit_surface(settings, losses, searched, window)
    if method == "surface" and not _supported(surface, settings, losses, searched, tolerance, noise):
        surface = best_trial(settings, losses)
    if method == "near_best":
        located = _near_best(settings, losses, searched, surface, tolerance, noise, level)
    else:
        located = _surface(settings, losses, searched, surface, window, n_bootstrap, level, seed, tried)
    at_edge = dict(located.at_edge)
    optimal_lr = located.estimates["lr"].value
    stability_edge = float(diverged["lr"].min()) if not diverged.empty else None
    if at_edge.get("lr") == "high" and bool((diverged["lr"] >= complete["lr"].max()).any()):
        del at_edge["lr"]
    optimum = Optimum(
        variant=str(first["variant"]),
        scale=str(first["scale"]),
        params=float(first["params"]),
        tokens=float(first["tokens"]),
        lr=located.estimates["lr"],
        batch_size=located.estimates["batch_size"],
        weight_decay=located.estimates["weight_decay"],
        loss=located.loss,
        searched=searched,
        at_edge=at_edge,
        stability_edge_lr=stability_edge,
        near_stability_edge=stability_edge is not None and optimal_lr >= stability_edge / 2,
        too_few_trials=len(complete) < TRIALS_PER_COEFFICIENT * n_coefficients(len(searched)),
        surface_fitted=surface.fitted or not searched,
        n_complete=len(complete),
        n_diverged=len(diverged),
        n_pruned=int((rows["status"] == PRUNED).sum()),
        method=method,
        curvature=surface.curvature,
        surface_minimum={h: float(value) for h, value in zip(HYPERPARAMETERS, surface.setting, strict=True)
                         if h in searched},
        rises=_rises(settings, losses, searched, located),
        replicates=located.replicates,
        center_error=located.center_error,
    )
    logger.debug("optimum of %s/%s: lr=%.3g", optimum.variant, optimum.scale, optimum.lr.value)
    return optimum


def _check_cell(rows: pd.DataFrame, method: str) -> None:
    """ValueError unless `method` is known and `rows` are one cell's with a complete trial."""
    if method not in METHODS:
        raise ValueError(f"find_optimum: method must be one of {METHODS}, got {method!r}")
    if rows[["variant", "params", "tokens"]].drop_duplicates().shape[0] != 1:
        raise ValueError("find_optimum: rows must come from one cell (variant, params, tokens); group first")
    if not (rows["status"] == COMPLETE).any():
        first = rows.iloc[0]
        raise ValueError(
            f"find_optimum: no complete trial in cell {first['variant']}/{first['scale']}; "
            "run trials to their full token budget"
        )


def _rises(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...], located: _Located
) -> dict[str, np.ndarray]:
    """`Optimum.rises`: each complete trial's ln distance from the located optimum, per searched
    hyperparameter (a positive optimum: weight decay's 0 has no log distance), with its loss relative to
    the best trial's (measured, so never below 0, whatever a surface extrapolates)."""
    rise = losses / losses.min() - 1.0
    return {
        h: np.column_stack([np.log(settings[:, i] / optimum), rise])
        for i, h in enumerate(HYPERPARAMETERS)
        if h in searched and (optimum := located.estimates[h].value) > 0 and np.all(settings[:, i] > 0)
    }


@dataclass(frozen=True, eq=False)
class _Located:
    estimates: dict[str, Estimate]
    loss: Estimate
    at_edge: dict[str, str]
    replicates: np.ndarray
    center_error: dict[str, float]


def _near_best(
    settings: np.ndarray,
    losses: np.ndarray,
    searched: tuple[str, ...],
    surface: SurfaceFit,
    tolerance: float,
    noise: float | None,
    level: float,
) -> _Located:
    """The near-best band's centre, its band as the interval, weight decay's exact-zero branch where the
    surface's minimum lies on it; the surface's loss (no interval)."""
    if noise is None:
        noise = cell_noise(settings, losses, searched) or tolerance
    zero = "weight_decay" in searched and surface.setting[HYPERPARAMETERS.index("weight_decay")] == 0
    band = near_best_band(
        settings, losses, searched, tolerance=tolerance, noise=noise, zero_weight_decay=zero
    )
    estimates = {
        h: Estimate(float(band.center[i]), *band.interval(i, level), level)
        for i, h in enumerate(HYPERPARAMETERS)
    }
    loss = Estimate(surface.loss, math.nan, math.nan, level)
    error = {
        h: float(band.spread[i]) / math.sqrt(band.effective_trials)
        for i, h in enumerate(HYPERPARAMETERS)
        if h in searched and band.center[i] > 0
    }
    return _Located(estimates, loss, band_edges(settings, band, searched), np.empty((0, 4)), error)


def _surface(
    settings: np.ndarray,
    losses: np.ndarray,
    searched: tuple[str, ...],
    surface: SurfaceFit,
    window: float,
    n_bootstrap: int,
    level: float,
    seed: int,
    tried: np.ndarray,
) -> _Located:
    """The surface's minimum with bootstrap intervals (where no surface fitted, the near-best settings'
    spread, at least the search's resolution around the best trial: `_bracket_draws`; where the minimum
    is a line's bracket parabola, the bracket: the values tried next to the best trial; where no surface
    fitted a line whose best trial has complete trials on either side, that bracket of complete trials:
    the near-best three of a short line reach past the neighbours, on a cliff-side valley a decade out,
    and a law would ignore the cell)."""
    replicates = bootstrap_surface(settings, losses, searched, window, n_bootstrap, seed)
    best = settings[int(np.argmin(losses))]
    if surface.bracketed is not None:
        column = HYPERPARAMETERS.index(surface.bracketed)
        replicates[:, column] = best[column]
        _bracket_draws(replicates, best, tried, searched, seed)
    elif searched and not surface.fitted:
        replicates[:, :3] = near_best_draws(settings, losses, window, n_bootstrap, seed)
        line = _bracketed_line(settings, losses, searched)
        if line:
            column = HYPERPARAMETERS.index(searched[0])
            replicates[:, column] = best[column]
        _bracket_draws(replicates, best, settings if line else tried, searched, seed)
    replicates = normal_scores(replicates)
    estimates = {
        h: Estimate.from_draws(value, replicates[:, i], level, log_scale=value > 0)
        for i, (h, value) in enumerate(zip(HYPERPARAMETERS, surface.setting, strict=True))
    }
    loss = Estimate.from_draws(surface.loss, replicates[:, 3], level)
    return _Located(estimates, loss, _surface_edges(settings, surface, searched), replicates, {})


def _supported(surface: SurfaceFit, settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...],
               tolerance: float, noise: float | None) -> bool:
    """Whether every end of the range tried that the surface's minimum presses on (`_surface_edges`) has
    a near-best trial (`near_best.membership` at least 1/2) in its half of the range. A quadratic through
    a flat ridge (lr rising with batch size) can slide its minimum along the ridge into a corner where
    every trial is worse than the best: no optimum is located there. An optimum beyond the range tried
    draws the best trials towards the end it presses on."""
    pressed = _surface_edges(settings, surface, searched)
    if not pressed:
        return True
    if noise is None:
        noise = cell_noise(settings, losses, searched) or tolerance
    near_best = membership(losses, tolerance=tolerance, noise=noise) >= 0.5
    for name, side in pressed.items():
        values = settings[:, HYPERPARAMETERS.index(name)]
        positive = values > 0
        logs = np.log(values[positive])
        position = (logs - logs.min()) / (logs.max() - logs.min())
        towards = position <= 0.5 if side == "low" else position >= 0.5
        if not np.any(towards & near_best[positive]):
            return False
    return True


def _bracketed_line(settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...]) -> bool:
    """Whether one positive hyperparameter alone was searched and the best complete trial has complete
    trials at a lower and at a higher value of it (`settings`, `losses`: the complete trials)."""
    if len(searched) != 1:
        return False
    values = settings[:, HYPERPARAMETERS.index(searched[0])]
    return bool(np.all(values > 0) and bracket(np.log(values), int(np.argmin(losses))).any())


def _bracket_draws(
    replicates: np.ndarray, best: np.ndarray, tried: np.ndarray, searched: tuple[str, ...], seed: int
) -> None:
    """Where every near-best draw of a searched hyperparameter is the best trial's value (one complete
    trial near the best: a check whose probes were stopped early), redraw it log-uniformly between the
    values tried next to it on either side, whatever became of those trials: the optimum lies somewhere
    between the best trial's neighbours, and a spread of zero would let this cell outweigh every
    well-measured one in a law."""
    rng = np.random.default_rng(seed)
    for name in searched:
        column = HYPERPARAMETERS.index(name)
        value = best[column]
        if value <= 0 or len(replicates) < 2 or np.unique(replicates[:, column]).size > 1:
            continue
        values = tried[:, column]
        values = values[values > 0]
        below, above = values[values < value], values[values > value]
        low = np.log(below.max()) if below.size else np.log(value)
        high = np.log(above.min()) if above.size else np.log(value)
        if high > low:
            replicates[:, column] = np.exp(rng.uniform(low, high, len(replicates)))


def cell_noise(settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...]) -> float | None:
    """The relative loss noise of one cell's complete trials (`noise.estimate_noise`); None when too few."""
    return estimate_noise([searched_logs(settings, losses, searched)])


def pooled_noise(cells: Iterable[pd.DataFrame]) -> float | None:
    """The relative loss noise pooled over cells (each the rows of one cell of a normalised trial table);
    None when no cell has enough complete trials to tell."""
    logs = []
    for rows in cells:
        complete = rows[rows["status"] == COMPLETE]
        tried = rows.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
        searched = tuple(h for i, h in enumerate(HYPERPARAMETERS) if _is_searched(tried[:, i]))
        settings = complete.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)
        logs.append(searched_logs(settings, complete["loss"].to_numpy(dtype=float), searched))
    return estimate_noise(logs)


def searched_logs(
    settings: np.ndarray, losses: np.ndarray, searched: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """ln of the searched hyperparameters and the losses, of the trials where all of them are positive
    (weight decay's exact-zero trials drop out of the noise fit, not out of the band)."""
    columns = [HYPERPARAMETERS.index(h) for h in searched]
    positive = np.all(settings[:, columns] > 0, axis=1)
    return np.log(settings[np.ix_(positive, columns)]), losses[positive]


def _is_searched(values: np.ndarray) -> bool:
    return np.unique(values[values > 0]).size >= _MIN_DISTINCT_VALUES


def _surface_edges(settings: np.ndarray, surface: SurfaceFit, searched: tuple[str, ...]) -> dict[str, str]:
    """Searched hyperparameters whose surface minimum lies within 5% (of the log range) of the range tried."""
    edges: dict[str, str] = {}
    for name in searched:
        column = HYPERPARAMETERS.index(name)
        values = settings[:, column]
        values = values[values > 0]
        if values.size < 2 or surface.setting[column] <= 0:
            continue
        low, high = np.log(values.min()), np.log(values.max())
        if high <= low:
            continue
        position = (np.log(surface.setting[column]) - low) / (high - low)
        if position <= _EDGE_FRACTION:
            edges[name] = "low"
        elif position >= 1.0 - _EDGE_FRACTION:
            edges[name] = "high"
    return edges
