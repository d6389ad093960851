"""The answer for the single large run: `extrapolate(trials, target_params=...) -> Recommendation`.

Per variant, the hyperparameter laws (`power_law`) and loss law (`loss_law`)
fitted by `scaling_fit` are read at the target (N, D); the variant predicted
to reach the lowest loss is recommended. A learning rate is never recommended
above half the lowest learning rate predicted to diverge at the target (the
stability edge, fitted across cells from the diverged trials). Warnings say
when to trust the answer less; see docs/analysis.md.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd

from hpo.analysis.crossover import (
    Crossover,
    HyperparameterCrossover,
    find_crossover,
    find_hyperparameter_crossover,
)
from hpo.analysis.estimate import Estimate
from hpo.analysis.power_law import round_to_power_of_two
from hpo.analysis.scaling_fit import ScalingFit, VariantFit, fit_scaling
from hpo.analysis.trials import normalize_trials, read_trials, require_positive, scale_name

logger = logging.getLogger(__name__)

POOR_FIT_LOG_SCATTER = 0.25
"""Cell optima scattering around their law by more than this in ln units (~28%) is a poor fit."""
POOR_FIT_LOSS_RESIDUAL = 0.01
"""A loss law missing its points by more than 1% (rms of ln residuals) is a poor fit."""


@dataclass(frozen=True)
class Setting:
    """Predicted best setting of one variant at the target. Units: lr; batch size per step; loss."""

    variant: str
    lr: Estimate
    batch_size: Estimate
    batch_size_power_of_two: int
    weight_decay: Estimate
    loss: Estimate


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


def extrapolate(
    trials_or_study: pd.DataFrame | str | PathLike[str],
    *,
    target_params: float,
    target_tokens: float | None = None,
    n_bootstrap: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Recommendation:
    """Recommend lr, batch size and weight decay for a model of `target_params` parameters.

    Args:
        trials_or_study: a trial table (DataFrame) or the path of a CSV of one.
        target_params: model size N of the large run (parameters).
        target_tokens: its token budget D; when laws are in (N, D) and this is
            None, the tokens per parameter of the largest measured cell are used.
        n_bootstrap: bootstrap replicates behind every interval.
        level: confidence level of the intervals.
        seed: seed of the bootstrap.

    Raises:
        ValueError: invalid trials (see `trials.normalize_trials`), or a target that is not positive.

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
    fit = fit_scaling(trials, n_bootstrap=n_bootstrap, level=level, seed=seed)
    return recommend(fit, target_params=target_params, target_tokens=target_tokens)


def recommend(fit: ScalingFit, *, target_params: float, target_tokens: float | None = None) -> Recommendation:
    """Read a `Recommendation` at (`target_params`, `target_tokens`) off fitted laws."""
    require_positive("target_params", target_params)
    require_positive("target_tokens", target_tokens)
    warnings: list[str] = []
    if target_tokens is None and any(v.uses_tokens for v in fit.variants.values()):
        target_tokens = _assumed_tokens(fit, target_params)
        warnings.append(
            f"target_tokens not given: assumed D = {target_tokens:.3g} "
            f"({target_tokens / target_params:.3g} tokens per parameter, as in the largest measured cell)"
        )
    settings = sorted(
        (_setting(v, target_params, target_tokens, warnings) for v in fit.variants.values()),
        key=lambda s: (math.isnan(s.loss.value), s.loss.value),
    )
    for variant_fit in fit.variants.values():
        warnings.extend(_fit_warnings(variant_fit, target_params))
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
        f"{h.target_optimum.value:.3g}); keeping it costs ≈ {h.penalty_pct:.2f}% loss"
        for h in hyperparameter_crossovers
        if h.flagged
    )
    for warning in warnings:
        logger.warning(warning)
    return Recommendation(
        target_params=target_params,
        target_tokens=target_tokens,
        variant=settings[0].variant,
        settings=tuple(settings),
        crossovers=tuple(crossovers),
        hyperparameter_crossovers=tuple(hyperparameter_crossovers),
        warnings=tuple(warnings),
        fit=fit,
    )


