"""Backtest of the extrapolation on a sweep: hold model sizes out, fit on the rest, judge at the held-out.

Folds, for a variant with model sizes N_1 < … < N_k:

* *leave largest out*: fit N_1..N_{j-1}, hold out N_j, for every j ≥ 3 (the
  law needs two sizes): the last is the real question (the largest size
  predicted from all others), the earlier ones ask it again with shorter ladders;
* *leave one out*: fit every size but N_j, hold out N_j, for every size inside
  the span (1 < j < k): interpolation, where a law should do best.

In every held-out cell (N_j, D) the fitted laws' (lr, batch size) is judged
against the cell's own runs (`regret.regret_pct`, local-surface and nearest-run
readings, % of the best loss), next to baselines judged the same way:

* ``reuse_best``: the best trial of the largest fitted size below N_j, from its
  cell with the closest tokens per parameter (what one would copy without a law);
* any named rule ``(N, D) -> (lr, batch size)`` passed in `baselines`.

An interval *covers* a held-out cell when it contains the value of a complete
trial of that cell whose loss is within `tolerance` (0.1%) of the cell's best:
the interval points at a setting as good as the best. Each fold's fit is timed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpo.analysis.estimate import Estimate
from hpo.analysis.near_best import DEFAULT_TOLERANCE
from hpo.analysis.recommendation import Recommendation, recommend
from hpo.analysis.scaling_fit import fit_scaling
from hpo.analysis.trials import normalize_trials, scale_name
from hpo.evaluation.regret import regret_pct
from hpo.vocab import COMPLETE

Rule = Callable[[float, float], tuple[float, float]]
"""(params N, tokens D) -> (lr, batch size per step)."""

PREDICTED = "predicted"
REUSE_BEST = "reuse_best"
LEAVE_LARGEST_OUT = "leave largest out"
LEAVE_ONE_OUT = "leave one out"


@dataclass(frozen=True)
class HeldOutCell:
    """One held-out cell: every method's setting, its regret (%) by both readings, the intervals' verdicts."""

    params: float
    tokens: float
    settings: dict[str, tuple[float, float]]
    """Method name -> (lr, batch size) it chose."""
    regret_local_pct: dict[str, float]
    regret_nearest_pct: dict[str, float]
    predicted_lr: Estimate
    predicted_batch_size: Estimate
    predicted_loss: Estimate
    best_loss: float
    """Lowest measured loss in the cell."""
    lr_covered: bool
    batch_size_covered: bool
    """Whether the interval holds the value of a trial within the tolerance of the cell's best."""


@dataclass(frozen=True)
class Fold:
    """The cells of one held-out size, predicted from the sizes fitted."""

    kind: str
    """`LEAVE_LARGEST_OUT` or `LEAVE_ONE_OUT`."""
    variant: str
    fitted_params: tuple[float, ...]
    held_out_params: float
    seconds: float
    """Wall time of the fit and the recommendations."""
    cells: tuple[HeldOutCell, ...]

    @property
    def name(self) -> str:
        """E.g. ``"leave largest out: 215M-429M -> 537M"``."""
        fitted = f"{scale_name(self.fitted_params[0])}-{scale_name(self.fitted_params[-1])}"
        return f"{self.kind}: {fitted} -> {scale_name(self.held_out_params)}"


@dataclass(frozen=True)
class BacktestReport:
    """Every fold of a backtest, and the figures that sum it up."""

    method: str
    tolerance: float
    folds: tuple[Fold, ...]

    def cells(self, kind: str | None = None) -> list[HeldOutCell]:
        """The held-out cells of every fold (of one `kind` only, when given)."""
        return [cell for fold in self.folds if kind in (None, fold.kind) for cell in fold.cells]

    def worst_regret_pct(self, reading: str = "local", kind: str | None = LEAVE_LARGEST_OUT) -> float:
        """The largest regret of the prediction over held-out cells (``"local"`` or ``"nearest"``)."""
        return max(_regrets(self.cells(kind), PREDICTED, reading), default=math.nan)

    def mean_regret_pct(
        self, method: str = PREDICTED, reading: str = "local", kind: str | None = None
    ) -> float:
        """The mean regret of `method` over held-out cells."""
        return float(np.mean(_regrets(self.cells(kind), method, reading)))

    def beats_reuse_share(self, kind: str | None = LEAVE_LARGEST_OUT) -> float:
        """Share of held-out cells where the prediction's local regret is below reusing the best setting."""
        cells = self.cells(kind)
        return float(np.mean([c.regret_local_pct[PREDICTED] < c.regret_local_pct[REUSE_BEST] for c in cells]))

    def coverage(self, kind: str | None = None) -> float:
        """Share of lr and batch-size intervals that cover their held-out cell."""
        cells = self.cells(kind)
        return float(np.mean([c.lr_covered for c in cells] + [c.batch_size_covered for c in cells]))

    def median_lr_interval_ratio(self, kind: str | None = None) -> float:
        """Median over held-out cells of the lr interval's high / low."""
        return float(np.median([c.predicted_lr.high / c.predicted_lr.low for c in self.cells(kind)]))

    @property
    def seconds(self) -> float:
        """Mean wall time of one fold's fit."""
        return float(np.mean([fold.seconds for fold in self.folds]))


