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
at every evaluation of the schedule at which `MIN_TRIALS` of them were
evaluated (the k-th evaluation of each trial, at the least share of the
budget any reached it: the tokens seen at an evaluation differ with the batch
size by up to one step),
over the better half of its complete trials by final loss (at least
`MIN_TRIALS`): a check's probes race the prediction near the optimum, where
a rung must rank trials a fraction of a percent apart, while a design's
far-off settings, easy to rank at any rung, lift a whole-scale correlation.
Replaying the committed tables (``benchmarks/search_efficiency.py``): on
`mlp` the better half reads no rung at 0.8 (w8's design 0.0-0.7 at D/9, the
checks' lr sweeps negative at D/3: a short run favours a lower lr), so every
check's probes run to the end (read on whole designs, w8's D/9 cleared 0.8 in
some searches and w16's probes, pruned behind the prediction, hid its
disagreement: median regret at w256 2.89%, 0.48% on the better half, 100
searches at T = 24); on `gpt` the 13k design's better half reads 0.88-0.92
at D/3 and 0.55-0.73 at D/9, so the probes are judged from D/3; on the
surrogate the 16M design's better half reads below 0.6, and its probes run
to the end.

Pure: pandas and scipy in, a share out.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

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
"""Shares of the budget are reported rounded to this many decimals (a rung of D/27 is 0.037)."""


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
        finals = _better_half(complete[complete["scale"] == scale]).set_index("trial_number")
        points = curves[(curves["scale"] == scale) & curves["trial_number"].isin(finals.index)]
        if points["trial_number"].nunique() < MIN_TRIALS:
            continue
        table, shares = _evaluations(points, finals["tokens"])
        final = finals["loss"].reindex(table.index).to_numpy(dtype=float)
        agreement = {}
        for evaluation in table.columns:
            at = round(float(shares[evaluation]), _SHARE_DIGITS)
            if at >= 1:
                continue
            losses = table[evaluation].to_numpy(dtype=float)
            known = np.isfinite(losses) & np.isfinite(final)
            if known.sum() >= MIN_TRIALS:
                agreement[at] = lower_bound(_spearman(losses[known], final[known]), int(known.sum()))
        if agreement:
            return str(scale), agreement
    return "", {}


def _evaluations(points: pd.DataFrame, tokens: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """One scale's curves as a table of losses, a row per trial and a column per evaluation (the k-th of
    each trial), and each evaluation's share of the budget: the least t/D at which a trial made it. The
    trials of a scale share an evaluation schedule, but a trial evaluates at the end of the step that
    passes a scheduled point, so t differs with the tokens per step (batch size): at 1,000, 1,008 or 1,024
    tokens for the same point. `tokens` holds each trial's budget D, indexed by trial number."""
    keys = ["trial_number", "tokens_seen"]
    ordered = points.drop_duplicates(keys).sort_values(keys)
    budget = tokens.reindex(ordered["trial_number"]).to_numpy(dtype=float)
    ordered = ordered.assign(share=ordered["tokens_seen"].to_numpy(dtype=float) / budget,
                             evaluation=ordered.groupby("trial_number").cumcount())
    table = ordered.pivot_table(index="trial_number", columns="evaluation", values="loss", aggfunc="first")
    return table, ordered.groupby("evaluation")["share"].min()


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
    rank_x, rank_y = (pd.Series(values).rank().to_numpy() for values in (x, y))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = float(np.corrcoef(rank_x, rank_y)[0, 1])
    return rho if math.isfinite(rho) else 0.0


def _better_half(complete: pd.DataFrame) -> pd.DataFrame:
    """The better half of one scale's `complete` trials by final loss, and at least `MIN_TRIALS` of them:
    the trials whose ranking a check's probes are judged on."""
    return complete.nsmallest(max(MIN_TRIALS, math.ceil(len(complete) / 2)), "loss")


def _largest_first(complete: pd.DataFrame) -> list[str]:
    """The scales of `complete`, largest N first."""
    by_size = complete.groupby("scale")["params"].first().sort_values(ascending=False)
    return [str(scale) for scale in by_size.index]
