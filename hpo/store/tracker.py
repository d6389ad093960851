"""`Tracker`: where a study's trials are recorded for people to browse, and the registry of trackers.

The Optuna storage is the study's memory (what ran, what to resume); a
tracker is its window: one record per (variant, scale), one per trial under
it with its loss curve over tokens, and a summary of the analysis. The runner
calls a tracker from the driver only, in this order:

1. `start_scale` when a (variant, scale) opens (found again when a study resumes);
2. `reconcile` right after, with the trials that count towards the plan: a
   record left open by a killed driver is completed from Optuna's curve, and
   a record of a trial that does not count (interrupted, never told) is
   deleted, so the two stores hold the same trials;
3. `start_trial`, `retry_trial` (a trial that errored and runs again keeps
   its record) and `end_trial` for each trial, `flush` before the scale closes;
4. `end_scale` with the scale's best trial and law check, or None when the run
   was interrupted;
5. `write_summary` when ``hpo analyze`` records its answer.

`recorded` lists the trial records of a scale, so the stores can be
cross-checked. Register a tracker in `TRACKERS`; a study picks one
with ``storage.tracker`` (default ``mlflow``). tests/store/test_trackers.py
runs every registered tracker through one conformance suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hpo.registry import Registry
from hpo.vocab import FinalStatus

if TYPE_CHECKING:
    import pandas as pd

    from hpo.analysis import Recommendation
    from hpo.search.plan import LawCheck, ScalePlan

__all__ = ["TRACKERS", "CurvePoint", "ScaleRecord", "ScaleResult", "Tracker", "TrialEnd", "TrialStart"]

CurvePoint = Mapping[str, float]
"""One evaluation of a trial: ``tokens`` (seen so far), ``loss`` (eval loss) and, when known, ``train_loss``
and ``lr`` (the learning rate then)."""


@dataclass(frozen=True)
class ScaleRecord:
    """One (variant, scale) of study `study`: N = `params`, one trial's budget D = `budget_tokens`,
    its trials' `seed`, `trials` planned; `id` is the tracker's id of its record."""

    study: str
    variant: str
    scale: str
    params: int
    budget_tokens: int
    seed: int
    trials: int
    id: str = ""


@dataclass(frozen=True)
class TrialStart:
    """A trial as it starts: its Optuna trial `number` and the hyperparameters it trains with."""

    number: int
    lr: float
    batch_size: int
    weight_decay: float


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended: its final `status`, the tokens it saw, its evaluations in order, and for a
    failed trial its `error` (the last line of the traceback, when known)."""

    status: FinalStatus
    tokens_seen: int | None
    curve: Sequence[CurvePoint]
    error: str | None = None


@dataclass(frozen=True)
class ScaleResult:
    """A finished (variant, scale): its best complete trial (None if none completed) and its law check."""

    best_number: int | None
    best_loss: float | None
    best_params: Mapping[str, float] | None
    best_record: str | None
    law: LawCheck | None


class Tracker(Protocol):
    """Records a study's scales and trials for browsing (module docstring for the order of calls)."""

    def start_scale(self, scale: ScaleRecord, plan: ScalePlan) -> ScaleRecord:
        """Open (or find again) the record of `scale`, noting how it is searched; `scale` with its `id`."""
        ...

    def reconcile(self, scale: ScaleRecord, counted: Mapping[int, TrialEnd]) -> None:
        """Make the scale's trial records those of `counted` (trial number → how it ended): complete
        the open ones, delete those of other trials."""
        ...

    def start_trial(self, scale: ScaleRecord, trial: TrialStart) -> str:
        """Open the record of a starting trial; its id."""
        ...

    def retry_trial(self, record: str, retries: int) -> None:
        """Note that the trial of `record` errored and runs again, the `retries`-th time."""
        ...

    def end_trial(self, record: str, trial: TrialEnd) -> None:
        """Close the record of a trial with its status and curve (may be written in the background)."""
        ...

    def flush(self) -> None:
        """Wait until every trial record ended so far is written; raise the first write's error."""
        ...

    def end_scale(self, scale: ScaleRecord, result: ScaleResult | None) -> None:
        """Close the scale's record with its result, or as interrupted when `result` is None."""
        ...

    def recorded(self, scale: ScaleRecord) -> dict[int, str]:
        """The scale's trial records: trial number → status (``running`` while open); the scale's record
        is looked up by study, variant and scale when `scale.id` is empty (none: no records)."""
        ...

    def write_summary(self, recommendation: Recommendation, trials: pd.DataFrame,
                      plots: Sequence[Path]) -> str:
        """Record the analysis's answer (replacing an earlier one) with the trial table and plots; its id."""
        ...
        ...


TrackerFactory = Callable[[str, str, Path], Tracker]
"""``factory(uri, study, artifact_dir)``: the tracker of study `study` at `uri`, files in `artifact_dir`."""

TRACKERS: Registry[TrackerFactory] = Registry("tracker", {"mlflow": "hpo.store.mlflow_tracker:MlflowTracker"})
"""The trackers a study can name as ``storage.tracker``; `Registry.register` adds one."""
