"""Scale-aware search: what the smaller scales learned narrows the search at the next one.

A trial's cost grows with its scale (6·N·D FLOPs: ×16 per ×4 in N at fixed
tokens per parameter), so a study's compute is that of its largest scales,
while the laws' precision comes from optima located anywhere on the ladder.
Each scale is therefore searched by what one of its trials costs, its
`cost_ratio` ρ: the compute of one full-budget trial there over one at the
ladder's largest scale. A scale may spend ``design_cost`` largest-scale trials:
``n = min(max(ceil(first_scales_factor · T), bowl), floor(design_cost / ρ))``
full-budget trials (`affordable_trials`; `bowl` = 30 for three searched
hyperparameters, the fewest `hpo.analysis` fits a bowl to: fewer, and a
cell's optimum is its best trial, which on a flat, noisy landscape is noise).

* **The first scale** (no law yet) runs a Latin hypercube of those n settings
  over the full space, every trial to its full budget (`full_space_design`);
  where n is below T, or with ``first_scales_factor`` 1, an ordinary search
  of T trials. **The second** does the same where n is at least T or makes a
  design (below); else it checks the first scale's optimum as a later scale
  checks a prediction (a law of exponent 0).
* **A later scale** gets a prediction: `plan_scale` fits the optimum laws
  h*(N) = a·N^b (`hpo.analysis.fit_scaling`, its ``auto`` method; h*(N, D) =
  a·N^b·D^c when the ladder varies D apart from N) and predicts each searched
  hyperparameter with its interval ``[low, high]``; one the analysis holds
  without a law is predicted at its held value, its interval the cells'
  optima. The space is narrowed: lr and weight decay to ``[low / f, high ·
  f]``, batch size to the powers of two covering it (at least five), f the
  safety factor (f² after a broken law), never beyond the study's own range.
  The predicted optimum runs first, to its full budget. Then, by cost:

  - a **design scale**, where the n trials are enough to locate the optimum
    (`design_size`: at least `DESIGN_TRIALS_PER_COEFFICIENT` per coefficient
    of the quadratic `hpo.analysis.find_optimum` fits): a Latin hypercube of
    the narrowed space, ``ceil(explore_share · n)`` of the n drawn from the
    full space instead, every trial to its full budget, so the scale's
    optimum is located without early stopping's bias;
  - a **check scale**, where they are not (the expensive end of the ladder):
    ``max(n, min_trials, ceil(trials_share · T))`` trials (at most T beyond
    n), the prediction and *probes*, the prediction at lrs spread evenly across
    the narrowed lr band and one safety factor beyond it (`_probes`), so that
    the scale measures the lr law, not only its point. Early stopping judges
    a probe no earlier than the share of the budget from which the smaller
    scales' rungs ranked their trials as their final losses did (a Spearman
    correlation whose lower 90% confidence bound is at least ``rank_agreement``,
    `hpo.search.agreement`): on a real ladder inside the warmup, or where a
    short run favours a lower lr, it does not, and the probes run to the end;
    where early ranks do agree, a probe that loses early costs a fraction of
    a trial. Even then a probe is stopped only where it trails the best loss
    at the rung by more than ``probe_margin``: the agreement is read on the
    better half of a smaller scale's trials, and near the optimum of a larger
    scale a rung ranks close losses less well still (on the committed `gpt` ladder,
    Spearman between the D/3 and final losses of the best third of each grid:
    0.91 at 13k, 0.62 at 336k, 0.42 at 793k, against 0.94-0.97 over each whole
    grid).

* **After a broken law** the next scale searches the full space again where a
  design is affordable (a Latin hypercube of n full-budget trials); else it
  checks the prediction over a band widened by f².

The predicted, design and exploring trials always train to their full budget
(`hpo.search.scheduler.ProtectedASHA`); probes from their plan's `ScalePlan.judge_from` on
are judged like any trial. After the scale, `check_law` calls the law *broken*
when the scale's best complete trial, or its fitted optimum, lies outside the
narrowed range (at a check scale: a probe beyond the band ended best), or when
the lr or batch-size optimum of the trials inside the range presses on an edge
of it (the outer `EDGE_SHARE` of its log width) that is not the study's own edge.

Pure: trial tables in, plans out (no Ray, no MLflow). Units: N parameters,
D tokens, batch size in sequences (examples) per step, ρ a ratio of FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from hpo.analysis import Estimate, find_optimum, fit_scaling, normalize_trials
from hpo.analysis.surface import TRIALS_PER_COEFFICIENT as BOWL_TRIALS_PER_COEFFICIENT
from hpo.search.agreement import CONFIDENCE, judge_from, rung_agreement
from hpo.search.design import latin_hypercube, sample_full_space
from hpo.search.plan import LawCheck, ScalePlan, Setting, full_plan
from hpo.search.strategy import ScaleToPlan, SearchStrategy
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from hpo.vocab import COMPLETE, HYPERPARAMETERS

__all__ = ["BOWL_TRIALS_PER_COEFFICIENT", "DESIGN_TRIALS_PER_COEFFICIENT", "EDGE_SHARE", "ScaleAware",
           "affordable_trials", "check_law",
           "design_size", "full_space_design", "plan_scale"]

EDGE_SHARE = 0.15
"""An in-range optimum in this outer share (log scale) of a narrowed range's edge means the law drifts."""
DESIGN_TRIALS_PER_COEFFICIENT = 2
"""Fewest full-budget trials of a design per coefficient of the full quadratic that `find_optimum` fits in the
searched hyperparameters (1 + d + d(d+1)/2: 10 for lr, batch size and weight decay). Fewer locate no optimum
reliably: the near-best trials of a noisy handful do not make a bowl, and the best trial stands for it."""
_MIN_SCALES = 2
_MIN_BATCH_CHOICES = 5
"""Fewest powers of two a narrowed batch-size range keeps: the loss is flat in batch size (a factor 2 off
costs a fraction of what it costs in lr), and a design locates a flat optimum only over a wide band."""
MAX_DESIGN_COST = 1000
"""Largest ``design_cost``: a design of a thousand largest-scale trials is no longer a saving."""
_LOG_TOLERANCE = 1e-9
_MIN_EDGE_TRIALS = 3
_BOOTSTRAP = 50
"""Bootstrap replicates behind one measured scale's optimum interval (`_predict`)."""


