"""Scale-aware search: what the smaller scales learned narrows the search at the next one.

A trial's cost grows with its scale (6·N·D FLOPs: ×16 per ×4 in N at fixed
tokens per parameter), so a study's compute is that of its largest scales,
while the laws' precision comes from optima located anywhere on the ladder.
Each scale is therefore searched by what one of its trials costs, its
`cost_ratio` ρ: the compute of one full-budget trial there over one at the
ladder's largest scale.

* **The first two scales** (no law yet) run a Latin hypercube of
  ``ceil(first_scales_factor · T)`` settings over the full space, every trial
  to its full budget (`full_space_design`), at most what ``design_cost``
  largest-scale trials cost (`affordable_trials`); where that buys fewer
  than T trials, or with ``first_scales_factor`` 1, an ordinary search of T
  trials.
* **A later scale** gets a prediction: `plan_scale` fits the optimum laws
  h*(N) = a·N^b (`hpo.analysis.fit_scaling`; h*(N, D) = a·N^b·D^c when the
  ladder varies D apart from N) and predicts each searched hyperparameter
  with its bootstrap interval ``[low, high]``. The space is narrowed: lr (and
  weight decay, when it follows a law) to ``[low / f, high · f]``, batch size
  to the powers of two covering it (at least five), f the safety factor,
  never beyond the study's own range. The predicted optimum runs first, to
  its full budget. Then, by cost:

  - a **design scale**, where ``n = min(ceil(first_scales_factor · T),
    floor(design_cost / ρ))`` full-budget trials are enough to locate the
    optimum (`design_size`: at least `DESIGN_TRIALS_PER_COEFFICIENT` per
    coefficient of the quadratic `hpo.analysis.find_optimum` fits): a Latin
    hypercube of the narrowed space, ``ceil(explore_share · n)`` of the n
    drawn from the full space instead, every trial to its full budget, so
    the scale's optimum is located without early stopping's bias;
  - a **check scale**, where it is not (the expensive end of the ladder):
    ``max(min_trials, ceil(trials_share · T))`` trials, the predicted one and
    *probes*, the prediction with its lr drawn from outside the band, which
    early stopping judges like any trial (`_probe`). The scale checks the lr
    law at the cost of about one full trial; it locates no optimum of its
    own, and its one complete trial repeats the prediction: a handful of
    complete trials there would locate none either (their best trial
    standing for it) and would move the laws more than they know.

* **After a broken law** the next scale searches the full space again: a
  Latin hypercube of n full-budget trials where a design is affordable,
  else an ordinary search of all T trials.

The predicted, design and exploring trials always train to their full budget
(`hpo.search.scheduler.ProtectedASHA`); probes do not. After the scale, `check_law`
calls the law *broken* when the scale's best complete trial, or its fitted
optimum, lies outside the narrowed range (at a check scale: a probe outran the
prediction at every rung and beat it), or when the lr or batch-size
optimum of the trials inside the range presses on an edge of it (the outer
`EDGE_SHARE` of its log width) that is not the study's own edge.

Pure: trial tables in, plans out (no Ray, no MLflow). Units: N parameters,
D tokens, batch size in sequences (examples) per step, ρ a ratio of FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from hpo.analysis import Estimate, find_optimum, fit_scaling, normalize_trials
from hpo.search.sampling import DESIGN, EXPLORE, PREDICTED, PROBE
from hpo.study.spec import LogRange, PowerOfTwoRange, SearchSpace, Transfer, WeightDecayRange

__all__ = ["DESIGN_TRIALS_PER_COEFFICIENT", "EDGE_SHARE", "LawCheck", "ScalePlan", "affordable_trials",
           "check_law", "design_size", "full_plan", "full_space_design", "latin_hypercube", "plan_scale",
           "sample_full_space"]

Setting = dict[str, float]
"""A trial's lr, batch_size (a power of two) and weight_decay."""

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
_LOG_TOLERANCE = 1e-9
_MIN_EDGE_TRIALS = 3


