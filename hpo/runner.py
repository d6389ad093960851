"""Run a study: for each variant, each scale smallest first, one Ray Tune search.

Each (variant, scale) is one Optuna study named ``{study}/{variant}/{scale}``
in the study's Optuna storage, searched by `TokenOptunaSearch` (TPE) under
ASHA on tokens, with `TrialTracker` writing MLflow child runs under one
parent run. Trials run in Ray: a local runtime unless `address` (or
``RAY_ADDRESS``) names a cluster, whose workers must have ``hpo`` and the
study's model family installed.

Resuming is the default: `run_study` on a study that ran before first
repairs each Optuna study — a trial left RUNNING by a killed driver becomes
FAIL with user attribute ``status=interrupted``, its configuration is queued
to run again and its MLflow run is deleted, and a trial's MLflow run left
RUNNING after its trial finished is ended — then runs only the trials still
missing. A (variant, scale) whose planned trials all finished (complete,
pruned, diverged or failed) is skipped. TPE is seeded with the study's seed
plus the trials already in the Optuna study, so a resumed search does not
replay the same random suggestions.

A trial whose node or process died, or whose code raised, runs again up to
the study's ``retries`` times (Ray Tune's `FailureConfig`), from scratch, as
the same Optuna trial and MLflow run. Several drivers may share one study's
stores (PostgreSQL) when each runs its own variants; two drivers must not run
the same (variant, scale) at once: each would take the other's running trials
for interrupted ones. The Optuna store is opened before Ray starts, so one
that cannot be reached fails at once; the MLflow store opens (a new one runs
its schema migrations) while Ray starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from optuna.trial import FrozenTrial, TrialState
from ray import tune
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search import ConcurrencyLimiter

from hpo.scheduler import ProtectedASHA
from hpo.searcher import TokenOptunaSearch
from hpo.space import EXPLORE, PREDICTED, TrialParams, define_space, fixed_params, trial_params
from hpo.spec import StudySpec
from hpo.tracking import StudyTracker
from hpo.trainable import TrialJob, run_trial
from hpo.transfer import LawCheck, ScalePlan, check_law, full_plan, plan_scale
from hpo.trials import INTERRUPTED, LAW_BROKEN, PLAN, load_trials, optuna_storage, optuna_study_name

__all__ = ["ProgressCallback", "ScaleOutcome", "ScaleProgress", "StudyInterrupted", "StudyOutcome",
           "run_study", "start_ray"]

logger = logging.getLogger(__name__)

class StudyInterrupted(RuntimeError):
    """The run was stopped (Ctrl+C) before a (variant, scale) had all its
    trials; running the study again resumes it."""


@dataclass(frozen=True)
class ScaleProgress:
    """Where one (variant, scale) stands: trials `finished` of `planned`, and
    the best eval loss of a trial that completed its budget (None before any)."""

    variant: str
    scale: str
    finished: int
    planned: int
    best_loss: float | None


ProgressCallback = Callable[[ScaleProgress], None]
"""Called when a (variant, scale) starts, after each of its trials ends, and when it is done."""


@dataclass(frozen=True)
class ScaleOutcome:
    """How one (variant, scale) ended: trials `finished` of `planned`, `ran` of
    them in this call (0 when skipped), the best complete trial's loss and the
    `best_params` it trained with (``lr``, ``batch_size``, ``weight_decay``)."""

    variant: str
    scale: str
    planned: int
    finished: int
    ran: int
    best_loss: float | None
    best_params: TrialParams | None
    plan: ScalePlan | None = None
    law: LawCheck | None = None


@dataclass(frozen=True)
class StudyOutcome:
    """Every (variant, scale) of a `run_study` call, in the order they ran."""

    study: str
    scales: tuple[ScaleOutcome, ...]

    @property
    def ran(self) -> int:
        """Trials run by this call."""
        return sum(outcome.ran for outcome in self.scales)


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Start Ray unless it is running: connect to `address` (default
    ``$RAY_ADDRESS``), else start a new local runtime with `num_cpus` CPUs
    (default: all), even where another runtime runs on this machine. True
    when this call started it. A local runtime's dashboard, if Ray starts
    one at all, listens on 127.0.0.1 only.

    A local runtime's workers get the driver's own import path (its folders
    outside the Python installation), so a family named by import path that
    the driver can import, the trials can import too. On a cluster, install
    ``hpo`` and the family on every node instead.
    """
    # Ray's newer console output prints an experiment table even at verbose=0; the classic one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return False
    # "local": a runtime of its own, never one found running on this machine (Ray's default joins that).
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    local = address == "local"
    runtime_env = {"env_vars": {"PYTHONPATH": _driver_path()}} if local else None
    ray.init(address=address, num_cpus=num_cpus, runtime_env=runtime_env, log_to_driver=False,
             logging_level=logging.getLogger("ray").getEffectiveLevel(),
             include_dashboard=False, dashboard_host="127.0.0.1")
    return True


