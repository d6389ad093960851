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
  trial to the next (`TrialTracker.flush` waits for it);
* one study-level *summary* run (tag ``kind=summary``) with the analysis's
  answer, written by `hpo.store.mlflow_summary` (``hpo analyze``).

`TrialTracker`, a Ray Tune callback, writes the child runs and records each
one's ``run_id`` as a user attribute of its Optuna trial (still RUNNING then),
so the trial table can link both stores. A trial that Ray Tune runs again
after an error (the study's ``retries``) keeps its one child run: the retry
count goes to its tag and to the Optuna trial's user attribute ``retries``,
and its curve, like Optuna's, keeps the first point at each step (a retry
trains from scratch and reports the steps already seen again).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from ray.tune import Callback
from ray.tune.experiment import Trial

from hpo.run.trainable import curve_points, trial_status
from hpo.search.scale_aware import LawCheck, ScalePlan
from hpo.store.mlflow_template import prepare_sqlite_store
from hpo.study.checks import without_password

__all__ = ["TRIAL_STATUSES", "ScaleRun", "StudyTracker", "TrialTracker", "run_name", "scale_run_name"]

logger = logging.getLogger(__name__)

_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
_CURVE_KEYS = ("loss", "train_loss", "lr")
"""Result keys logged as each child run's curve, at step = tokens seen."""
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
"""The experiment tag that tells MLflow's UI what kind of work an experiment holds."""
_DESCRIPTION = "mlflow.note.content"
"""The tag MLflow's UI shows (as Markdown) as a run's description."""
TRIAL_STATUSES = ("complete", "pruned", "diverged", "failed")
"""Values of a child run's ``status`` tag."""
_BEST_KEYS = ("lr", "batch_size", "weight_decay")
"""The best trial's hyperparameters, logged as its parent run's own params."""


def scale_run_name(scale: str, variant: str) -> str:
    """A parent run's display name, e.g. ``100k · no_wd``."""
    return f"{scale} · {variant}"


def run_name(scale: str, lr: float, batch_size: int, weight_decay: float) -> str:
    """A child run's display name, e.g. ``100k · lr=3.2e-3 bs=64 wd=0.1``."""
    return f"{scale} · lr={_short(lr)} bs={batch_size} wd={_short(weight_decay)}"


def _short(value: float) -> str:
    """Two significant digits, exponent without padding: 0.0032 → ``3.2e-3``, 0.1 → ``0.1``."""
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.2g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class ScaleRun:
    """What every child run of one (variant, scale) shares: the parent run,
    the scale's N (`params`) and token budget D (`budget_tokens`), the trials' `seed`."""

    study: str
    variant: str
    scale: str
    params: int
    budget_tokens: int
    seed: int
    experiment_id: str
    parent_run_id: str


