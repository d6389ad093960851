"""Where early stopping may judge: the share of the budget from which a rung ranks trials as their end does.

Early stopping compares trials part way: a trial behind at a rung is stopped
there. That is only as good as the rung's ranking. Before a cosine schedule
has decayed, a run at a higher peak lr has not paid off yet; inside the
warmup every lr reads alike; and where a short run favours a lower lr (the
short-horizon bias of real training) a rung stops the very trials that would
win. How far into a run the ranking can be trusted differs from one family,
schedule and budget to the next, so it is measured, not assumed: on the
smaller scales' complete trials, the Spearman rank correlation between the
loss each trial had at a share t/D of its budget and its final loss.
`judge_from` is the first share from which that correlation stays at or above
a threshold; a check's probes are not stopped before it.

A correlation read on a few dozen trials is itself uncertain (its standard
error is about 1/√(n − 3) in Fisher's z), so the threshold is held against
its lower confidence bound (`lower_bound`, 90% one-sided), not against the
point estimate: a rung trusted on the evidence of 36 trials must rank them
with ρ ≥ 0.87 to clear 0.8, on 10 trials with ρ ≥ 0.92. The trials pruned on
a mistaken trust are the evidence that would have shown the mistake (their
curves never reach the end), so the doubt must be settled before pruning.

The correlation is read on the largest smaller scale with `MIN_TRIALS`
complete trials whose curves are known (the one most like the scale planned),
at every share of the budget at which `MIN_TRIALS` of them were evaluated.
Replaying the committed `mlp` table (``benchmarks/search_efficiency.py``, 10
searches): read on a check's lr sweep (w16) no rung reaches 0.8 (D/9 0.26,
D/3 -0.36: a short run favours a lower lr), so the next check's probes run to
the end; read on w8's full-space design (36 trials), D/27 reads 0.6-0.75
(inside the warmup) and D/9 0.85-0.93, whose lower bounds (0.77-0.89) clear
0.8 in some searches only: there w16's probes run to the end too, and show
w16's disagreement. On the surrogate the 16M design reads 0.7-0.8 at D/27 and
D/9 and about 0.88 at D/3: the 64M probes are judged from D/3 in most searches.

Pure: pandas and scipy in, a share out.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from hpo.vocab import COMPLETE

__all__ = ["CONFIDENCE", "MIN_TRIALS", "judge_from", "lower_bound", "rung_agreement"]

MIN_TRIALS = 8
"""Fewest complete trials with a loss at a share of the budget for a rank correlation there: with fewer the
correlation's standard error (about 1/sqrt(n - 1)) is above 0.35."""
CONFIDENCE = 0.9
"""One-sided confidence of the lower bound a rung's rank correlation is judged by (`lower_bound`)."""
_LARGEST_RHO = 1.0 - 1e-9
"""|ρ| = 1 (a rung ranking every trial as its end does, or exactly reversed) is read as this, whose Fisher z
is finite."""
_SHARE_DIGITS = 4
"""Shares of the budget are compared rounded to this many decimals (a rung of D/27 is 0.037)."""


def rung_agreement(history: pd.DataFrame, curves: pd.DataFrame | None) -> tuple[str, dict[float, float]]:
    """The scale whose trials the agreement is read on, and at each share t/D of the budget (below 1) the
    lower confidence bound (`lower_bound`) of the Spearman correlation between the complete trials' losses
    at t and their final losses; ``("", {})`` when no smaller scale has `MIN_TRIALS` complete trials with
    curves.

    `history` is the trial table of the smaller scales, `curves` their evaluations (columns ``scale``,
    ``trial_number``, ``tokens_seen``, ``loss``), as `hpo.search.strategy.ScaleToPlan` holds them.
    """
    if curves is None or curves.empty or history.empty:
        return "", {}
    complete = history[history["status"] == COMPLETE]
    for scale in _largest_first(complete):
        finals = complete[complete["scale"] == scale].set_index("trial_number")
        points = curves[(curves["scale"] == scale) & curves["trial_number"].isin(finals.index)]
        if points["trial_number"].nunique() < MIN_TRIALS:
            continue
        tokens = finals["tokens"].reindex(points["trial_number"]).to_numpy(dtype=float)
        share = np.round(points["tokens_seen"].to_numpy(dtype=float) / tokens, _SHARE_DIGITS)
        table = points.assign(share=share).pivot_table(index="trial_number", columns="share", values="loss",
                                                       aggfunc="first")
        final = finals["loss"].reindex(table.index).to_numpy(dtype=float)
        agreement = {}
        for at in table.columns:
            if float(at) >= 1:
                continue
            losses = table[at].to_numpy(dtype=float)
            known = np.isfinite(losses) & np.isfinite(final)
            if known.sum() >= MIN_TRIALS:
                agreement[float(at)] = lower_bound(_spearman(losses[known], final[known]), int(known.sum()))
        if agreement:
            return str(scale), agreement
    return "", {}


def lower_bound(rho: float, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided lower confidence bound of a Spearman correlation `rho` read on `n` pairs:
    ``tanh(atanh ρ − z·√(1.06 / (n − 3)))``, z the normal quantile of `confidence` (Fisher's z, with the
    variance of Spearman's ρ of Fieller, Hartley and Pearson 1957)."""
    z = NormalDist().inv_cdf(confidence)
    return math.tanh(math.atanh(min(max(rho, -_LARGEST_RHO), _LARGEST_RHO)) - z * math.sqrt(1.06 / (n - 3)))


def judge_from(agreement: dict[float, float], threshold: float) -> float | None:
    """The first share of the budget from which every measured share's rank correlation is at least
    `threshold`; 1.0 (never stop early) when the last one measured falls short; None when nothing was
    measured (the scheduler's own first rung then)."""
    if not agreement:
        return None
    start = 1.0
    for share in sorted(agreement, reverse=True):
        if agreement[share] < threshold:
            break
        start = share
    return start


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of `x` and `y` (0 where either is constant)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    return rho if math.isfinite(rho) else 0.0


def _largest_first(complete: pd.DataFrame) -> list[str]:
    """The scales of `complete`, largest N first."""
    by_size = complete.groupby("scale")["params"].first().sort_values(ascending=False)
    return [str(scale) for scale in by_size.index]