@dataclass(frozen=True)
class ScaleAware(SearchStrategy):
    """``scale_aware`` search (module docstring); its fields are the settings under ``search:``,
    each defaulting to what a study that leaves it out gets.

    The predicted interval of each optimum is widened by `safety_factor` on
    each side (a factor, in log space). The first two scales, searched before
    any law exists, run a Latin hypercube of ``first_scales_factor`` times
    their trials (at least the 30 a bowl in three hyperparameters needs), each
    to its full budget (an ordinary search when it is 1): they are the
    cheapest scales, and the laws' exponents rest on them. A later scale runs
    as many full-budget trials around the prediction (`explore_share` of them
    over the full space), a *design*, where that trains at most `design_cost`
    times the FLOPs of one trial at the ladder's largest scale and suffices to
    locate an optimum; elsewhere it *checks* the law with ``max(min_trials,
    ceil(trials_share · T))`` trials (or as many as `design_cost` affords), the
    prediction and probes across its lr band, which early stopping judges no
    earlier than where the smaller scales' rungs ranked trials as their ends did
    with a Spearman correlation of at least `rank_agreement` (0.8: on a Gaussian
    rank model, the trial that ends best then survives a cut to the top third at
    that rung in more than 9 of 10 cases with 10 to 25 trials), as far as the
    trials read can tell (its lower 90% confidence bound). With ×4 scales
    and D ∝ N a trial costs 1/16 of one a scale up. A probe is stopped only where it
    trails the best loss at a rung by more than `probe_margin` (0.01: about two standard
    deviations of one run's seed noise on small real ladders, 0.4-0.8% of the loss on the
    committed `gpt` ladder; 0: wherever ASHA's cut falls)."""

    name = "scale_aware"
    plans_from_smaller_scales = True

    safety_factor: float = 2.0
    trials_share: float = 0.4
    explore_share: float = 0.25
    min_trials: int = 4
    first_scales_factor: float = 3.0
    design_cost: float = 1.5
    rank_agreement: float = 0.8
    probe_margin: float = 0.01

    def plan(self, scale: ScaleToPlan) -> ScalePlan:
        return plan_scale(scale.history, scale=scale.scale, params=scale.params, tokens=scale.tokens,
                          space=scale.space, trials=scale.trials, settings=self, seed=scale.seed,
                          law_broken=scale.previous_law_broken, cost_ratio=scale.cost_ratio,
                          curves=scale.curves)

    def check(self, plan: ScalePlan, trials: pd.DataFrame, *, seed: int) -> LawCheck:
        return check_law(plan, trials, seed=seed)

    def preview(self, scale: ScaleToPlan, smaller: int) -> tuple[str, int]:
        """The first two scales' design (or search), then, where the laws hold, a design around the
        prediction or a check of it, as `plan_scale` decides them by cost."""
        n = affordable_trials(scale.trials, self, scale.cost_ratio, scale.space)
        n_design = design_size(scale.space, scale.trials, self, scale.cost_ratio)
        if _full_space_design_first(smaller, n, scale.trials, self, n_design):
            return "design", n
        if smaller == 0 or (smaller < _MIN_SCALES and self.first_scales_factor <= 1):
            return "search", scale.trials
        if smaller >= _MIN_SCALES and n_design:
            return "prediction + design", 1 + n_design
        return "check: prediction + probes", max(n, check_trials(scale.trials, self))

    def problems(self) -> list[tuple[str, str, str]]:
        found = []
        if not 1 <= self.safety_factor <= 100:
            found.append(("safety_factor", f"must be in [1, 100] (got {self.safety_factor:g})", "use e.g. 2"))
        for name in ("trials_share", "explore_share"):
            share = getattr(self, name)
            if not 0 < share <= 1:
                found.append((name, f"must be in (0, 1] (got {share:g})", "use a share such as 0.25"))
        if self.min_trials < 2:
            found.append(("min_trials", f"must be >= 2 (got {self.min_trials})", "use e.g. 4"))
        if not 1 <= self.first_scales_factor <= 100:
            found.append(("first_scales_factor", f"must be in [1, 100] (got {self.first_scales_factor:g})",
                          "use 1, or e.g. 3"))
        if not 0 < self.rank_agreement <= 1:
            found.append(("rank_agreement", f"must be in (0, 1] (got {self.rank_agreement:g})",
                          "use e.g. 0.9 (1: probes never stopped early where curves are known)"))
        if not 0 <= self.probe_margin < 1:
            found.append(("probe_margin", f"must be in [0, 1) (got {self.probe_margin:g})",
                          "use e.g. 0.01 (a share of the loss; 0: ASHA's cut alone)"))
        if not 0 <= self.design_cost <= MAX_DESIGN_COST:
            found.append(("design_cost", f"must be in [0, {MAX_DESIGN_COST}] (got {self.design_cost:g})",
                          "use e.g. 1.5 (trials of the largest scale), or 0 for no design after the "
                          "first two scales"))
        return found