class StudyTracker:
    """The MLflow experiment of study `study` at `tracking_uri`, created with
    its artifacts in `artifact_dir` if it does not exist.

    Several drivers may open one store at once (a team's PostgreSQL): the one
    that loses a race to create the store's tables or the experiment retries,
    up to `attempts` tries 1 s apart, and then finds what the other created.
    """

    def __init__(self, tracking_uri: str, study: str, artifact_dir: Path, *, attempts: int = 10) -> None:
        self.tracking_uri = tracking_uri
        self.study = study
        prepare_sqlite_store(tracking_uri)
        for attempt in range(1, attempts + 1):
            try:  # the client creates the store's tables, if missing
                self.client = MlflowClient(tracking_uri)
                self.experiment_id = self._experiment_id(artifact_dir)
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, MlflowException) as error:
                lost_race = not isinstance(error, MlflowException) or error.error_code == _ALREADY_EXISTS
                if not lost_race or attempt == attempts:
                    raise
                logger.info("MLflow store or experiment created concurrently (%s); try %d of %d",
                            type(error).__name__, attempt + 1, attempts)
                time.sleep(1.0)
        # The UI then treats the experiment as model training (runs, params, metric charts), not GenAI traces.
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)

    def _experiment_id(self, artifact_dir: Path) -> str:
        experiment = self.client.get_experiment_by_name(self.study)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            self.study, artifact_location=artifact_dir.absolute().as_uri(), tags={"study": self.study})

    def start_scale(self, variant: str, scale: str, *, params: int, budget_tokens: int,
                    seed: int, trials: int) -> ScaleRun:
        """The parent run of (`variant`, `scale`), found by its tags or created, set RUNNING."""
        found = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=(f"tags.kind = 'scale' and tags.variant = '{variant}' "
                           f"and tags.scale = '{scale}'"),
        )
        if found:  # renamed too: stores written before the `{scale} · {variant}` names get them
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING),
                                   name=scale_run_name(scale, variant))
        else:
            tags = {"kind": "scale", "study": self.study, "variant": variant, "scale": scale,
                    "N": str(params), "params": str(params), "tokens": str(budget_tokens),
                    _DESCRIPTION: _scale_description(variant, scale, params, budget_tokens, trials)}
            run = self.client.create_run(self.experiment_id, tags=tags,
                                         run_name=scale_run_name(scale, variant))
            run_id = run.info.run_id
            values = {"variant": variant, "scale": scale, "params": params, "tokens": budget_tokens,
                      "trials": trials, "seed": seed}
            self.client.log_batch(run_id, params=[Param(key, str(value)) for key, value in values.items()])
        return ScaleRun(self.study, variant, scale, params, budget_tokens, seed, self.experiment_id, run_id)

    def log_plan(self, scale_run: ScaleRun, plan: ScalePlan) -> None:
        """Tag the parent run with how the scale is searched (`hpo.search.scale_aware`):
        ``search`` (transferred / full), ``search_reason``, the searched space."""
        tags = {"search": "transferred" if plan.transferred else "full", "search_reason": plan.reason,
                "search_trials": str(plan.trials), "search_space": json.dumps(plan.to_dict()["space"])}
        for key, value in tags.items():
            self.client.set_tag(scale_run.parent_run_id, key, value)

    def finish_scale(self, scale_run: ScaleRun, best: optuna.trial.FrozenTrial | None,
                     best_params: Mapping[str, float] | None, law: LawCheck | None = None) -> None:
        """Give the parent run the best trial's hyperparameters (`best_params`:
        lr, batch_size, weight_decay) and loss as its own, count its child
        runs by status, tag the law check (``law_broken``, ``law_check``), and
        end it FINISHED (see the module docstring for what a later, better
        trial changes)."""
        parent = scale_run.parent_run_id
        now = _now_ms()
        counts = self._status_counts(scale_run)
        metrics = [Metric(f"trials_{status}", float(counts.get(status, 0)), now, 0)
                   for status in TRIAL_STATUSES]
        if law is not None:
            self.client.set_tag(parent, "law_broken", str(law.broken).lower())
            self.client.set_tag(parent, "law_check", law.reason)
        if best is not None and best.value is not None and best_params is not None:
            step = len(self.client.get_metric_history(parent, "best_loss"))
            values = {"loss": best.value, "best_loss": best.value,
                      **{f"best_{key}": value for key, value in best_params.items()}}
            metrics += [Metric(key, float(value), now, step) for key, value in values.items()]
            self.client.set_tag(parent, "best_trial_number", str(best.number))
            if "run_id" in best.user_attrs:
                self.client.set_tag(parent, "best_run_id", best.user_attrs["run_id"])
            self._log_best_params(parent, best.number, best_params)
        self.client.log_batch(parent, metrics=metrics)
        self.client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))

    def _log_best_params(self, parent: str, number: int, best_params: Mapping[str, float]) -> None:
        """Log the best trial's hyperparameters as the parent's params once; tag them stale when a
        later best trial trained with other ones (params cannot change)."""
        values = {key: _param_text(key, best_params[key]) for key in _BEST_KEYS}
        logged = self.client.get_run(parent).data.params
        if not any(key in logged for key in _BEST_KEYS):
            self.client.log_batch(parent, params=[Param(key, value) for key, value in values.items()])
            self.client.set_tag(parent, "params_trial", str(number))
        elif any(logged.get(key) != value for key, value in values.items()):
            self.client.set_tag(parent, "params_stale", "true")

    def _status_counts(self, scale_run: ScaleRun) -> dict[str, int]:
        """How many child runs of `scale_run` have each ``status`` tag."""
        runs = self.client.search_runs(
            [scale_run.experiment_id], max_results=10_000,
            filter_string=f"tags.mlflow.parentRunId = '{scale_run.parent_run_id}'",
        )
        counts: dict[str, int] = {}
        for run in runs:
            status = run.data.tags.get("status")
            if status is not None:
                counts[status] = counts.get(status, 0) + 1
        return counts

    def interrupt_scale(self, scale_run: ScaleRun) -> None:
        """End the parent run KILLED: the run was stopped before the scale was done."""
        self.client.set_terminated(scale_run.parent_run_id, RunStatus.to_string(RunStatus.KILLED))

    def delete_run(self, run_id: str) -> None:
        """Delete a child run (of a trial interrupted by a killed driver)."""
        self.client.delete_run(run_id)

    def close_stale_runs(self, scale_run: ScaleRun, finished: Mapping[int, optuna.trial.FrozenTrial]) -> None:
        """End the child runs a killed driver left RUNNING under `scale_run`.

        A driver killed between Optuna's ``tell`` and the end of the trial's
        MLflow run leaves that run RUNNING although its trial counts: it gets
        the trial's status and its eval-loss curve from Optuna's intermediate
        values (step = tokens) and ends FINISHED (FAILED for a failed trial).
        A RUNNING run whose trial is not in `finished` (trial number → trial
        that counts towards the plan) belongs to an interrupted trial, run
        again on resume, and is deleted.
        """
        stale = self.client.search_runs(
            [scale_run.experiment_id], max_results=10_000,
            filter_string=(f"tags.mlflow.parentRunId = '{scale_run.parent_run_id}' "
                           "and attributes.status = 'RUNNING'"),
        )
        for run in stale:
            trial = finished.get(int(run.data.tags.get("trial_number", -1)))
            if trial is None:
                self.client.delete_run(run.info.run_id)
                continue
            status = trial.user_attrs.get("status", "complete")
            if not self.client.get_metric_history(run.info.run_id, "loss"):
                now = _now_ms()
                self.client.log_batch(run.info.run_id, metrics=[
                    Metric("loss", float(value), now, int(step))
                    for step, value in sorted(trial.intermediate_values.items())])
            self.client.set_tag(run.info.run_id, "status", status)
            if "tokens_seen" in trial.user_attrs:
                self.client.set_tag(run.info.run_id, "tokens_seen", str(trial.user_attrs["tokens_seen"]))
            final = RunStatus.FAILED if status == "failed" else RunStatus.FINISHED
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(final))

    def callback(self, scale_run: ScaleRun, storage: optuna.storages.BaseStorage,
                 study_name: str) -> TrialTracker:
        """The Ray Tune callback that tracks the trials of `scale_run` (Optuna study `study_name`)."""
        return TrialTracker(self.tracking_uri, scale_run, storage, study_name)


