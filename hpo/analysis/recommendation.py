"""The answer for the single large run: `extrapolate(trials, target_params=...) -> Recommendation`.

Per variant, the hyperparameter laws (`power_law`) and loss law (`loss_law`)
fitted by `scaling_fit` are read at the target (N, D); the variant predicted
to reach the lowest loss is recommended. Each scaled hyperparameter is set
where the expected loss is least given the law's uncertainty and how much
steeper the cells' loss rises above the optimum than below (`asymmetry`):
below the law's median when overshooting costs more; its interval is the
prediction interval of the optimum. A learning rate is never recommended
above half the lowest learning rate predicted to diverge at the target (the
stability edge, fitted across cells from the diverged trials). Warnings say
when to trust the answer less; see docs/analysis.md.

A recommended value outside the range its hyperparameter was searched over
(by default the min..max of the variant's trials, `VariantFit.searched`; or
the study's space, `searched=`) is an extrapolation beyond every trial: it is
kept as it is, warned about and listed in `Setting.out_of_range`.
Only on request (`clip_to=`) is it clipped into given ranges.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from os import PathLike

import numpy as np
import pandas as pd

from hpo.analysis.asymmetry import point_offset
from hpo.analysis.caveats import fit_warnings
from hpo.analysis.crossover import (
    Crossover,
    HyperparameterCrossover,
    find_crossover,
    find_hyperparameter_crossover,
)
from hpo.analysis.estimate import Estimate
from hpo.analysis.near_best import DEFAULT_TOLERANCE
from hpo.analysis.power_law import PowerLaw
from hpo.analysis.scaling_fit import ScalingFit, VariantFit, fit_scaling
from hpo.analysis.trials import normalize_trials, read_trials, require_positive, scale_name
from hpo.vocab import HYPERPARAMETERS, nearest_power_of_two

logger = logging.getLogger(__name__)

_RANGE_TOLERANCE = 1e-9
"""Relative slack of a range check, so that a value on a bound (up to rounding) counts as inside."""
_ONE_SEQUENCE = (1.0, math.inf)
"""A batch holds at least one sequence (or example): a batch-size law's value and interval end there."""

Ranges = Mapping[str, tuple[float, float]]
"""Closed ranges ``{hyperparameter: (low, high)}`` over ``lr``, ``batch_size`` and ``weight_decay``
(units as in the trial table; any subset of the three)."""


@dataclass(frozen=True)
class OutOfRange:
    """A hyperparameter whose recommended value at the target lies outside the range it was searched over."""

    variant: str
    hyperparameter: str
    value: float
    """The value the laws give at the target (after the stability-edge cap for lr; batch size before
    rounding to a power of two)."""
    low: float
    high: float
    """The searched range, [low, high]."""
    clipped: float | None = None
    """What is recommended instead when `clip_to` moved the value; None when it is recommended as it is."""

    def describe(self) -> str:
        """One line for warnings and reports."""
        side = "above" if self.value > self.high else "below"
        text = (
            f"{self.variant}: the recommended {self.hyperparameter} {self.value:.4g} is {side} the searched "
            f"range [{self.low:.4g}, {self.high:.4g}], an extrapolation beyond every trial"
        )
        if self.clipped is None:
            return text + "; recommended as extrapolated (search a wider range to check it)"
        return text + f"; clipped to {self.clipped:.4g}"


@dataclass(frozen=True)
class Setting:
    """Predicted best setting of one variant at the target. Units: lr; batch size per step; loss."""

    variant: str
    lr: Estimate
    batch_size: Estimate
    batch_size_power_of_two: int
    weight_decay: Estimate
    loss: Estimate
    out_of_range: tuple[OutOfRange, ...] = ()
    """The hyperparameters whose value (as extrapolated) lies outside their searched range."""


