"""MLflow tracking of a study, from the driver only (trial workers never touch MLflow).

Layout in the tracking store, made to be browsed in the MLflow UI (docs/browse_in_mlflow.md):

* one experiment per study, named after it, its artifacts under the study's
  output folder, tagged ``mlflow.experimentKind=custom_model_development`` so
  the UI shows it as model training (runs, params, charts);
* one *parent* run per (variant, scale), named ``{scale} · {variant}``
  (`scale_run_name`), tagged ``kind=scale``, ``study``, ``variant``,
  ``scale``, ``N`` (= ``params``, the scale's parameter count) and ``tokens``
  (D), and found again by those tags when a study resumes. When the scale is
  done it carries its best trial as its own, so the experiment's table
  compares scales row by row: metric ``loss`` is the best trial's eval loss,
  and params ``lr``, ``batch_size``, ``weight_decay`` its hyperparameters.
  MLflow params cannot change once logged, so those three are logged the
  first time the scale finishes with a best trial, and tag ``params_trial``
  names the trial they come from; should a later resume (with more trials
  per scale) find a better trial, the metrics ``loss``, ``best_loss``,
  ``best_lr``, ``best_batch_size``, ``best_weight_decay`` and the tags
  ``best_trial_number``, ``best_run_id`` follow it, and tag
  ``params_stale=true`` says the three params no longer do. Metrics
  ``trials_complete``, ``trials_pruned``, ``trials_diverged`` and
  ``trials_failed`` count its child runs by status;
* one *child* run per trial (tag ``mlflow.parentRunId``), named like
  ``{scale} · lr=3.2e-3 bs=64 wd=0.1`` (`run_name`), created when the trial
  starts, tagged ``kind=trial``, ``study``, ``variant``, ``scale``, ``N``,
  ``trial_number``, with a description (tag ``mlflow.note.content``) saying
  which trial it is and that chart steps are tokens; its params are the hyperparameters, ``scale``, ``params``
  (N), ``seed`` and ``variant``; its curve (``loss`` = eval loss,
  ``train_loss``, ``lr``) is logged in one batch when the trial ends, with
  step = tokens seen; tag ``status`` is complete / pruned / diverged / failed;
  that last write runs in a background thread, off the driver's path from one
  trial to the next (`MlflowTracker.flush` waits for it);
* one study-level *summary* run (tag ``kind=summary``) with the analysis's
  answer, written by `hpo.store.mlflow_summary` (``hpo analyze``).

`MlflowTracker` is the `hpo.store.tracker.Tracker` that writes this layout,
from the driver only (trial workers never open the store, so a sqlite store
serves a local study and workers need no credentials on a cluster). A trial
that runs again after an error keeps its one child run, its retry count in
tag ``retries``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy.exc
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from hpo.store.mlflow_summary import write_summary
from hpo.store.mlflow_template import open_tracking_store
from hpo.store.tracker import ScaleRecord, ScaleResult, TrialEnd, TrialStart
from hpo.vocab import FAILED, FINAL_STATUSES, HYPERPARAMETERS, format_short, retry

if TYPE_CHECKING:
    import pandas as pd

    from hpo.analysis import Recommendation
    from hpo.search.plan import ScalePlan

__all__ = ["MlflowTracker", "run_name", "scale_run_name"]

logger = logging.getLogger(__name__)

_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
_CURVE_KEYS = ("loss", "train_loss", "lr")
"""Curve-point keys logged as each child run's metrics, at step = tokens seen."""
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
"""The experiment tag that tells MLflow's UI what kind of work an experiment holds."""
_DESCRIPTION = "mlflow.note.content"
"""The tag MLflow's UI shows (as Markdown) as a run's description."""
_TAG_LIMIT = 8000
"""MLflow's longest tag value, in characters."""
_MAX_RUNS = 50_000
"""Most child runs read back from one (variant, scale): MLflow's largest page."""


def scale_run_name(scale: str, variant: str) -> str:
    """A parent run's display name, e.g. ``100k · no_wd``."""
    return f"{scale} · {variant}"


def run_name(scale: str, lr: float, batch_size: int, weight_decay: float) -> str:
    """A child run's display name, e.g. ``100k · lr=3.2e-3 bs=64 wd=0.1``."""
    return f"{scale} · lr={format_short(lr)} bs={batch_size} wd={format_short(weight_decay)}"


