"""`hpo`: scale-aware hyperparameter optimization.

Tune learning rate, batch size and weight decay on a ladder of small model
scales, then extrapolate the optima to a target scale and flag scaling-law
crossovers before the single large run. From Python (`hpo.api`)::

    spec = hpo.load_spec("studies/quickstart.yaml")     # or hpo.parse_spec({...})
    hpo.run_study(spec)                                  # address="ray://..." for a cluster
    table = hpo.load_trials(spec)                        # a pandas DataFrame
    recommendation = hpo.analyze(spec)                   # lr, batch size, weight decay at the target

The names below are imported on first use: a Ray trial worker imports
`hpo.run.trainable` only, and need not pay for the analysis (scipy, pandas)
or the stores (Optuna, MLflow) at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.analysis import Recommendation
    from hpo.api import analyze, extrapolate, load_trials, run_study
    from hpo.study.spec import SpecError, StudySpec, load_spec, parse_spec

__all__ = ["Recommendation", "SpecError", "StudySpec", "analyze", "extrapolate", "load_spec", "load_trials",
           "parse_spec", "run_study"]

_HOMES = {"Recommendation": "hpo.analysis", "SpecError": "hpo.study.spec", "StudySpec": "hpo.study.spec",
          "load_spec": "hpo.study.spec", "parse_spec": "hpo.study.spec", "analyze": "hpo.api",
          "extrapolate": "hpo.api", "load_trials": "hpo.api", "run_study": "hpo.api"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hpo' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