def affordable_trials(trials: int, settings: ScaleAware, cost_ratio: float,
                      space: SearchSpace | None = None) -> int:
    """Full-budget trials a scale whose trial costs `cost_ratio` (ρ) of one at the ladder's largest
    scale may run as a design: ``min(max(ceil(first_scales_factor · T), bowl), floor(design_cost / ρ))``,
    so that they train at most `design_cost` largest-scale trials' worth of FLOPs; `bowl`, when `space` is
    given, is the fewest complete trials `hpo.analysis` fits a bowl to in its searched hyperparameters
    (`BOWL_TRIALS_PER_COEFFICIENT` per coefficient of the full quadratic: 30 for lr, batch size and
    weight decay): where trials are cheap a design has at least those, or its optimum is its best trial."""
    wanted = max(math.ceil(settings.first_scales_factor * trials),
                 0 if space is None else BOWL_TRIALS_PER_COEFFICIENT * _coefficients(space))
    if cost_ratio <= 0:
        return wanted
    return min(wanted, math.floor(settings.design_cost / cost_ratio + _LOG_TOLERANCE))


def _full_space_design_first(measured: int, affordable: int, trials: int, settings: ScaleAware,
                             n_design: int) -> bool:
    """Whether a scale with `measured` smaller scales, before any law, runs a full-space design of its
    `affordable` trials: the first scale when they are at least its T, the second also when they make a
    design (`n_design` > 0); else the first is an ordinary search and the second checks the first's
    optimum. With `first_scales_factor` 1 both are ordinary searches."""
    if measured >= _MIN_SCALES or settings.first_scales_factor <= 1:
        return False
    return affordable >= trials or (measured > 0 and n_design > 0)