def _assumed_tokens(fit: ScalingFit, target_params: float) -> float:
    largest = max((o for v in fit.variants.values() for o in v.optima), key=lambda o: (o.params, o.tokens))
    return target_params * largest.tokens / largest.params


def _setting(
    variant_fit: VariantFit, target_params: float, target_tokens: float | None, warnings: list[str]
) -> Setting:
    estimates: dict[str, Estimate] = {}
    for name, law in variant_fit.laws.items():
        estimates[name] = law.estimate(target_params, target_tokens if law.c is not None else None)
    for name, value in variant_fit.fixed.items():
        estimates[name] = Estimate.exact(value)
    lr = _below_stability_edge(variant_fit, estimates["lr"], target_params, target_tokens, warnings)
    loss_law = variant_fit.loss_law
    loss = (
        loss_law.estimate(target_params, target_tokens if loss_law.B is not None else None)
        if loss_law is not None
        else Estimate.missing()
    )
    return Setting(
        variant=variant_fit.variant,
        lr=lr,
        batch_size=estimates["batch_size"],
        batch_size_power_of_two=round_to_power_of_two(estimates["batch_size"].value),
        weight_decay=estimates["weight_decay"],
        loss=loss,
    )


def _below_stability_edge(
    variant_fit: VariantFit,
    lr: Estimate,
    target_params: float,
    target_tokens: float | None,
    warnings: list[str],
) -> Estimate:
    """Cap lr at half the lowest learning rate the stability-edge law predicts to diverge at the target."""
    edge_law = variant_fit.stability_edge
    if edge_law is None:
        return lr
    edge = edge_law.predict(target_params, target_tokens if edge_law.c is not None else None)
    cap = edge / 2
    if lr.value <= cap:
        return lr
    warnings.append(
        f"{variant_fit.variant}: predicted lr {lr.value:.3g} is within 2x of the predicted divergence edge "
        f"{edge:.3g}; capped at {cap:.3g}"
    )
    return Estimate(cap, min(lr.low, cap), min(lr.high, cap), lr.level)


def _fit_warnings(variant_fit: VariantFit, target_params: float) -> list[str]:
    name = variant_fit.variant
    measured = variant_fit.params_measured
    warnings = [f"{name}: {note}" for note in variant_fit.notes]
    span = measured[-1] / measured[0]
    factor = target_params / measured[-1]
    if factor > span:
        warnings.append(
            f"{name}: the target is {factor:.3g}x the largest measured size, beyond the {span:.3g}x span "
            "measured; the laws are assumed to hold that far"
        )
    if measured.size < 3:
        warnings.append(f"{name}: only {measured.size} model sizes; measure at least 3 to check the laws")
    for hyperparameter, law in variant_fit.laws.items():
        if law.rms_log_residual > POOR_FIT_LOG_SCATTER:
            warnings.append(
                f"{name}: poor fit of the {hyperparameter} law (optima scatter by a factor "
                f"{math.exp(law.rms_log_residual):.2f} around it)"
            )
    loss_law = variant_fit.loss_law
    if loss_law is not None and loss_law.rms_log_residual > POOR_FIT_LOSS_RESIDUAL:
        warnings.append(
            f"{name}: poor fit of the loss law (misses its points by {100 * loss_law.rms_log_residual:.2g}%)"
        )
    for optimum in variant_fit.optima:
        cell = f"{name} at {optimum.scale}, D={optimum.tokens:.3g}"
        for hyperparameter, side in optimum.at_edge.items():
            warnings.append(
                f"{cell}: the {hyperparameter} optimum is at the {side} edge of the searched range; widen it"
            )
        if optimum.near_stability_edge:
            warnings.append(f"{cell}: the lr optimum is within 2x of the lowest diverging lr")
        if not optimum.surface_fitted:
            warnings.append(f"{cell}: no clear minimum of the loss surface; the best trial is used")
        if optimum.too_few_trials:
            warnings.append(
                f"{cell}: too few useful trials ({optimum.n_complete} complete) for a reliable optimum"
            )
    return warnings


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
