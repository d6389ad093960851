"""An audit of both stores of a study, shared by the fault tests: what a fault left behind, in trials."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from mlflow import MlflowClient
from optuna.trial import TrialState

from hpo.store.optuna_store import PLAN, optuna_storage, optuna_study_name, stored_trials
from hpo.study.spec import load_spec
from hpo.vocab import HYPERPARAMETERS, INTERRUPTED


@dataclass(frozen=True)
class Audit:
    """What both stores of a study hold, in trials.

    `planned`: trials the plans stored with the (variant, scale)s audited ask for
    (``trials_per_scale`` where none is stored); `finished`: Optuna trials that
    count (complete, pruned, diverged or failed, not interrupted); `retried`:
    counted trials Ray Tune ran again after an error, plus trials interrupted by
    a killed driver and queued again; `lost`: planned trials without a counted
    Optuna trial, Optuna trials left RUNNING, and counted trials without their
    MLflow child run; `duplicated`: counted trials beyond the plan, live MLflow
    child runs beyond the counted trials, run ids or trial numbers used twice,
    and settings (lr, batch size, weight decay) trained twice at one scale;
    `running_mlflow`: MLflow runs (parents included) left RUNNING."""

    planned: int
    finished: int
    retried: int
    lost: int
    duplicated: int
    running_optuna: int
    running_mlflow: int

    def clean(self) -> bool:
        """Every planned trial finished once, in both stores, and nothing is left running."""
        return (self.planned == self.finished and self.lost == self.duplicated == 0
                and self.running_optuna == self.running_mlflow == 0)


def audit(study: Path, variants: tuple[str, ...] | None = None,
          scales: tuple[str, ...] | None = None) -> Audit:
    """Count what the stores of the study file `study` hold (all variants and scales unless `variants`
    and `scales` name some)."""
    spec = load_spec(study)
    storage = optuna_storage(spec.storage.optuna)
    client = MlflowClient(spec.storage.mlflow)
    experiment = client.get_experiment_by_name(spec.name)
    runs = [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=10_000)
    totals = dict.fromkeys(("planned", "finished", "retried", "lost", "duplicated", "running_optuna"), 0)
    for variant in variants or tuple(v.name for v in spec.variants):
        for scale in scales or spec.scales:
            name = optuna_study_name(spec.name, variant, scale)
            trials = stored_trials(storage, name)
            plans = [s.user_attrs[PLAN] for s in storage.get_all_studies()
                     if s.study_name == name and PLAN in s.user_attrs]
            planned = int(plans[0]["trials"]) if plans else spec.trials_per_scale[scale]
            status = [t.user_attrs.get("status") for t in trials]
            counted = [t for t, s in zip(trials, status, strict=True)
                       if t.state.is_finished() and s != INTERRUPTED]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            children = {r.info.run_id for r in runs if r.data.tags.get("kind") == "trial"
                        and r.data.tags.get("variant") == variant and r.data.tags.get("scale") == scale}
            run_ids = [t.user_attrs.get("run_id") for t in counted]
            numbers = [t.number for t in counted]
            settings = [tuple(t.user_attrs.get(h) for h in HYPERPARAMETERS) for t in counted]
            totals["planned"] += planned
            totals["finished"] += len(counted)
            totals["retried"] += (sum(t.user_attrs.get("retries", 0) > 0 for t in counted)
                                  + status.count(INTERRUPTED))
            totals["lost"] += (max(0, planned - len(counted)) + len(running)
                               + sum(run_id not in children for run_id in run_ids))
            totals["duplicated"] += (max(0, len(counted) - planned) + max(0, len(children) - len(counted))
                                     + len(run_ids) - len(set(run_ids)) + len(numbers) - len(set(numbers))
                                     + len(settings) - len(set(settings)))
            totals["running_optuna"] += len(running)
    return Audit(**totals, running_mlflow=sum(r.info.status == "RUNNING" for r in runs))


def record(fault: str, checked: str, result: Audit, seconds: float) -> None:
    """Append one row of docs/reliability.md's table to ``$HPO_RELIABILITY_LOG`` (JSON lines), if set."""
    log = os.environ.get("HPO_RELIABILITY_LOG")
    if log:
        with open(log, "a") as stream:
            stream.write(json.dumps({"fault": fault, "checked": checked, **asdict(result),
                                     "seconds": round(seconds, 1)}) + "\n")