def check_trials(trials: int, settings: ScaleAware) -> int:
    """Trials of a check where few are affordable: ``min(T, max(min_trials, ceil(trials_share · T)))``."""
    return min(trials, max(settings.min_trials, math.ceil(settings.trials_share * trials)))


def design_size(space: SearchSpace, trials: int, settings: ScaleAware, cost_ratio: float) -> int:
    """Full-budget trials of a design around a prediction (`affordable_trials`); 0 when they are
    fewer than `DESIGN_TRIALS_PER_COEFFICIENT` per coefficient of the quadratic in `space`'s
    searched hyperparameters (the scale then only checks the law)."""
    n = affordable_trials(trials, settings, cost_ratio, space)
    return n if n >= DESIGN_TRIALS_PER_COEFFICIENT * _coefficients(space) else 0


def _coefficients(space: SearchSpace) -> int:
    """Coefficients of the full quadratic in `space`'s searched hyperparameters."""
    searched = sum(isinstance(getattr(space, name), LogRange | PowerOfTwoRange) for name in HYPERPARAMETERS)
    return 1 + searched + searched * (searched + 1) // 2


def full_space_design(scale: str, space: SearchSpace, trials: int, n_trials: int, why: str,
                      rng: np.random.Generator) -> ScalePlan:
    """A full search of `scale` as `n_trials` settings (the `affordable_trials`, at least its
    `trials` per scale) of a Latin hypercube over the full space (`latin_hypercube`), each trained
    to its full budget; `why` (no law yet, a broken law) opens its reason.

    Early stopping keeps the trials that look best early, whose lr is higher
    and batch smaller than the full run's optimum; a scale's optimum fitted from
    its survivors (`hpo.analysis.find_optimum`) inherits that bias, and so do the
    laws' exponents that every later scale is planned from. The first scales
    are the ladder's cheapest (a trial's cost grows as N·D, ×16 per ×4 in N at
    fixed tokens per parameter), so an unbiased, space-filling design there
    costs little of a study's compute; where they are not cheap (ρ near 1), the
    design is capped by ``design_cost`` and, below `trials`, `plan_scale` searches
    the scale as an ordinary search instead.
    """
    return ScalePlan(scale=scale, transferred=False, space=space, full_space=space, trials=n_trials,
                     reason=f"{why}: full space, {n_trials} trials (for {trials} per scale) of a Latin "
                            "hypercube, each to its full budget",
                     design=tuple(latin_hypercube(space, n_trials, rng)))


