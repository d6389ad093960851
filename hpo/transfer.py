"""Scale-aware search: what the smaller scales learned narrows the search at the next one.

Before a scale, once at least two smaller scales of the variant have optima,
`plan_scale` fits the optimum laws h*(N) = a·N^b (`hpo.analysis.fit_scaling`,
h*(N, D) = a·N^b·D^c when the ladder varies D apart from N) and predicts
each searched hyperparameter at this scale with its bootstrap interval
``[low, high]``. The plan then

* narrows the searched range of lr (and of weight decay, when every earlier
  optimum had wd > 0) to ``[low / f, high · f]`` and of batch size to the
  powers of two covering it (at least three), with f the safety factor, and
  never beyond the study's own range;
* runs ``ceil(trials_share · trials_per_scale)`` trials (at least
  `min_trials`), the first one the predicted optimum;
* samples ``ceil(explore_share · trials)`` of them at random from the full
  space, so that a law that stops holding shows.

The predicted and exploring trials always train to their full budget
(`hpo.scheduler.ProtectedASHA`). After the scale, `check_law` calls the law
*broken* when the scale's best complete trial, or its fitted optimum, lies
outside the narrowed range, or when the lr or batch-size optimum of the
trials inside the range presses on an edge of it (the outer `EDGE_SHARE` of
its log width) that is not the study's own edge: then the next scale searches the full
space with all its trials again.

Pure: trial tables in, plans out (no Ray, no MLflow). Units: N parameters,
D tokens, batch size in sequences (examples) per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from hpo.analysis import Estimate, find_optimum, fit_scaling, normalize_trials
from hpo.spec import LogRange, PowerOfTwoRange, SearchSpace, Transfer, WeightDecayRange

__all__ = ["LawCheck", "ScalePlan", "check_law", "design_full_space", "first_scale_plan", "full_plan",
           "plan_scale", "sample_full_space"]

Setting = dict[str, float]
"""A trial's lr, batch_size (a power of two) and weight_decay."""

EDGE_SHARE = 0.15
"""An in-range optimum in this outer share (log scale) of a narrowed range's edge means the law drifts."""
_MIN_SCALES = 2
_MIN_BATCH_CHOICES = 3
_LOG_TOLERANCE = 1e-9
_MIN_EDGE_TRIALS = 3


@dataclass(frozen=True)
class ScalePlan:
    """How one (variant, scale) is searched.

    `transferred` is False for a full search (the first scales, ``independent``
    mode, or after a broken law). `space` is what the sampler searches,
    `full_space` the study's own;
    `trials` how many trials the scale runs; `first` the predicted optimum,
    run first; `explore` settings drawn from the full space; `predicted` the
    law's prediction per hyperparameter; `reason` one line for logs and `hpo status`.
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

    def to_dict(self) -> dict[str, object]:
        """Plain data (JSON-ready) that `from_dict` reads back: a resumed scale keeps its plan."""
        return {
            "scale": self.scale, "transferred": self.transferred, "space": _space_to_dict(self.space),
            "full_space": _space_to_dict(self.full_space), "trials": self.trials, "reason": self.reason,
            "first": self.first, "explore": list(self.explore),
            "predicted": {name: [e.value, e.low, e.high, e.level] for name, e in self.predicted.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ScalePlan:
        predicted = {name: Estimate(*values) for name, values in dict(data["predicted"]).items()}
        return cls(scale=str(data["scale"]), transferred=bool(data["transferred"]),
                   space=_space_from_dict(data["space"]), full_space=_space_from_dict(data["full_space"]),
                   trials=int(data["trials"]),
                   reason=str(data["reason"]), first=data["first"], explore=tuple(data["explore"]),
                   predicted=predicted)


@dataclass(frozen=True)
class LawCheck:
    """Whether the scale's optimum fell where the law said (`broken` False) and why."""

    broken: bool
    reason: str


def full_plan(scale: str, space: SearchSpace, trials: int, reason: str) -> ScalePlan:
    """Search the whole `space` with all `trials`."""
    return ScalePlan(scale=scale, transferred=False, space=space, full_space=space, trials=trials,
                     reason=reason)


