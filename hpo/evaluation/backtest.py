"""Leave-largest-out backtest: fit on the smaller model sizes, judge the prediction at the largest.

For every cell (N_max, D) of the largest model size, the laws fitted on the
smaller sizes predict (lr, batch size); its loss regret against the best
measured there (`regret.regret_pct`) is set next to baselines judged the same
way:

* ``reuse_best``: the best trial of the largest *fitted* size, taken from its
  cell with the closest tokens per parameter (what one would copy without a
  law);
* any named rule ``(N, D) -> (lr, batch size)`` passed in `baselines`, e.g. a
  published law.

Regret is in % of the best loss; lower is better, 0 is the best measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from hpo.analysis.estimate import Estimate
from hpo.analysis.extrapolate import recommend
from hpo.analysis.scaling_fit import fit_scaling
from hpo.evaluation.regret import regret_pct

Rule = Callable[[float, float], tuple[float, float]]
"""(params N, tokens D) -> (lr, batch size per step)."""

PREDICTED = "predicted"
REUSE_BEST = "reuse_best"


@dataclass(frozen=True)
class HeldOutCell:
    """One held-out cell: each method's setting and its regret (%) under both regret readings."""

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


def leave_largest_out(
    trials: pd.DataFrame,
    *,
    baselines: Mapping[str, Rule] | None = None,
    variant: str | None = None,
    n_bootstrap: int = 100,
    bandwidth: float = 1.0,
    seed: int = 0,
) -> list[HeldOutCell]:
    """Backtest one variant (the only one, or `variant`) of a normalised trial table.

    Raises:
        ValueError: fewer than three model sizes, or several variants and none chosen.
    """
    variants = sorted(trials["variant"].unique())
    if variant is None and len(variants) > 1:
        raise ValueError(f"leave_largest_out: several variants {variants}; pass variant=")
    rows = trials[trials["variant"] == (variant or variants[0])]
    sizes = sorted(rows["params"].unique())
    if len(sizes) < 3:
        raise ValueError("leave_largest_out: need at least 3 model sizes (2 to fit, 1 held out)")
    held_out, largest_fitted = sizes[-1], sizes[-2]
    fitted = rows[rows["params"] < held_out]
    fit = fit_scaling(fitted, n_bootstrap=n_bootstrap, seed=seed)
    results = []
    for tokens, cell in rows[rows["params"] == held_out].groupby("tokens"):
        recommendation = recommend(fit, target_params=held_out, target_tokens=float(tokens))
        settings = {
            PREDICTED: (recommendation.lr.value, recommendation.batch_size.value),
            REUSE_BEST: _best_setting_at(fitted, largest_fitted, float(tokens) / held_out),
        }
        settings.update({name: rule(held_out, float(tokens)) for name, rule in (baselines or {}).items()})
        results.append(
            HeldOutCell(
                params=float(held_out),
                tokens=float(tokens),
                settings=settings,
                regret_local_pct={
                    name: regret_pct(cell, *setting, method="local", bandwidth=bandwidth)
                    for name, setting in settings.items()
                },
                regret_nearest_pct={
                    name: regret_pct(cell, *setting, method="nearest") for name, setting in settings.items()
                },
                predicted_lr=recommendation.lr,
                predicted_batch_size=recommendation.batch_size,
                predicted_loss=recommendation.loss,
                best_loss=float(cell.loc[cell["status"] == "complete", "loss"].min()),
            )
        )
    return results


def _best_setting_at(trials: pd.DataFrame, params: float, tokens_per_param: float) -> tuple[float, float]:
    """(lr, batch size) of the best complete trial at size `params`, in the cell closest in D/N."""
    rows = trials[(trials["params"] == params) & (trials["status"] == "complete")]
    budgets = rows["tokens"].unique()
    closest = min(budgets, key=lambda d: abs(math.log(d / params / tokens_per_param)))
    cell = rows[rows["tokens"] == closest]
    best = cell.loc[cell["loss"].idxmin()]
    return float(best["lr"]), float(best["batch_size"])