def plan_scale(history: pd.DataFrame, *, scale: str, params: float, tokens: float, space: SearchSpace,
               trials: int, settings: ScaleAware, seed: int, law_broken: bool = False,
               cost_ratio: float = 1.0, curves: pd.DataFrame | None = None) -> ScalePlan:
    """The plan of `scale` (N = `params`, D = `tokens`) from the variant's earlier scales.

    `history` holds the trial rows (trial-table columns) of the variant's
    smaller scales; `space` and `trials` are the study's full search space
    and trials per scale T; `law_broken` says the previous scale broke the
    law; `cost_ratio` is ρ, the FLOPs of one full-budget trial of this scale
    over one of the ladder's largest scale (1 there, 1/16 one ×4 step below
    it at fixed tokens per parameter): it decides between a design and a check
    (module docstring); `curves` are the evaluations of the `history` trials, from which a check learns
    where its probes may first be judged (`hpo.search.agreement`).
    """
    complete = history[history["status"] == COMPLETE] if not history.empty else history
    measured = complete["params"].nunique() if not complete.empty else 0
    rng = np.random.default_rng((seed, measured))
    affordable = affordable_trials(trials, settings, cost_ratio, space)
    if law_broken and design_size(space, trials, settings, cost_ratio):
        n_design = design_size(space, trials, settings, cost_ratio)
        return full_space_design(scale, space, trials, n_design, "the law broke at the previous scale", rng)
    if _full_space_design_first(measured, affordable, trials, settings,
                                design_size(space, trials, settings, cost_ratio)):
        return full_space_design(scale, space, trials, affordable, "no law yet", rng)
    if measured == 0 or (measured < _MIN_SCALES and settings.first_scales_factor <= 1):
        return full_plan(scale, space, trials, f"{measured} smaller scale(s) measured: full space")
    predicted, held, source = _predict(history, params, tokens, space, seed)
    factor = settings.safety_factor ** (2 if law_broken else 1)
    if law_broken:
        source = f"the law broke at the previous scale, its band widened x{factor:g}; {source}"
    narrowed = _narrow(space, predicted, factor)
    first = _inside(narrowed, {name: predicted[name].value if name in predicted
                               else _held(getattr(space, name), held, name)
                               for name in HYPERPARAMETERS})
    shown = ", ".join(f"{name} {e.value:.3g} [{e.low:.3g}, {e.high:.3g}]" for name, e in predicted.items())
    shown = f"{source}: {shown}"
    plan = ScalePlan(scale=scale, transferred=True, space=narrowed, full_space=space, trials=1, reason="",
                     first=first, predicted=predicted)
    n_design = design_size(narrowed, trials, settings, cost_ratio)
    if n_design:
        n_explore = math.ceil(settings.explore_share * n_design)
        return replace(
            plan, trials=1 + n_design,
            reason=f"{shown}; the prediction and {n_design} trials, {n_explore} over the full "
                   "space, the rest a Latin hypercube of the narrowed one, each to its full budget",
            design=tuple(latin_hypercube(narrowed, n_design - n_explore, rng)),
            explore=tuple(sample_full_space(space, rng) for _ in range(n_explore)),
        )
    n_trials = max(affordable, check_trials(trials, settings))
    measured_on, agreement = rung_agreement(history, curves)
    start = judge_from(agreement, settings.rank_agreement)
    judged = ("judged early" if start is None else "never stopped early" if start >= 1
              else f"judged from {start:.3g} of the budget")
    if start is not None:
        judged += (f" (rank agreement at {measured_on}, {CONFIDENCE:.0%} lower bound: "
                   f"{_shown_agreement(agreement, start)})")
    if (start is None or start < 1) and settings.probe_margin > 0:
        judged += f", and stopped only more than {100 * settings.probe_margin:.3g}% behind a rung's best"
    return replace(
        plan, trials=n_trials, judge_from=start, probe_margin=settings.probe_margin,
        reason=f"{shown}; a check ({cost_ratio:.3g} of the largest scale's trial cost): the "
               f"prediction to its full budget and {n_trials - 1} probes across its lr band and beyond, "
               + judged,
        probes=_probes(space, narrowed, first, factor, n_trials - 1),
    )


def _shown_agreement(agreement: dict[float, float], start: float) -> str:
    """The rank agreement in a few words: its least value from `start` on, and the last share before it
    that fell short (every share of the budget the curves were evaluated at may be measured)."""
    before = [share for share in agreement if share < start]
    after = [rho for share, rho in agreement.items() if share >= start]
    words = [f"at least {min(after):.2f} from {start:.3g} of the budget on"] if after else []
    if before:
        last = max(before)
        words.append(f"{agreement[last]:.2f} at {last:.3g}")
    return ", ".join(words)


def _predict(history: pd.DataFrame, params: float, tokens: float, space: SearchSpace, seed: int
             ) -> tuple[dict[str, Estimate], dict[str, float], str]:
    """What the smaller scales predict at (N = `params`, D = `tokens`): each searched hyperparameter's
    estimate with its interval, the values of those the analysis holds without a law, and a few words.

    From two measured scales on, the laws of `hpo.analysis.fit_scaling` (its ``auto`` method); from one,
    that scale's optimum (`hpo.analysis.find_optimum`) with its interval: a law of exponent 0, whose
    interval the safety factor widens, for a second scale that cannot afford a full-space design.
    """
    trials = normalize_trials(history)
    if trials.loc[trials["status"] == COMPLETE, "params"].nunique() < _MIN_SCALES:
        optimum = find_optimum(trials, n_bootstrap=_BOOTSTRAP, seed=seed)
        predicted = {name: optimum.value(name) for name in optimum.searched if optimum.value(name).value > 0}
        held = {name: optimum.value(name).value for name in HYPERPARAMETERS if name not in predicted}
        return ({name: _finite(e) for name, e in predicted.items()}, held,
                f"the optimum of {optimum.scale}, held (one scale measured)")
    (variant_fit,) = fit_scaling(trials, seed=seed, loss_law=False, shrink=False).variants.values()
    predicted = {name: law.estimate(params, tokens if variant_fit.uses_tokens else None)
                 for name, law in variant_fit.laws.items()}
    for name, value in variant_fit.fixed.items():
        cells = [o.value(name).value for o in variant_fit.optima if o.locates(name)]
        if value > 0 and len(cells) >= _MIN_SCALES:
            predicted[name] = Estimate(value, min(min(cells), value), max(max(cells), value))
    return predicted, dict(variant_fit.fixed), "predicted (held: the cells' range)"


