"""`hpo`: scale-aware hyperparameter optimization.

Tune learning rate, batch size and weight decay on a ladder of small model
scales, then extrapolate the optima to a target scale and flag scaling-law
crossovers before the single large run.

The names below are imported on first use: a Ray trial worker imports
`hpo.run.trainable` only, and need not pay for the analysis (scipy, pandas) or the
stores (Optuna, MLflow) at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.analysis import Recommendation, extrapolate
    from hpo.store.trial_table import load_trials
    from hpo.study.spec import SpecError, StudySpec, load_spec

__all__ = ["Recommendation", "SpecError", "StudySpec", "extrapolate", "load_spec", "load_trials"]

_HOMES = {"Recommendation": "hpo.analysis", "extrapolate": "hpo.analysis", "SpecError": "hpo.study.spec",
          "StudySpec": "hpo.study.spec", "load_spec": "hpo.study.spec",
          "load_trials": "hpo.store.trial_table"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hpo' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
