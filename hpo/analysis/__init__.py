"""Pure analysis of a trial table: optima per scale, their scaling laws, loss laws, crossovers, extrapolation.

Pandas in, dataclasses out; no Ray, MLflow or torch. The entry point is
`extrapolate`; docs/analysis.md explains the formulas and the warnings. Plots
live in `hpo.analysis.plots` (imported on demand, as they load matplotlib).
Warnings are returned in `Recommendation.warnings`, each once, and not logged
(an application that printed both would show every one twice); the
``hpo.analysis`` logger carries debug detail only. The backtest of a sweep
lives in `hpo.evaluation.backtest`.

The names below are imported on first use, so code that needs one small
piece (`Estimate`, say, for a plan) does not load scipy.

Example:
    >>> from hpo.analysis import extrapolate
    >>> rec = extrapolate("trials.csv", target_params=1e9)      # doctest: +SKIP
    >>> rec.lr, rec.batch_size_power_of_two, rec.warnings        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.analysis.crossover import (
        Crossover,
        HyperparameterCrossover,
        find_crossover,
        find_hyperparameter_crossover,
    )
    from hpo.analysis.estimate import Estimate
    from hpo.analysis.loss_law import LossLaw, fit_compute_loss_law, fit_loss_law
    from hpo.analysis.optimum import Optimum, find_optimum
    from hpo.analysis.power_law import PowerLaw, fit_power_law
    from hpo.analysis.recommendation import (
        OutOfRange,
        Ranges,
        Recommendation,
        Setting,
        extrapolate,
        recommend,
    )
    from hpo.analysis.scaling_fit import ScalingFit, VariantFit, fit_scaling
    from hpo.analysis.trials import TRIAL_COLUMNS, normalize_trials, read_trials

_HOMES = {
    "Crossover": "crossover", "HyperparameterCrossover": "crossover", "find_crossover": "crossover",
    "find_hyperparameter_crossover": "crossover", "Estimate": "estimate", "OutOfRange": "recommendation",
    "Ranges": "recommendation", "Recommendation": "recommendation", "Setting": "recommendation",
    "extrapolate": "recommendation", "recommend": "recommendation", "LossLaw": "loss_law",
    "fit_compute_loss_law": "loss_law", "fit_loss_law": "loss_law", "Optimum": "optimum",
    "find_optimum": "optimum", "PowerLaw": "power_law", "fit_power_law": "power_law",
    "ScalingFit": "scaling_fit", "VariantFit": "scaling_fit", "fit_scaling": "scaling_fit",
    "TRIAL_COLUMNS": "trials", "normalize_trials": "trials", "read_trials": "trials",
}
__all__ = [
    "TRIAL_COLUMNS",
    "Crossover",
    "Estimate",
    "HyperparameterCrossover",
    "LossLaw",
    "Optimum",
    "OutOfRange",
    "PowerLaw",
    "Ranges",
    "Recommendation",
    "ScalingFit",
    "Setting",
    "VariantFit",
    "extrapolate",
    "find_crossover",
    "find_hyperparameter_crossover",
    "find_optimum",
    "fit_compute_loss_law",
    "fit_loss_law",
    "fit_power_law",
    "fit_scaling",
    "normalize_trials",
    "read_trials",
    "recommend",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hpo.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hpo.analysis.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