def _finite(estimate: Estimate) -> Estimate:
    """`estimate` with an interval: its value at both ends where it has none."""
    if math.isfinite(estimate.low) and math.isfinite(estimate.high):
        return estimate
    return Estimate(estimate.value, estimate.value, estimate.value, estimate.level)


def check_law(plan: ScalePlan, rows: pd.DataFrame, *, seed: int = 0) -> LawCheck:
    """Did the optimum of this scale's trials (`rows`) fall inside the plan's narrowed space?"""
    if not plan.transferred:
        return LawCheck(False, "full search: nothing to check")
    complete = rows[rows["status"] == COMPLETE]
    if complete.empty:
        return LawCheck(True, "no complete trial in the narrowed space: widen again")
    best = complete.sort_values("loss").iloc[0]
    outside = [f"best trial's {name} {best[name]:.3g}" for name in plan.predicted
               if not _contains(plan.space, name, float(best[name]))]
    optimum = find_optimum(normalize_trials(rows), n_bootstrap=0, seed=seed)
    if optimum.surface_fitted:
        outside += [f"fitted optimum's {name} {optimum.value(name).value:.3g}" for name in plan.predicted
                    if name in optimum.searched
                    and not _contains(plan.space, name, optimum.value(name).value)]
    if outside:
        return LawCheck(True, f"law broken: {', '.join(outside)} outside the narrowed space")
    pressing = _pressing_on_an_edge(plan, complete, seed)
    if pressing:
        return LawCheck(True, f"law drifting: {', '.join(pressing)}")
    return LawCheck(False, "optimum inside the narrowed space")


def _pressing_on_an_edge(plan: ScalePlan, complete: pd.DataFrame, seed: int) -> list[str]:
    """lr and batch size, when narrowed and their in-range optimum lies in the
    outer `EDGE_SHARE` of a range edge that the study's full range extends
    beyond. Not weight decay: the loss is too flat in it for a handful of
    trials to place its optimum within a range."""
    inside = complete[[all(_contains(plan.space, name, float(row[name])) for name in plan.predicted)
                       for _, row in complete.iterrows()]]
    if len(inside) < _MIN_EDGE_TRIALS:
        return []
    optimum = find_optimum(normalize_trials(inside), n_bootstrap=0, seed=seed)
    pressing = []
    for name in ("lr", "batch_size"):
        if name not in plan.predicted:
            continue
        band, full = getattr(plan.space, name), getattr(plan.full_space, name)
        if name not in optimum.searched or not isinstance(band, LogRange | PowerOfTwoRange):
            continue
        value = optimum.value(name).value
        position = (math.log(value) - math.log(band.low)) / (math.log(band.high) - math.log(band.low))
        if position > 1 - EDGE_SHARE and band.high < full.high:
            pressing.append(f"{name} optimum {value:.3g} at the top of [{band.low:.3g}, {band.high:.3g}]")
        elif position < EDGE_SHARE and band.low > full.low:
            pressing.append(f"{name} optimum {value:.3g} at the bottom of [{band.low:.3g}, {band.high:.3g}]")
    return pressing


def _narrow(space: SearchSpace, predicted: Mapping[str, Estimate], factor: float) -> SearchSpace:
    narrowed = space
    if "lr" in predicted and isinstance(space.lr, LogRange):
        narrowed = replace(narrowed, lr=_narrow_log(space.lr, predicted["lr"], factor))
    if "batch_size" in predicted and isinstance(space.batch_size, PowerOfTwoRange):
        batch_size = _narrow_batch(space.batch_size, predicted["batch_size"], factor)
        narrowed = replace(narrowed, batch_size=batch_size)
    if "weight_decay" in predicted and isinstance(space.weight_decay, WeightDecayRange):
        log_range = _narrow_log(space.weight_decay, predicted["weight_decay"], factor)
        narrowed = replace(narrowed, weight_decay=WeightDecayRange(log_range.low, log_range.high,
                                                                   space.weight_decay.zero))
    return narrowed