def _driver_path() -> str:
    """The driver's import path outside the Python installation (``$PYTHONPATH``
    included: Python put it on `sys.path`), as a PYTHONPATH."""
    installed = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    folders = [str(Path(entry or os.getcwd()).absolute()) for entry in sys.path]
    kept = [folder for folder in folders if Path(folder).is_dir() and not folder.startswith(installed)]
    return os.pathsep.join(dict.fromkeys(kept))


def run_study(
    spec: StudySpec,
    *,
    address: str | None = None,
    scales: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> StudyOutcome:
    """Run (or resume) `spec`: every variant, every scale smallest first.

    `scales` and `variants` restrict the run to those names (`ValueError` for
    an unknown one). Starts Ray with `start_ray(address)` unless it is
    running; a runtime started here is shut down at the end. Raises
    `StudyInterrupted` when Ctrl+C stopped the run (Ray Tune catches the
    first one and ends the search early; the next one raises KeyboardInterrupt).
    """
    chosen_variants = [spec.variant(name) for name in variants] if variants else list(spec.variants)
    chosen_scales = [scale for scale in spec.scales if scales is None or scale in scales]
    for scale in scales or ():
        spec.params(scale)  # raises ValueError naming the valid scales
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna_storage(spec.storage.optuna)  # a store that cannot be used fails before Ray starts
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-store") as pool:
        # A new MLflow store runs its schema migrations (seconds): done while Ray starts.
        opening = pool.submit(StudyTracker, spec.storage.mlflow, spec.name, spec.output_dir / "artifacts")
        started = start_ray(address)
    try:
        tracker = opening.result()
        outcomes = tuple(
            _run_scale(spec, variant.name, scale, storage, tracker, progress)
            for variant in chosen_variants for scale in chosen_scales
        )
    finally:
        if started:
            ray.shutdown()
    return StudyOutcome(spec.name, outcomes)


def _run_scale(spec: StudySpec, variant_name: str, scale: str, storage: optuna.storages.BaseStorage,
               tracker: StudyTracker, progress: ProgressCallback | None) -> ScaleOutcome:
    """Repair, then run the missing trials of one (variant, scale)."""
    name = optuna_study_name(spec.name, variant_name, scale)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    plan = _plan(spec, variant_name, scale, study, storage)
    planned = plan.trials
    scale_run = tracker.start_scale(variant_name, scale, params=spec.params(scale),
                                    budget_tokens=spec.tokens(scale), seed=spec.seed, trials=planned)
    tracker.log_plan(scale_run, plan)
    _repair(study, tracker)
    tracker.close_stale_runs(scale_run, {trial.number: trial for trial in _counted(study)})
    done = _finished(study)
    report = _Reporter(study, variant_name, scale, planned, progress)
    report.now()
    remaining = planned - done
    if remaining > 0:
        logger.info("%s: running %d of %d trials", name, remaining, planned)
        callbacks = [tracker.callback(scale_run, storage, name), report]
        _tuner(spec, variant_name, scale, plan, storage, study, remaining, callbacks).fit()
        if _finished(study) < planned:  # Tune returns normally after Ctrl+C (SIGINT) or SIGUSR1
            tracker.interrupt_scale(scale_run)
            raise StudyInterrupted(f"{name}: {_finished(study)} of {planned} trials finished before the run "
                                   "was interrupted; run the study again to resume")
    else:
        logger.info("%s: all %d trials done, skipped", name, planned)
    best = _best(study)
    best_params = None if best is None else trial_params(best)
    law = check_law(plan, _scale_trials(spec, variant_name, scale), seed=spec.seed)
    study.set_user_attr(LAW_BROKEN, law.broken)
    if law.broken:
        logger.warning("%s: %s", name, law.reason)
    tracker.finish_scale(scale_run, best, best_params, law)
    report.now()
    return ScaleOutcome(variant_name, scale, planned, _finished(study), _finished(study) - done,
                        None if best is None else best.value, best_params, plan, law)


def _plan(spec: StudySpec, variant_name: str, scale: str, study: optuna.Study,
          storage: optuna.storages.BaseStorage) -> ScalePlan:
    """The search plan of (variant, scale): the one stored with its Optuna study
    (a resumed scale keeps its plan), else made now and stored, its first and
    exploring trials enqueued."""
    if PLAN in study.user_attrs:
        return ScalePlan.from_dict(study.user_attrs[PLAN])
    space, trials = spec.variant(variant_name).space, spec.trials_per_scale[scale]
    if spec.search != "scale_aware":
        plan = full_plan(scale, space, trials, f"search: {spec.search}")
    else:
        smaller = spec.scales[:spec.scales.index(scale)]
        history = load_trials(spec, variants=[variant_name], scales=smaller)
        plan = plan_scale(history, scale=scale, params=spec.params(scale), tokens=spec.tokens(scale),
                          space=space, trials=trials, transfer=spec.transfer, seed=spec.seed,
                          law_broken=bool(smaller) and _law_broken(spec, variant_name, smaller[-1], storage))
    logger.info("%s: %s", study.study_name, plan.reason)
    if not study.trials:
        if plan.first is not None:
            study.enqueue_trial(fixed_params(plan.first, plan.space), user_attrs={"origin": PREDICTED})
        for setting in plan.explore:
            study.enqueue_trial(fixed_params(setting, space), user_attrs={"origin": EXPLORE})
    study.set_user_attr(PLAN, plan.to_dict())
    return plan


def _law_broken(spec: StudySpec, variant_name: str, scale: str, storage: optuna.storages.BaseStorage) -> bool:
    """Whether `scale` of the variant ran and broke the law its plan predicted."""
    try:
        name = optuna_study_name(spec.name, variant_name, scale)
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return False
    return bool(study.user_attrs.get(LAW_BROKEN, False))


def _scale_trials(spec: StudySpec, variant_name: str, scale: str) -> pd.DataFrame:
    return load_trials(spec, variants=[variant_name], scales=[scale])


def _tuner(spec: StudySpec, variant_name: str, scale: str, plan: ScalePlan,
           storage: optuna.storages.BaseStorage, study: optuna.Study, trials: int,
           callbacks: list[Callback]) -> tune.Tuner:
    """A Tuner running `trials` more trials of `study`: TPE under ASHA on tokens.

    TPE samples at random for its first third of the planned trials (Optuna's
    default of 10 would leave a small study random throughout). Its seed mixes
    the study's seed, the (variant, scale) and the trials already in the study,
    so scales do not replay one random sequence and a resumed run does not
    repeat the suggestions it already made.
    """
    variant = spec.variant(variant_name)
    budget = spec.tokens(scale)
    job = TrialJob(
        family=spec.family, family_options=dict(spec.family_options), scale=scale, params=spec.params(scale),
        budget_tokens=budget, eval_every_tokens=spec.fidelity.eval_every_tokens, seed=spec.seed,
        train=dict(variant.train),
    )
    seed = (spec.seed + zlib.crc32(study.study_name.encode()) + len(study.trials)) % 2**32
    startup = max(2, plan.trials // 3)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    searcher = TokenOptunaSearch(define_space(plan.space, variant.space), budget_tokens=budget,
                                 study_name=study.study_name, storage=storage, sampler=sampler)
    scheduler = ProtectedASHA(time_attr="tokens", metric="loss", mode="min", max_t=budget,
                              grace_period=spec.fidelity.grace_tokens,
                              reduction_factor=spec.fidelity.reduction_factor)
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, job=job), resources),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent),
            scheduler=scheduler, num_samples=trials, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{variant_name}.{scale}.{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(spec.output_dir / "ray"), callbacks=callbacks, verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
        ),
    )


