"""`hpo`: scale-aware hyperparameter optimization.

Tune learning rate, batch size and weight decay on a ladder of small model
scales, then extrapolate the optima to a target scale and flag scaling-law
crossovers before the single large run.
"""

from __future__ import annotations

from hpo.analysis import Recommendation, extrapolate
from hpo.spec import SpecError, StudySpec, load_spec
from hpo.trials import load_trials

__all__ = ["Recommendation", "SpecError", "StudySpec", "extrapolate", "load_spec", "load_trials"]