def _narrow_log(full: LogRange, estimate: Estimate, factor: float) -> LogRange:
    """``[low / f, high · f]`` inside `full`; a prediction wholly beyond `full`
    keeps the f²-wide band at the edge it passed."""
    low, high = max(full.low, estimate.low / factor), min(full.high, estimate.high * factor)
    if low < high:
        return LogRange(low, high)
    if estimate.low / factor >= full.high:
        return LogRange(max(full.low, full.high / factor**2), full.high)
    return LogRange(full.low, min(full.high, full.low * factor**2))


def _narrow_batch(full: PowerOfTwoRange, estimate: Estimate, factor: float) -> PowerOfTwoRange:
    choices = full.choices
    if len(choices) <= _MIN_BATCH_CHOICES:
        return full
    logs = np.log2(choices)
    low, high = math.log2(estimate.low / factor), math.log2(estimate.high * factor)
    kept = [k for k, value in enumerate(logs) if low - 0.5 <= value <= high + 0.5]
    centre = int(np.argmin(np.abs(logs - math.log2(estimate.value))))
    if not kept:
        kept = [centre]
    while len(kept) < _MIN_BATCH_CHOICES:
        below, above = kept[0] - 1, kept[-1] + 1
        if above < len(choices) and (below < 0 or centre - below >= above - centre):
            kept.append(above)
        else:
            kept.insert(0, below)
    return PowerOfTwoRange(choices[kept[0]], choices[kept[-1]])


def _inside(space: SearchSpace, setting: Setting) -> Setting:
    """`setting` moved into `space`: clipped, batch size to the nearest power of two there."""
    lr, wd = setting["lr"], setting["weight_decay"]
    if isinstance(space.lr, LogRange):
        lr = min(max(lr, space.lr.low), space.lr.high)
    batch = setting["batch_size"]
    if isinstance(space.batch_size, PowerOfTwoRange):
        batch = space.batch_size.nearest(batch)
    if isinstance(space.weight_decay, WeightDecayRange) and not (wd == 0 and space.weight_decay.zero):
        wd = min(max(wd, space.weight_decay.low), space.weight_decay.high)
    return {"lr": float(lr), "batch_size": int(batch), "weight_decay": float(wd)}


def _held(value: LogRange | PowerOfTwoRange | float, fixed: Mapping[str, float], name: str) -> float:
    """A fixed setting as it is; a searched one without a law: the value the analysis holds it at
    (`hpo.analysis.VariantFit.fixed`, the cells' optima weighted by how well each is located)."""
    if not isinstance(value, LogRange | PowerOfTwoRange):
        return float(value)
    return float(fixed[name])


def _probes(space: SearchSpace, narrowed: SearchSpace, first: Setting, factor: float, count: int
            ) -> tuple[Setting, ...]:
    """`count` probes: the prediction `first` at the lrs that, with its own, cut the lr range ``[band low /
    f, band high · f]`` (f the `factor`, within `space`) into ``count + 1`` strata of equal log width, one
    at each stratum's centre, the prediction standing for the stratum nearest to it.

    Probes span the predicted interval, so that the check measures the law (the complete trials locate
    the lr optimum here) instead of repeating its point; the outer ones, beyond the band, show a law
    that broke (a probe there that ends best). A probe differs from the prediction in lr alone: a short run
    favours a smaller batch and a higher lr than the full run (by far the more in batch size, which moves
    the loss little), while weight decay matters late, so early stopping could not judge the others, and
    with one value of each the cell counts only in the lr law.
    """
    if not isinstance(space.lr, LogRange) or not isinstance(narrowed.lr, LogRange) or count < 1:
        return tuple(dict(first) for _ in range(count))
    low = max(math.log(space.lr.low), math.log(narrowed.lr.low / factor))
    high = min(math.log(space.lr.high), math.log(narrowed.lr.high * factor))
    centres = [low + (high - low) * (k + 0.5) / (count + 1) for k in range(count + 1)]
    own = int(np.argmin([abs(c - math.log(first["lr"])) for c in centres]))
    return tuple({**first, "lr": math.exp(c)} for k, c in enumerate(centres) if k != own)


def _contains(space: SearchSpace, name: str, value: float) -> bool:
    bounds = getattr(space, name)
    if isinstance(bounds, WeightDecayRange) and value == 0:
        return bounds.zero
    if isinstance(bounds, LogRange | PowerOfTwoRange):
        low, high = math.log(bounds.low), math.log(bounds.high)
        return value > 0 and low - _LOG_TOLERANCE <= math.log(value) <= high + _LOG_TOLERANCE
    return True