class MlflowTracker:
    """The MLflow experiment of study `study` at `tracking_uri`, created with its artifacts in
    `artifact_dir` if it does not exist (module docstring: the layout it writes).

    Several drivers may open one store at once (a team's PostgreSQL): they make
    its tables one at a time (`open_tracking_store`), and the one that loses the
    race to create the experiment retries, up to `attempts` tries 1 s apart, and
    then finds the one the other created.
    """

    def __init__(self, tracking_uri: str, study: str, artifact_dir: Path, *, attempts: int = 10) -> None:
        self.tracking_uri = tracking_uri
        self.study = study
        self.client = retry(lambda: open_tracking_store(tracking_uri), attempts=attempts, delay=1.0,
                            retryable=_lost_a_creation_race, what="MLflow store created concurrently")
        self.experiment_id = retry(lambda: self._experiment_id(artifact_dir), attempts=attempts, delay=1.0,
                                   retryable=_lost_a_creation_race,
                                   what="MLflow experiment created concurrently")
        # The UI then treats the experiment as model training (runs, params, metric charts), not GenAI traces.
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []

    def _experiment_id(self, artifact_dir: Path) -> str:
        experiment = self.client.get_experiment_by_name(self.study)  # creates the store's tables, if missing
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            self.study, artifact_location=artifact_dir.absolute().as_uri(), tags={"study": self.study})

    def start_scale(self, scale: ScaleRecord, plan: ScalePlan) -> ScaleRecord:
        """The parent run of the (variant, scale), found by its tags or created, set RUNNING, tagged
        with how the scale is searched: ``search`` (transferred / full), ``search_reason``, the space."""
        found = self._parent_id(scale)
        name = scale_run_name(scale.scale, scale.variant)
        if found:  # renamed too: stores written before the `{scale} · {variant}` names get them
            run_id = found
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING), name=name)
        else:
            tags = {"kind": "scale", "study": self.study, "variant": scale.variant, "scale": scale.scale,
                    "N": str(scale.params), "params": str(scale.params), "tokens": str(scale.budget_tokens),
                    _DESCRIPTION: _scale_description(scale)}
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id
            values = {"variant": scale.variant, "scale": scale.scale, "params": scale.params,
                      "tokens": scale.budget_tokens, "trials": scale.trials, "seed": scale.seed}
            self.client.log_batch(run_id, params=[Param(key, str(value)) for key, value in values.items()])
        tags = {"search": "transferred" if plan.transferred else "full", "search_reason": plan.reason,
                "search_trials": str(plan.trials), "search_space": json.dumps(plan.to_dict()["space"])}
        self.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        return ScaleRecord(**{**scale.__dict__, "id": run_id})

    def reconcile(self, scale: ScaleRecord, counted: Mapping[int, TrialEnd]) -> None:
        """Delete the child runs of trials that do not count (interrupted by a killed driver: their
        configuration runs again as a new trial); end those a killed driver left RUNNING although their
        trial counts, with its status and, if the run has none, its curve (from Optuna)."""
        for run in self._children(scale):
            trial = counted.get(int(run.data.tags.get("trial_number", -1)))
            if trial is None:
                self.client.delete_run(run.info.run_id)
            elif run.info.status == "RUNNING":
                logged = bool(self.client.get_metric_history(run.info.run_id, "loss"))
                self._end_run(run.info.run_id, TrialEnd(trial.status, trial.tokens_seen,
                                                        () if logged else trial.curve))

    def start_trial(self, scale: ScaleRecord, trial: TrialStart) -> str:
        """Create the trial's child run under the scale's parent run; its run id."""
        tags = {"mlflow.parentRunId": scale.id, "kind": "trial", "study": scale.study,
                "variant": scale.variant, "scale": scale.scale, "trial_number": str(trial.number),
                "N": str(scale.params), "params": str(scale.params),
                _DESCRIPTION: _trial_description(scale, trial.number)}
        name = run_name(scale.scale, trial.lr, trial.batch_size, trial.weight_decay)
        run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id
        params = {"lr": trial.lr, "batch_size": trial.batch_size, "weight_decay": trial.weight_decay,
                  "scale": scale.scale, "params": scale.params, "seed": scale.seed, "variant": scale.variant}
        self.client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
        return run_id

    def retry_trial(self, record: str, retries: int) -> None:
        self.client.set_tag(record, "retries", str(retries))

    def end_trial(self, record: str, trial: TrialEnd) -> None:
        """Log the curve, tag the status and end the run, in a background thread (`flush` waits)."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-trials")
        self._writes.append(self._writer.submit(self._end_run, record, trial))

    def flush(self) -> None:
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def end_scale(self, scale: ScaleRecord, result: ScaleResult | None) -> None:
        """Give the parent run the best trial's hyperparameters and loss as its own, count its child
        runs by status, tag the law check (``law_broken``, ``law_check``) and end it FINISHED (see the
        module docstring for what a later, better trial changes); end it KILLED when `result` is None."""
        if result is None:
            self.client.set_terminated(scale.id, RunStatus.to_string(RunStatus.KILLED))
            return
        now = _now_ms()
        counts = self.recorded(scale)
        metrics = [Metric(f"trials_{status}", float(list(counts.values()).count(status)), now, 0)
                   for status in FINAL_STATUSES]
        tags = {}
        if result.law is not None:
            tags = {"law_broken": str(result.law.broken).lower(), "law_check": result.law.reason}
        if result.best_number is not None and result.best_loss is not None and result.best_params:
            step = len(self.client.get_metric_history(scale.id, "best_loss"))
            values = {"loss": result.best_loss, "best_loss": result.best_loss,
                      **{f"best_{key}": value for key, value in result.best_params.items()}}
            metrics += [Metric(key, float(value), now, step) for key, value in values.items()]
            tags["best_trial_number"] = str(result.best_number)
            if result.best_record:
                tags["best_run_id"] = result.best_record
            self._log_best_params(scale.id, result.best_number, result.best_params)
        self.client.log_batch(scale.id, metrics=metrics,
                              tags=[RunTag(key, value) for key, value in tags.items()])
        self.client.set_terminated(scale.id, RunStatus.to_string(RunStatus.FINISHED))

    def recorded(self, scale: ScaleRecord) -> dict[int, str]:
        """The scale's child runs by trial number (its parent found by its tags when `scale.id` is empty)."""
        parent = scale.id or self._parent_id(scale)
        if not parent:
            return {}
        return {int(run.data.tags.get("trial_number", -1)): run.data.tags.get("status", "running")
                for run in self._children(ScaleRecord(**{**scale.__dict__, "id": parent}))}

    def write_summary(self, recommendation: Recommendation, trials: pd.DataFrame,
                      plots: Sequence[Path]) -> str:
        return write_summary(self.tracking_uri, self.study, recommendation, trials, plots)

    def _parent_id(self, scale: ScaleRecord) -> str | None:
        found = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=(f"tags.kind = 'scale' and tags.variant = '{scale.variant}' "
                           f"and tags.scale = '{scale.scale}'"),
        )
        return found[0].info.run_id if found else None

    def _children(self, scale: ScaleRecord) -> list[Run]:
        return self.client.search_runs([self.experiment_id], max_results=_MAX_RUNS,
                                       filter_string=f"tags.mlflow.parentRunId = '{scale.id}'")

    def _end_run(self, run_id: str, trial: TrialEnd) -> None:
        now = _now_ms()
        curve = [Metric(key, float(point[key]), now, int(point["tokens"]))
                 for point in trial.curve for key in _CURVE_KEYS if key in point]
        tags = [RunTag("status", trial.status)]
        if trial.tokens_seen is not None:
            tags.append(RunTag("tokens_seen", str(trial.tokens_seen)))
        if trial.error is not None:
            tags.append(RunTag("error", trial.error[:_TAG_LIMIT]))
        self.client.log_batch(run_id, metrics=curve, tags=tags)  # one write: curve and tags together
        final = RunStatus.FAILED if trial.status == FAILED else RunStatus.FINISHED
        self.client.set_terminated(run_id, RunStatus.to_string(final))

    def _log_best_params(self, parent: str, number: int, best_params: Mapping[str, float]) -> None:
        """Log the best trial's hyperparameters as the parent's params once; tag them stale when a
        later best trial trained with other ones (params cannot change)."""
        values = {key: _param_text(key, best_params[key]) for key in HYPERPARAMETERS}
        logged = self.client.get_run(parent).data.params
        if not any(key in logged for key in HYPERPARAMETERS):
            self.client.log_batch(parent, params=[Param(key, value) for key, value in values.items()])
            self.client.set_tag(parent, "params_trial", str(number))
        elif any(logged.get(key) != value for key, value in values.items()):
            self.client.set_tag(parent, "params_stale", "true")