@dataclass(frozen=True, eq=False)
class Recommendation:
    """What to run at the target: the best variant's setting, every variant's, and the caveats."""

    target_params: float
    target_tokens: float | None
    variant: str
    """The variant predicted to reach the lowest loss at the target."""
    settings: tuple[Setting, ...]
    """One per variant, best predicted loss first."""
    crossovers: tuple[Crossover, ...]
    hyperparameter_crossovers: tuple[HyperparameterCrossover, ...]
    warnings: tuple[str, ...]
    """What to trust less, each once (`caveats`); returned, not logged, so an application shows them once."""
    fit: ScalingFit

    @property
    def best(self) -> Setting:
        """The recommended variant's setting."""
        return self.settings[0]

    @property
    def lr(self) -> Estimate:
        """Recommended peak learning rate with its interval."""
        return self.best.lr

    @property
    def batch_size(self) -> Estimate:
        """Recommended batch size (sequences or examples per step) with its interval."""
        return self.best.batch_size

    @property
    def batch_size_power_of_two(self) -> int:
        """`batch_size` rounded to the nearest power of two."""
        return self.best.batch_size_power_of_two

    @property
    def weight_decay(self) -> Estimate:
        """Recommended weight decay with its interval."""
        return self.best.weight_decay

    @property
    def loss(self) -> Estimate:
        """Predicted loss at the target with the recommended setting."""
        return self.best.loss

    @property
    def out_of_range(self) -> tuple[OutOfRange, ...]:
        """The recommended variant's hyperparameters extrapolated outside their searched range."""
        return self.best.out_of_range


def extrapolate(
    trials_or_study: pd.DataFrame | str | PathLike[str],
    *,
    target_params: float,
    target_tokens: float | None = None,
    method: str = "auto",
    tolerance: float = DEFAULT_TOLERANCE,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
    searched: Ranges | None = None,
    clip_to: Ranges | None = None,
) -> Recommendation:
    """Recommend lr, batch size and weight decay for a model of `target_params` parameters.

    Args:
        trials_or_study: a trial table (DataFrame) or the path of a CSV of one.
        target_params: model size N of the large run (parameters).
        target_tokens: its token budget D; when laws are in (N, D) and this is
            None, the tokens per parameter of the largest measured cell are used.
        method: how the laws are fitted: ``"auto"``, ``"near_best"``, ``"surface"``, ``"joint"`` or
            ``"blend"`` (`scaling_fit`).
        tolerance: a loss within this share of its cell's best counts as as good as the best.
        n_bootstrap: bootstrap replicates behind the loss law's interval (and every cell's, for
            ``"surface"``).
        level: confidence level of the intervals.
        seed: seed of the bootstrap.
        searched: the ranges the study searched (its space), for every variant;
            a hyperparameter left out is checked against the min..max of the
            variant's trials. A recommended value outside is kept, warned
            about and listed in `Setting.out_of_range`.
        clip_to: opt-in: clip each named hyperparameter's recommendation (value
            and interval) into its range, e.g. the study's space when the large
            run must stay where the trials were. The batch size's power of two
            is the nearest one inside the range. The ranges are hard limits:
            an lr is raised into its range even above the stability cap (with a
            warning that the run may diverge). Clipping is not a fit: a clipped value is
            the range's edge, not an optimum; `Setting.out_of_range` keeps the
            extrapolated value, and the predicted loss stays the loss law's (at
            the optimum, not at the clipped setting).

    Raises:
        ValueError: invalid trials (see `trials.normalize_trials`), a target that is not positive,
            or a range that is not ``0 <= low <= high`` or names an unknown hyperparameter.

    Example:
        >>> rec = extrapolate("sweep.csv", target_params=1e9)   # doctest: +SKIP
        >>> rec.lr.value, rec.batch_size_power_of_two, rec.warnings   # doctest: +SKIP
    """
    require_positive("target_params", target_params)
    require_positive("target_tokens", target_tokens)
    if isinstance(trials_or_study, pd.DataFrame):
        trials = normalize_trials(trials_or_study)
    else:
        trials = read_trials(trials_or_study)
    _check_ranges("searched", searched)
    _check_ranges("clip_to", clip_to)
    fit = fit_scaling(
        trials, method=method, tolerance=tolerance, n_bootstrap=n_bootstrap, level=level, seed=seed
    )
    return recommend(
        fit, target_params=target_params, target_tokens=target_tokens, searched=searched, clip_to=clip_to
    )