def first_scale_plan(scale: str, space: SearchSpace, trials: int, transfer: Transfer,
                     rng: np.random.Generator) -> ScalePlan:
    """A scale searched before any law exists, when ``first_scales_factor > 1``:
    ``ceil(first_scales_factor · trials)`` settings of a Latin hypercube over the
    full space (`design_full_space`), all of them exploring trials, so that each
    trains to its full budget.

    Early stopping keeps the trials that look best early, whose lr is higher
    and batch smaller than the full run's optimum; a scale's optimum fitted from
    its survivors (`hpo.analysis.find_optimum`) inherits that bias, and so do the
    laws' exponents that every later scale is planned from. These scales are
    the ladder's cheapest (a trial's cost grows as N·D, ×16 per ×4 in N at
    fixed tokens per parameter), so an unbiased, space-filling design there
    costs little of a study's compute.
    """
    n_trials = math.ceil(transfer.first_scales_factor * trials)
    design = design_full_space(space, n_trials, rng)
    return ScalePlan(scale=scale, transferred=False, space=space, full_space=space, trials=n_trials,
                     reason=f"no law yet: full space, {n_trials} trials ({transfer.first_scales_factor:g} x "
                            f"{trials}) of a Latin hypercube, each to its full budget",
                     explore=tuple(design))


def plan_scale(history: pd.DataFrame, *, scale: str, params: float, tokens: float, space: SearchSpace,
               trials: int, transfer: Transfer, seed: int, law_broken: bool = False) -> ScalePlan:
    """The plan of `scale` (N = `params`, D = `tokens`) from the variant's earlier scales.

    `history` holds the trial rows (trial-table columns) of the variant's
    smaller scales; `space` and `trials` are the study's full search space
    and trials per scale; `law_broken` says the previous scale broke the law.
    """
    if law_broken:
        return full_plan(scale, space, trials, "the law broke at the previous scale: full space")
    complete = history[history["status"] == "complete"] if not history.empty else history
    measured = complete["params"].nunique() if not complete.empty else 0
    if measured < _MIN_SCALES and transfer.first_scales_factor > 1:
        return first_scale_plan(scale, space, trials, transfer, np.random.default_rng((seed, measured)))
    if measured < _MIN_SCALES:
        return full_plan(scale, space, trials, f"{measured} smaller scale(s) measured: full space")
    fit = fit_scaling(normalize_trials(history), seed=seed, loss_law=False).variants
    (variant_fit,) = fit.values()
    predicted: dict[str, Estimate] = {}
    for name, law in variant_fit.laws.items():
        predicted[name] = law.estimate(params, tokens if variant_fit.uses_tokens else None)
    narrowed = _narrow(space, predicted, transfer.safety_factor)
    if narrowed == space:
        return full_plan(scale, space, trials, "no searched hyperparameter follows a law yet: full space")
    n_trials = min(trials, max(transfer.min_trials, math.ceil(transfer.trials_share * trials)))
    n_explore = min(n_trials - 1, math.ceil(transfer.explore_share * n_trials))
    rng = np.random.default_rng((seed, measured))
    first = _inside(narrowed, {
        "lr": predicted["lr"].value if "lr" in predicted else _fixed_or_median(space.lr, complete, "lr"),
        "batch_size": predicted["batch_size"].value if "batch_size" in predicted
        else _fixed_or_median(space.batch_size, complete, "batch_size"),
        "weight_decay": predicted["weight_decay"].value if "weight_decay" in predicted
        else _fixed_or_median(space.weight_decay, complete, "weight_decay"),
    })
    shown = ", ".join(f"{name} {e.value:.3g} [{e.low:.3g}, {e.high:.3g}]" for name, e in predicted.items())
    return ScalePlan(
        scale=scale, transferred=True, space=narrowed, full_space=space, trials=n_trials,
        reason=f"predicted {shown}; {n_trials} of {trials} trials, {n_explore} over the full space",
        first=first, explore=tuple(sample_full_space(space, rng) for _ in range(n_explore)),
        predicted=predicted,
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


def design_full_space(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Setting]:
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


def _fixed_or_median(value: object, complete: pd.DataFrame, name: str) -> float:
    """A fixed setting as it is; a searched one without a law: the median of the best trials per scale."""
    if not isinstance(value, LogRange | PowerOfTwoRange):
        return float(value)
    best = complete.loc[complete.groupby("params")["loss"].idxmin()]
    return float(np.median(best[name]))


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