def run_backtest(
    trials: pd.DataFrame,
    *,
    method: str = "auto",
    baselines: Mapping[str, Rule] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
    bandwidth: float = 1.0,
    largest_only: bool = False,
) -> BacktestReport:
    """Backtest every variant of a trial table.

    Args:
        trials: the sweep, with the trial table's columns (`hpo.analysis.normalize_trials` is applied).
        method: how the laws are fitted (`hpo.analysis.fit_scaling`).
        baselines: further named rules judged in every held-out cell, e.g. a published law.
        tolerance: an interval covers a cell when it holds a trial within this share of the best loss.
        n_bootstrap, level, seed: as for `fit_scaling`.
        bandwidth: of the local-surface regret reading, in octaves (`regret.local_loss`).
        largest_only: only the fold that holds out the largest size (the real question), not the shorter
            ladders' folds nor the leave-one-out ones.

    Raises:
        ValueError: no variant has three model sizes (two to fit, one to hold out).
    """
    trials = normalize_trials(trials)
    options = _Options(method, dict(baselines or {}), tolerance, n_bootstrap, level, seed, bandwidth)
    folds = [
        _fold(rows, fitted, held_out, kind, options)
        for _, rows in trials.groupby("variant", sort=True)
        for fitted, held_out, kind in _fold_plan(sorted(rows["params"].unique()), largest_only)
    ]
    if not folds:
        raise ValueError("backtest: need a variant with at least 3 model sizes (2 to fit, 1 to hold out)")
    return BacktestReport(method=method, tolerance=tolerance, folds=tuple(folds))


@dataclass(frozen=True)
class _Options:
    method: str
    baselines: dict[str, Rule]
    tolerance: float
    n_bootstrap: int
    level: float
    seed: int
    bandwidth: float


def _fold_plan(sizes: list[float], largest_only: bool = False) -> list[tuple[list[float], float, str]]:
    """(fitted sizes, held-out size, kind) of every fold, the largest held out first; that one alone
    where `largest_only`."""
    plan = [(sizes[:j], sizes[j], LEAVE_LARGEST_OUT) for j in range(len(sizes) - 1, 1, -1)]
    if largest_only:
        return plan[:1]
    plan += [(sizes[:j] + sizes[j + 1 :], sizes[j], LEAVE_ONE_OUT) for j in range(1, len(sizes) - 1)]
    return plan


def _fold(
    rows: pd.DataFrame, fitted_sizes: list[float], held_out: float, kind: str, options: _Options
) -> Fold:
    """Fit `fitted_sizes` of one variant's `rows`, recommend for every budget of `held_out`, judge."""
    fitted = rows[rows["params"].isin(fitted_sizes)]
    started = time.perf_counter()
    fit = fit_scaling(
        fitted,
        method=options.method,
        tolerance=options.tolerance,
        n_bootstrap=options.n_bootstrap,
        level=options.level,
        seed=options.seed,
    )
    budgets = sorted(rows.loc[rows["params"] == held_out, "tokens"].unique())
    recommendations = [recommend(fit, target_params=held_out, target_tokens=float(d)) for d in budgets]
    seconds = time.perf_counter() - started
    reuse_from = max((n for n in fitted_sizes if n < held_out), default=min(fitted_sizes))
    cells = []
    for tokens, recommendation in zip(budgets, recommendations, strict=True):
        chosen = {
            PREDICTED: (recommendation.lr.value, recommendation.batch_size.value),
            REUSE_BEST: _best_setting_at(fitted, reuse_from, float(tokens) / held_out),
        }
        chosen.update({name: rule(held_out, float(tokens)) for name, rule in options.baselines.items()})
        cell = rows[(rows["params"] == held_out) & (rows["tokens"] == tokens)]
        cells.append(_judge(cell, chosen, recommendation, options))
    return Fold(
        kind, str(rows["variant"].iloc[0]), tuple(fitted_sizes), float(held_out), seconds, tuple(cells)
    )


def _judge(
    cell: pd.DataFrame,
    chosen: dict[str, tuple[float, float]],
    recommendation: Recommendation,
    options: _Options,
) -> HeldOutCell:
    complete = cell[cell["status"] == COMPLETE]
    best = float(complete["loss"].min())
    good = complete[complete["loss"] <= best * (1.0 + options.tolerance)]
    local = {
        name: regret_pct(cell, *setting, method="local", bandwidth=options.bandwidth)
        for name, setting in chosen.items()
    }
    return HeldOutCell(
        params=float(cell["params"].iloc[0]),
        tokens=float(cell["tokens"].iloc[0]),
        settings=chosen,
        regret_local_pct=local,
        regret_nearest_pct={
            name: regret_pct(cell, *setting, method="nearest") for name, setting in chosen.items()
        },
        predicted_lr=recommendation.lr,
        predicted_batch_size=recommendation.batch_size,
        predicted_loss=recommendation.loss,
        best_loss=best,
        lr_covered=_covers(recommendation.lr, good["lr"].to_numpy()),
        batch_size_covered=_covers(recommendation.batch_size, good["batch_size"].to_numpy()),
    )


def _covers(estimate: Estimate, values: np.ndarray) -> bool:
    """Whether [low, high] (up to rounding) holds one of `values`."""
    low, high = estimate.low * (1 - 1e-9), estimate.high * (1 + 1e-9)
    return bool(np.any((values >= low) & (values <= high)))


def _regrets(cells: list[HeldOutCell], method: str, reading: str) -> list[float]:
    return [c.regret_local_pct[method] if reading == "local" else c.regret_nearest_pct[method] for c in cells]


def _best_setting_at(trials: pd.DataFrame, params: float, tokens_per_param: float) -> tuple[float, float]:
    """(lr, batch size) of the best complete trial at size `params`, in the cell closest in D/N."""
    rows = trials[(trials["params"] == params) & (trials["status"] == COMPLETE)]
    budgets = rows["tokens"].unique()
    closest = min(budgets, key=lambda d: abs(math.log(d / params / tokens_per_param)))
    cell = rows[rows["tokens"] == closest]
    best = cell.loc[cell["loss"].idxmin()]
    return float(best["lr"]), float(best["batch_size"])