def recommend(
    fit: ScalingFit,
    *,
    target_params: float,
    target_tokens: float | None = None,
    searched: Ranges | None = None,
    clip_to: Ranges | None = None,
) -> Recommendation:
    """Read a `Recommendation` at (`target_params`, `target_tokens`) off fitted laws.

    `searched` and `clip_to` as in `extrapolate`.
    """
    require_positive("target_params", target_params)
    require_positive("target_tokens", target_tokens)
    _check_ranges("searched", searched)
    _check_ranges("clip_to", clip_to)
    warnings: list[str] = []
    if target_tokens is None and any(v.uses_tokens for v in fit.variants.values()):
        target_tokens = _assumed_tokens(fit, target_params)
        warnings.append(
            f"target_tokens not given: assumed D = {target_tokens:.3g} "
            f"({target_tokens / target_params:.3g} tokens per parameter, as in the largest measured cell)"
        )
    settings = sorted(
        (
            _setting(
                v, target_params, target_tokens, {**v.searched, **(searched or {})}, clip_to or {}, warnings
            )
            for v in fit.variants.values()
        ),
        key=lambda s: (math.isnan(s.loss.value), s.loss.value),
    )
    for variant_fit in fit.variants.values():
        warnings.extend(fit_warnings(variant_fit, target_params))
    crossovers = _crossovers(fit, target_params, target_tokens)
    hyperparameter_crossovers = _hyperparameter_crossovers(fit, settings, target_params, target_tokens)
    warnings.extend(
        f"{c.variant_b if c.leader_at_largest == c.variant_a else c.variant_a} is predicted to overtake "
        f"{c.leader_at_largest} at N ≈ {c.params.value:.3g}, before the target "
        f"(P(ranking flips) = {c.p_flip:.2f})"
        for c in crossovers
        if c.verdict == "ahead"
    )
    warnings.extend(
        f"{h.variant}: the best {h.hyperparameter} at {scale_name(h.small_scale_params)} "
        f"({h.small_scale_value:.3g}) is predicted suboptimal at the target (optimum "
        f"{h.target_optimum.value:.3g}); keeping it costs "
        + (f"at least {h.penalty_pct:.2f}% loss (the rise of the largest size's farthest-off trial)"
           if h.penalty_beyond_measured else f"≈ {h.penalty_pct:.2f}% loss")
        for h in hyperparameter_crossovers
        if h.flagged
    )
    logger.debug("recommendation for N = %.3g with %d warnings", target_params, len(warnings))
    return Recommendation(
        target_params=target_params,
        target_tokens=target_tokens,
        variant=settings[0].variant,
        settings=tuple(settings),
        crossovers=tuple(crossovers),
        hyperparameter_crossovers=tuple(hyperparameter_crossovers),
        warnings=tuple(dict.fromkeys(warnings)),
        fit=fit,
    )


def _assumed_tokens(fit: ScalingFit, target_params: float) -> float:
    largest = max((o for v in fit.variants.values() for o in v.optima), key=lambda o: (o.params, o.tokens))
    return target_params * largest.tokens / largest.params


def _check_ranges(argument: str, ranges: Ranges | None) -> None:
    """Raise ValueError unless every range names a known hyperparameter and is ``0 <= low <= high``."""
    for name, bounds in (ranges or {}).items():
        if name not in HYPERPARAMETERS:
            raise ValueError(f"{argument}: unknown hyperparameter {name!r}; use {', '.join(HYPERPARAMETERS)}")
        low, high = bounds
        if not (0 <= low <= high < math.inf):
            raise ValueError(f"{argument}: {name} range ({low!r}, {high!r}) is invalid; use 0 <= low <= high")


def _held(variant_fit: VariantFit, name: str, value: float) -> Estimate:
    """A hyperparameter without a law at its held `value`: with the interval of the one cell that
    located it, where `value` is that cell's (a scale-aware search's first scale; its checks vary lr
    alone), else exact (held fixed, the cells' constant, or 0 where most cells found 0)."""
    located = [o.value(name) for o in variant_fit.optima if o.locates(name)]
    return located[0] if len(located) == 1 and located[0].value == value else Estimate.exact(value)