def _lost_a_creation_race(error: Exception) -> bool:
    """Whether `error` is another driver creating the store's tables or the experiment first."""
    if isinstance(error, MlflowException):
        return error.error_code == _ALREADY_EXISTS
    return isinstance(error, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError)


def _scale_description(scale: ScaleRecord) -> str:
    """A parent run's description (Markdown): what it stands for and where its params come from."""
    return (f"Variant `{scale.variant}` at scale `{scale.scale}`: N = {scale.params:,} parameters, "
            f"D = {scale.budget_tokens:,} tokens per trial, {scale.trials} trials (the nested runs). "
            "Once the scale is done, its params `lr`, `batch_size`, `weight_decay` and its metric `loss` "
            "are those of its best complete trial (tag `best_run_id`).")


def _trial_description(scale: ScaleRecord, number: int) -> str:
    """A child run's description (Markdown): which trial it is and how to read its charts."""
    return (f"Trial {number} of variant `{scale.variant}` at scale `{scale.scale}` (N = {scale.params:,} "
            f"parameters, budget D = {scale.budget_tokens:,} tokens). In its metric charts *step* is "
            "tokens seen: `loss` is the eval loss, `train_loss` the training loss, `lr` the scheduled "
            "learning rate.")


def _param_text(key: str, value: float) -> str:
    """A hyperparameter as its child runs' params write it (batch size as an integer)."""
    return str(int(value)) if key == "batch_size" else str(float(value))


def _now_ms() -> int:
    return int(time.time() * 1000)