class TrialTracker(Callback):
    """Ray Tune callback: one MLflow child run per trial of one (variant, scale),
    its id stored as the Optuna trial's user attribute ``run_id``."""

    def __init__(self, tracking_uri: str, scale_run: ScaleRun, storage: optuna.storages.BaseStorage,
                 study_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.scale_run = scale_run
        self.storage = storage
        self.study_name = study_name
        self._client: MlflowClient | None = None
        self._run_ids: dict[str, str] = {}
        self._curves: dict[str, list[Metric]] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into the output folder
        return {**self.__dict__, "_client": None, "_writer": None, "_writes": [],
                "tracking_uri": without_password(self.tracking_uri)}

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, made on first use (it does not pickle)."""
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Create the trial's child run and link it to its Optuna trial (a retry keeps its run)."""
        if trial.trial_id in self._run_ids:
            return
        s, config = self.scale_run, trial.config
        number, lr = int(config["trial_number"]), float(config["lr"])
        batch_size, weight_decay = int(config["batch_size"]), float(config["weight_decay"])
        tags = {"mlflow.parentRunId": s.parent_run_id, "kind": "trial", "study": s.study,
                "variant": s.variant, "scale": s.scale, "trial_number": str(number), "N": str(s.params),
                "params": str(s.params),
                _DESCRIPTION: _trial_description(s, number)}
        run = self.client.create_run(s.experiment_id, tags=tags,
                                     run_name=run_name(s.scale, lr, batch_size, weight_decay))
        run_id = run.info.run_id
        params = {"lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "scale": s.scale,
                  "params": s.params, "seed": s.seed, "variant": s.variant}
        self.client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
        self._run_ids[trial.trial_id] = run_id
        self._curves[trial.trial_id] = []
        study_id = self.storage.get_study_id_from_name(self.study_name)
        optuna_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(optuna_id, "run_id", run_id)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: Mapping[str, Any],
                        **info: Any) -> None:
        """Buffer the points of the trial's curve that the result carries (a
        diverged trial's penalty is not a curve point)."""
        curve = self._curves.get(trial.trial_id)
        if curve is None:
            return
        now = _now_ms()
        for point in curve_points(result):
            step = int(point["tokens"])
            if curve and step <= curve[-1].step:  # a retry reporting a step its first attempt reported
                continue
            curve.extend(Metric(key, float(point[key]), now, step) for key in _CURVE_KEYS if key in point)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Count a retry of a trial that errored: tag its run and its Optuna trial with ``retries``."""
        run_id = self._run_ids.get(trial.trial_id)
        if run_id is None:
            return
        number, retries = int(trial.config["trial_number"]), trial.run_metadata.num_failures
        logger.warning("%s: trial %d errored (%s); retry %d of %d", self.study_name, number,
                       trial.error_file or "no error file", retries, trial.max_failures)
        self.client.set_tag(run_id, "retries", str(retries))
        study_id = self.storage.get_study_id_from_name(self.study_name)
        optuna_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(optuna_id, "retries", retries)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Log the curve, tag the status and end the run FINISHED."""
        self._finish(trial, trial_status(trial.last_result, self.scale_run.budget_tokens))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Log the curve so far, tag ``status=failed`` and end the run FAILED."""
        self._finish(trial, "failed")

    def _finish(self, trial: Trial, status: str) -> None:
        run_id = self._run_ids.pop(trial.trial_id, None)
        if run_id is None:
            return
        curve = self._curves.pop(trial.trial_id)
        tokens_seen = (trial.last_result or {}).get("tokens")
        tags = [RunTag("status", status)]
        if tokens_seen is not None:
            tags.append(RunTag("tokens_seen", str(tokens_seen)))
        final = RunStatus.FAILED if status == "failed" else RunStatus.FINISHED
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-trials")
        self._writes.append(self._writer.submit(self._end_run, run_id, curve, tags, final))

    def _end_run(self, run_id: str, curve: list[Metric], tags: list[RunTag], final: int) -> None:
        self.client.log_batch(run_id, metrics=curve, tags=tags)  # one write: curve and tags together
        self.client.set_terminated(run_id, RunStatus.to_string(final))

    def flush(self) -> None:
        """Wait until the child runs of the trials that ended are written; raise the first write's error."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()


def _scale_description(variant: str, scale: str, params: int, budget_tokens: int, trials: int) -> str:
    """A parent run's description (Markdown): what it stands for and where its params come from."""
    return (f"Variant `{variant}` at scale `{scale}`: N = {params:,} parameters, D = {budget_tokens:,} "
            f"tokens per trial, {trials} trials (the nested runs). Once the scale is done, its params "
            "`lr`, `batch_size`, `weight_decay` and its metric `loss` are those of its best complete trial "
            "(tag `best_run_id`).")


def _trial_description(scale_run: ScaleRun, number: int) -> str:
    """A child run's description (Markdown): which trial it is and how to read its charts."""
    s = scale_run
    return (f"Trial {number} of variant `{s.variant}` at scale `{s.scale}` (N = {s.params:,} parameters, "
            f"budget D = {s.budget_tokens:,} tokens). In its metric charts *step* is tokens seen: `loss` is "
            "the eval loss, `train_loss` the training loss, `lr` the scheduled learning rate.")


def _param_text(key: str, value: float) -> str:
    """A hyperparameter as its child runs' params write it (batch size as an integer)."""
    return str(int(value)) if key == "batch_size" else str(float(value))


def _now_ms() -> int:
    return int(time.time() * 1000)