def _setting(
    variant_fit: VariantFit,
    target_params: float,
    target_tokens: float | None,
    searched: Ranges,
    clip_to: Ranges,
    warnings: list[str],
) -> Setting:
    estimates: dict[str, Estimate] = {}
    for name, law in variant_fit.laws.items():
        tokens = target_tokens if law.c is not None else None
        estimates[name] = _least_expected_loss(
            law, target_params, tokens, variant_fit.steepness.get(name, 1.0)
        )
        if not 0 < estimates[name].value < math.inf:
            exponents = f"b = {law.b:.3g}" + (f", c = {law.c:.3g}" if law.c is not None else "")
            raise ValueError(
                f"variant '{variant_fit.variant}': the {name} law ({exponents}) gives "
                f"{estimates[name].value:.4g} at the target, beyond what a float holds: its cells cannot "
                "support an extrapolation that far; measure more scales, or choose a nearer target"
            )
    if "batch_size" in estimates:
        estimates["batch_size"] = _clip(estimates["batch_size"], _ONE_SEQUENCE)
    for name, value in variant_fit.fixed.items():
        estimates[name] = _held(variant_fit, name, value)
    cap = _stability_cap(variant_fit, target_params, target_tokens)
    estimates["lr"] = _below_stability_edge(variant_fit.variant, estimates["lr"], cap, warnings)
    out_of_range = []
    for name in HYPERPARAMETERS:
        estimate = estimates[name]
        clipped = _clip(estimate, clip_to[name]) if name in clip_to else estimate
        if name == "lr" and cap is not None and clipped.value > cap:
            warnings.append(
                f"{variant_fit.variant}: clip_to raises lr to {clipped.value:.4g}, above the stability cap "
                f"{cap:.4g} (half the predicted divergence edge): expect the large run to diverge"
            )
        moved = clipped.value != estimate.value and not math.isnan(estimate.value)
        if name in searched and not _inside(estimate.value, searched[name]):
            low, high = searched[name]
            found = OutOfRange(
                variant_fit.variant, name, estimate.value, low, high, clipped.value if moved else None
            )
            out_of_range.append(found)
            warnings.append(found.describe())
        elif moved:
            warnings.append(
                f"{variant_fit.variant}: the recommended {name} {estimate.value:.4g} is clipped to "
                f"{clipped.value:.4g} (clip_to [{clip_to[name][0]:.4g}, {clip_to[name][1]:.4g}])"
            )
        estimates[name] = clipped
    batch_size = nearest_power_of_two(estimates["batch_size"].value)
    if "batch_size" in clip_to:
        batch_size = _power_of_two_within(batch_size, *clip_to["batch_size"])
    loss_law = variant_fit.loss_law
    loss = (
        loss_law.estimate(target_params, target_tokens if loss_law.B is not None else None)
        if loss_law is not None
        else Estimate.missing()
    )
    return Setting(
        variant=variant_fit.variant,
        lr=estimates["lr"],
        batch_size=estimates["batch_size"],
        batch_size_power_of_two=batch_size,
        weight_decay=estimates["weight_decay"],
        loss=loss,
        out_of_range=tuple(out_of_range),
    )


def _least_expected_loss(law: PowerLaw, params: float, tokens: float | None, steepness: float) -> Estimate:
    """The law's estimate at (N, D) with its value moved to where the expected loss is least: the optimum's
    ln predicted ~ N(ln h*, s²) (s = `PowerLaw.spread`) and the loss `steepness` times steeper above it
    than below, the value is ``h*·e^(z·s)`` (`asymmetry.point_offset`: below h* when overshooting costs
    more). Never above h*: a ratio below 1 (the cells' loss steeper below the optimum, as short runs at
    small scales read it where a low lr has not converged) would move the value up by z·s, past anything
    the cells' profiles (within 5% of their best) measured, towards the stability edge whose cliff no
    profile sees (the committed `mlp` ladder: lr set 1.5-9x above the law's median, up to 14.6% regret).
    The interval stays the prediction interval of the optimum."""
    estimate = law.estimate(params, tokens)
    offset = point_offset(max(steepness, 1.0)) * law.spread(params, tokens)
    return replace(estimate, value=estimate.value * math.exp(offset))