@dataclass(frozen=True)
class ScalePlan:
    """How one (variant, scale) is searched.

    `transferred` is False for a full search (the first scales, ``independent``
    mode, or after a broken law). `space` is what the sampler searches,
    `full_space` the study's own; `trials` how many trials the scale runs;
    `first` the predicted optimum, run first; `design` settings of `space` and
    `explore` settings of the full space, each trained to its full budget;
    `probes` the prediction at other learning rates, which early stopping
    judges like any trial; `predicted` the law's prediction per
    hyperparameter; `reason` one line for logs and `hpo status`. Trials beyond
    those listed (``trials`` minus them) are the sampler's, in `space`.
    """

    scale: str
    transferred: bool
    space: SearchSpace
    full_space: SearchSpace
    trials: int
    reason: str
    first: Setting | None = None
    explore: tuple[Setting, ...] = ()
    predicted: Mapping[str, Estimate] = field(default_factory=dict)
    design: tuple[Setting, ...] = ()
    probes: tuple[Setting, ...] = ()

    def enqueued(self) -> list[tuple[str, Setting, SearchSpace]]:
        """The trials the plan lists, in the order they run: (``origin``, setting, the space whose
        sampler parameters give it), the prediction first; the sampler's own trials follow them."""
        first = [] if self.first is None else [(PREDICTED, self.first, self.space)]
        listed = ((DESIGN, self.design, self.space), (EXPLORE, self.explore, self.full_space),
                  (PROBE, self.probes, self.full_space))
        return first + [(origin, setting, within)
                        for origin, settings, within in listed for setting in settings]

    def to_dict(self) -> dict[str, object]:
        """Plain data (JSON-ready) that `from_dict` reads back: a resumed scale keeps its plan."""
        return {
            "scale": self.scale, "transferred": self.transferred, "space": _space_to_dict(self.space),
            "full_space": _space_to_dict(self.full_space), "trials": self.trials, "reason": self.reason,
            "first": self.first, "explore": list(self.explore), "design": list(self.design),
            "probes": list(self.probes),
            "predicted": {name: [e.value, e.low, e.high, e.level] for name, e in self.predicted.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ScalePlan:
        """The plan `to_dict` wrote; a plan stored before designs and probes existed has none."""
        predicted = {name: Estimate(*values) for name, values in dict(data["predicted"]).items()}
        return cls(scale=str(data["scale"]), transferred=bool(data["transferred"]),
                   space=_space_from_dict(data["space"]), full_space=_space_from_dict(data["full_space"]),
                   trials=int(data["trials"]),
                   reason=str(data["reason"]), first=data["first"], explore=tuple(data["explore"]),
                   predicted=predicted, design=tuple(data.get("design", ())),
                   probes=tuple(data.get("probes", ())))


@dataclass(frozen=True)
class LawCheck:
    """Whether the scale's optimum fell where the law said (`broken` False) and why."""

    broken: bool
    reason: str


def full_plan(scale: str, space: SearchSpace, trials: int, reason: str) -> ScalePlan:
    """Search the whole `space` with all `trials`."""
    return ScalePlan(scale=scale, transferred=False, space=space, full_space=space, trials=trials,
                     reason=reason)


def affordable_trials(trials: int, transfer: Transfer, cost_ratio: float) -> int:
    """Full-budget trials a scale whose trial costs `cost_ratio` (ρ) of one at the ladder's largest
    scale may run as a design: ``min(ceil(first_scales_factor · T), floor(design_cost / ρ))``, so
    that they train at most `design_cost` largest-scale trials' worth of FLOPs."""
    wanted = math.ceil(transfer.first_scales_factor * trials)
    if cost_ratio <= 0:
        return wanted
    return min(wanted, math.floor(transfer.design_cost / cost_ratio + _LOG_TOLERANCE))


def design_size(space: SearchSpace, trials: int, transfer: Transfer, cost_ratio: float) -> int:
    """Full-budget trials of a design around a prediction (`affordable_trials`); 0 when they are
    fewer than `DESIGN_TRIALS_PER_COEFFICIENT` per coefficient of the quadratic in `space`'s
    searched hyperparameters (the scale then only checks the law)."""
    n = affordable_trials(trials, transfer, cost_ratio)
    searched = sum(isinstance(getattr(space, name), LogRange | PowerOfTwoRange)
                   for name in ("lr", "batch_size", "weight_decay"))
    coefficients = 1 + searched + searched * (searched + 1) // 2
    return n if n >= DESIGN_TRIALS_PER_COEFFICIENT * coefficients else 0


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
               trials: int, transfer: Transfer, seed: int, law_broken: bool = False,
               cost_ratio: float = 1.0) -> ScalePlan:
    """The plan of `scale` (N = `params`, D = `tokens`) from the variant's earlier scales.

    `history` holds the trial rows (trial-table columns) of the variant's
    smaller scales; `space` and `trials` are the study's full search space
    and trials per scale T; `law_broken` says the previous scale broke the
    law; `cost_ratio` is ρ, the FLOPs of one full-budget trial of this scale
    over one of the ladder's largest scale (1 there, 1/16 one ×4 step below
    it at fixed tokens per parameter): it decides between a design and a check
    (module docstring).
    """
    complete = history[history["status"] == "complete"] if not history.empty else history
    measured = complete["params"].nunique() if not complete.empty else 0
    rng = np.random.default_rng((seed, measured))
    if law_broken:
        n_design = design_size(space, trials, transfer, cost_ratio)
        if not n_design:
            return full_plan(scale, space, trials, "the law broke at the previous scale: full space")
        return full_space_design(scale, space, trials, n_design, "the law broke at the previous scale", rng)
    if measured < _MIN_SCALES:
        n_design = affordable_trials(trials, transfer, cost_ratio)
        if transfer.first_scales_factor > 1 and n_design >= trials:
            return full_space_design(scale, space, trials, n_design, "no law yet", rng)
        return full_plan(scale, space, trials, f"{measured} smaller scale(s) measured: full space")
    fit = fit_scaling(normalize_trials(history), seed=seed, loss_law=False).variants
    (variant_fit,) = fit.values()
    predicted: dict[str, Estimate] = {}
    for name, law in variant_fit.laws.items():
        predicted[name] = law.estimate(params, tokens if variant_fit.uses_tokens else None)
    narrowed = _narrow(space, predicted, transfer.safety_factor)
    if narrowed == space:
        return full_plan(scale, space, trials, "no searched hyperparameter follows a law yet: full space")
    first = _inside(narrowed, {name: predicted[name].value if name in predicted
                               else _held(getattr(space, name), variant_fit.fixed, name)
                               for name in ("lr", "batch_size", "weight_decay")})
    shown = ", ".join(f"{name} {e.value:.3g} [{e.low:.3g}, {e.high:.3g}]" for name, e in predicted.items())
    plan = ScalePlan(scale=scale, transferred=True, space=narrowed, full_space=space, trials=1, reason="",
                     first=first, predicted=predicted)
    n_design = design_size(narrowed, trials, transfer, cost_ratio)
    if n_design:
        n_explore = math.ceil(transfer.explore_share * n_design)
        return replace(
            plan, trials=1 + n_design,
            reason=f"predicted {shown}; the prediction and {n_design} trials, {n_explore} over the full "
                   "space, the rest a Latin hypercube of the narrowed one, each to its full budget",
            design=tuple(latin_hypercube(narrowed, n_design - n_explore, rng)),
            explore=tuple(sample_full_space(space, rng) for _ in range(n_explore)),
        )
    n_trials = min(trials, max(transfer.min_trials, math.ceil(transfer.trials_share * trials)))
    return replace(
        plan, trials=n_trials,
        reason=f"predicted {shown}; a check ({cost_ratio:.3g} of the largest scale's trial cost): the "
               f"prediction to its full budget and {n_trials - 1} probes at an lr outside its band, "
               "judged early",
        probes=tuple(_probe(space, narrowed, first, rng) for _ in range(n_trials - 1)),
    )


def check_law(plan: ScalePlan, rows: pd.DataFrame, *, seed: int = 0) -> LawCheck:
    """Did the optimum of this scale's trials (`rows`) fall inside the plan's narrowed space?"""
    if not plan.transferred:
        return LawCheck(False, "full search: nothing to check")
    complete = rows[rows["status"] == "complete"]
    if complete.empty:
        return LawCheck(True, "no complete trial in the narrowed space: widen again")
    best = complete.loc[complete["loss"].idxmin()]
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


def latin_hypercube(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Setting]:
    """`n` settings of a Latin hypercube over `space`: each searched hyperparameter's
    range (log scale; batch size over its powers of two) cut into `n` equal strata,
    one setting in each, strata paired at random. With exact-zero weight decay
    allowed, the lower half of its strata is wd = 0 (as `sample_full_space` draws it half the time)."""
    unit = np.column_stack([(rng.permutation(n) + rng.uniform(size=n)) / n for _ in range(3)])
    settings = []
    for u_lr, u_batch, u_wd in unit:
        lr, batch_size, wd = space.lr, space.batch_size, space.weight_decay
        if isinstance(lr, LogRange):
            lr = math.exp(math.log(lr.low) + u_lr * (math.log(lr.high) - math.log(lr.low)))
        if isinstance(batch_size, PowerOfTwoRange):
            batch_size = batch_size.choices[min(int(u_batch * len(batch_size.choices)),
                                                len(batch_size.choices) - 1)]
        if isinstance(wd, WeightDecayRange):
            u_wd = 2 * u_wd - 1 if wd.zero else u_wd
            log_wd = math.log(wd.low) + u_wd * (math.log(wd.high) - math.log(wd.low))
            wd = 0.0 if u_wd < 0 else math.exp(log_wd)
        settings.append({"lr": float(lr), "batch_size": int(batch_size), "weight_decay": float(wd)})
    return settings


def sample_full_space(space: SearchSpace, rng: np.random.Generator) -> Setting:
    """A setting drawn uniformly (log scale; batch size over its powers of two) from `space`."""
    lr = space.lr if not isinstance(space.lr, LogRange) else math.exp(
        rng.uniform(math.log(space.lr.low), math.log(space.lr.high)))
    batch_size = space.batch_size if not isinstance(space.batch_size, PowerOfTwoRange) else int(
        rng.choice(space.batch_size.choices))
    wd = space.weight_decay
    if isinstance(wd, WeightDecayRange):
        log_wd = rng.uniform(math.log(wd.low), math.log(wd.high))
        wd = 0.0 if wd.zero and rng.random() < 0.5 else math.exp(log_wd)
    return {"lr": float(lr), "batch_size": int(batch_size), "weight_decay": float(wd)}


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
        choices = np.array(space.batch_size.choices)
        batch = int(choices[np.argmin(np.abs(np.log2(choices) - math.log2(batch)))])
    if isinstance(space.weight_decay, WeightDecayRange) and not (wd == 0 and space.weight_decay.zero):
        wd = min(max(wd, space.weight_decay.low), space.weight_decay.high)
    return {"lr": float(lr), "batch_size": int(batch), "weight_decay": float(wd)}


def _held(value: object, fixed: Mapping[str, float], name: str) -> float:
    """A fixed setting as it is; a searched one without a law: the value the analysis holds it at
    (`hpo.analysis.VariantFit.fixed`, the cells' optima weighted by how well each is located)."""
    if not isinstance(value, LogRange | PowerOfTwoRange):
        return float(value)
    return float(fixed[name])


def _probe(space: SearchSpace, narrowed: SearchSpace, first: Setting, rng: np.random.Generator) -> Setting:
    """The prediction `first` with its lr drawn log-uniformly from `space`'s range outside `narrowed`'s
    band (from all of it when the band covers it).

    Early stopping judges a probe against the prediction: inside the band it tests nothing the
    prediction does not; and a short run favours a smaller batch and a higher lr than the full run
    (by far the more in batch size, which moves the loss little), while weight decay matters late.
    So a probe differs from the prediction in lr alone, by more than the band allows: while the law
    holds it loses at its first rung; when the lr law breaks, the probe near the new optimum wins
    every rung and ends best. Its cell then holds one complete setting, and `hpo.analysis` counts it
    only in the lr law, where the prediction it repeats is the law's own.
    """
    if not isinstance(space.lr, LogRange):
        return dict(first)
    full, band = (math.log(space.lr.low), math.log(space.lr.high)), (math.log(narrowed.lr.low),
                                                                   math.log(narrowed.lr.high))
    below, above = band[0] - full[0], full[1] - band[1]
    if below + above <= _LOG_TOLERANCE:
        log_lr = rng.uniform(*full)
    else:
        u = rng.uniform(0, below + above)
        log_lr = full[0] + u if u < below else band[1] + (u - below)
    return {**first, "lr": math.exp(log_lr)}


def _contains(space: SearchSpace, name: str, value: float) -> bool:
    bounds = getattr(space, name)
    if isinstance(bounds, WeightDecayRange) and value == 0:
        return bounds.zero
    if isinstance(bounds, LogRange | PowerOfTwoRange):
        low, high = math.log(bounds.low), math.log(bounds.high)
        return value > 0 and low - _LOG_TOLERANCE <= math.log(value) <= high + _LOG_TOLERANCE
    return True


def _space_to_dict(space: SearchSpace) -> dict[str, object]:
    def entry(value: object) -> object:
        if isinstance(value, WeightDecayRange):
            return {"low": value.low, "high": value.high, "zero": value.zero}
        if isinstance(value, LogRange | PowerOfTwoRange):
            return {"low": value.low, "high": value.high}
        return value

    return {"lr": entry(space.lr), "batch_size": entry(space.batch_size),
            "weight_decay": entry(space.weight_decay)}


def _space_from_dict(data: object) -> SearchSpace:
    values = dict(data)  # type: ignore[call-overload]
    lr, batch, wd = values["lr"], values["batch_size"], values["weight_decay"]
    return SearchSpace(
        lr=LogRange(lr["low"], lr["high"]) if isinstance(lr, dict) else float(lr),
        batch_size=PowerOfTwoRange(batch["low"], batch["high"]) if isinstance(batch, dict) else int(batch),
        weight_decay=(WeightDecayRange(wd["low"], wd["high"], wd["zero"]) if isinstance(wd, dict)
                      else float(wd)),
    )