def _repair(study: optuna.Study, tracker: StudyTracker) -> None:
    """Mark trials left RUNNING by a killed driver interrupted (FAIL), queue
    their configurations again and delete their MLflow runs."""
    storage = study._storage  # the public Study exposes no setter for a trial's user attributes
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        logger.warning("%s: trial %d was interrupted; its configuration runs again",
                       study.study_name, trial.number)
        storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                    "status", INTERRUPTED)
        study.tell(trial.number, state=TrialState.FAIL)
        origin = {"origin": trial.user_attrs["origin"]} if "origin" in trial.user_attrs else None
        study.enqueue_trial(trial.params, user_attrs=origin)
        if "run_id" in trial.user_attrs:
            tracker.delete_run(trial.user_attrs["run_id"])


def _counted(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards the plan: complete, pruned, or failed but not interrupted."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [trial for trial in study.get_trials(deepcopy=False, states=states)
            if trial.user_attrs.get("status") != INTERRUPTED]


def _finished(study: optuna.Study) -> int:
    """How many trials count towards the plan (see `_counted`)."""
    return len(_counted(study))


def _best(study: optuna.Study) -> FrozenTrial | None:
    """The complete (full-budget, not diverged) trial of lowest loss."""
    complete = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if trial.user_attrs.get("status", "complete") == "complete"]
    return min(complete, key=lambda trial: trial.value, default=None)


class _Reporter(Callback):
    """Tells a `ProgressCallback` how one (variant, scale) stands, after each trial ends."""

    def __init__(self, study: optuna.Study, variant: str, scale: str, planned: int,
                 progress: ProgressCallback | None) -> None:
        self.study, self.variant, self.scale, self.planned = study, variant, scale, planned
        self.progress = progress

    def now(self) -> None:
        """Report the current state."""
        if self.progress is None:
            return
        best = _best(self.study)
        self.progress(ScaleProgress(self.variant, self.scale, _finished(self.study), self.planned,
                                    None if best is None else best.value))

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks; a UI's callback may not pickle
        return {**self.__dict__, "progress": None}

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.now()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.now()