def _inside(value: float, bounds: tuple[float, float]) -> bool:
    """Whether `value` lies in ``[low, high]`` up to rounding; a missing (NaN) value is not judged."""
    low, high = bounds
    return math.isnan(value) or low * (1 - _RANGE_TOLERANCE) <= value <= high * (1 + _RANGE_TOLERANCE)


def _clip(estimate: Estimate, bounds: tuple[float, float]) -> Estimate:
    """`estimate` with its value and interval clipped into ``[low, high]`` (a missing value stays missing)."""
    low, high = bounds

    def clip(x: float) -> float:
        return x if math.isnan(x) else min(max(x, low), high)

    return Estimate(clip(estimate.value), clip(estimate.low), clip(estimate.high), estimate.level)


def _power_of_two_within(value: int, low: float, high: float) -> int:
    """`value` (a power of two) moved to the nearest power of two in ``[low, high]``; the bound
    itself when the range holds none."""
    if value > high:
        below = 2 ** math.floor(math.log2(high)) if high >= 1 else 0
        return below if below >= low and below > 0 else int(high)
    if value < low:
        above = 2 ** math.ceil(math.log2(low)) if low > 0 else 1
        return above if above <= high else int(low)
    return value


def _stability_cap(
    variant_fit: VariantFit, target_params: float, target_tokens: float | None
) -> float | None:
    """Half the lowest learning rate the stability-edge law predicts to diverge at the target; None
    without that law."""
    edge_law = variant_fit.stability_edge
    if edge_law is None:
        return None
    return edge_law.predict(target_params, target_tokens if edge_law.c is not None else None) / 2


def _below_stability_edge(variant: str, lr: Estimate, cap: float | None, warnings: list[str]) -> Estimate:
    """Cap lr at `cap` (see `_stability_cap`)."""
    if cap is None or lr.value <= cap:
        return lr
    warnings.append(
        f"{variant}: predicted lr {lr.value:.3g} is within 2x of the predicted divergence edge "
        f"{2 * cap:.3g}; capped at {cap:.3g}"
    )
    return Estimate(cap, min(lr.low, cap), min(lr.high, cap), lr.level)


def _crossovers(fit: ScalingFit, target_params: float, target_tokens: float | None) -> list[Crossover]:
    tokens_per_param = None if target_tokens is None else target_tokens / target_params
    crossovers = []
    for a, b in itertools.combinations(sorted(fit.variants), 2):
        fit_a, fit_b = fit.variants[a], fit.variants[b]
        if fit_a.loss_law is None or fit_b.loss_law is None:
            continue
        smallest = max(fit_a.params_measured[0], fit_b.params_measured[0])
        largest = min(fit_a.params_measured[-1], fit_b.params_measured[-1])
        crossovers.append(
            find_crossover(
                fit_a.loss_law,
                fit_b.loss_law,
                names=(a, b),
                measured_params=(smallest, largest),
                target_params=target_params,
                tokens_per_param=tokens_per_param,
            )
        )
    return crossovers


def _hyperparameter_crossovers(
    fit: ScalingFit, settings: list[Setting], target_params: float, target_tokens: float | None
) -> list[HyperparameterCrossover]:
    losses = {s.variant: s.loss.value for s in settings}
    found = []
    for variant_fit in fit.variants.values():
        largest_loss = max(variant_fit.optima, key=lambda o: (o.params, o.tokens)).loss.value
        target_loss = losses[variant_fit.variant]
        target_loss = largest_loss if not np.isfinite(target_loss) else target_loss
        for hyperparameter in ("lr", "batch_size"):
            law = variant_fit.laws.get(hyperparameter)
            if law is None:
                continue
            found.append(
                find_hyperparameter_crossover(
                    variant_fit.variant,
                    hyperparameter,
                    variant_fit.optima,
                    law,
                    target_params=target_params,
                    target_tokens=target_tokens,
                    target_loss=target_loss,
                )
            )
    return found
