"""`Cell`: one (variant, scale) of a run, from its repair to its outcome.

A cell owns what one (variant, scale) needs in the driver: its Optuna study
``{study}/{variant}/{scale}``, the `ScalePlan` it searches (stored with the
study, so a resumed cell keeps it), its MLflow parent run, and, while it has
trials left, its searcher (`TokenOptunaSearch` with the sampler of the
study's search strategy), the strategy's scheduler (ASHA on tokens) and its
Ray Tune callbacks (`TrialRecorder`, and progress). `hpo.run.ladder` routes
each trial of the run's one Tuner to its cell.

`Cell.open` repairs what a killed driver left: a trial left RUNNING becomes
FAIL with user attribute ``status=interrupted``, its configuration is queued
to run again and its MLflow run is deleted; a trial's MLflow run left RUNNING
after its trial finished is ended. A cell whose planned trials all finished
(complete, pruned, diverged or failed) has nothing left to suggest.
`Cell.close` checks the law the plan predicted and writes the scale's best
trial to its parent run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from hpo.run.trainable import TrialJob
from hpo.run.trial_recorder import TrialRecorder
from hpo.search.plan import LawCheck, ScalePlan
from hpo.search.sampling import TrialParams, define_space, fixed_params, trial_params
from hpo.search.scheduler import rung_tokens
from hpo.search.searcher import TokenOptunaSearch
from hpo.search.strategy import ScaleToPlan
from hpo.store.optuna_store import LAW_BROKEN, PLAN, finished_status, optuna_study_name
from hpo.store.tracker import ScaleRecord, ScaleResult, Tracker, TrialEnd
from hpo.store.trial_table import load_curves, load_trials
from hpo.study.spec import StudySpec
from hpo.vocab import COMPLETE, FAILED, INTERRUPTED, FinalStatus

__all__ = ["Cell", "ProgressCallback", "ScaleOutcome", "ScaleProgress"]

logger = logging.getLogger(__name__)


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
    `best_params` it trained with (``lr``, ``batch_size``, ``weight_decay``);
    `failed` of the finished trials failed; `first_error` is the error line of the
    first trial that failed in this call (the last line of its traceback)."""

    variant: str
    scale: str
    planned: int
    finished: int
    ran: int
    best_loss: float | None
    best_params: TrialParams | None
    plan: ScalePlan | None = None
    law: LawCheck | None = None
    failed: int = 0
    first_error: str | None = None


class Cell:
    """One (variant, scale) of a run: `open`, then its trials (`suggest` and
    the routed searcher, scheduler and callbacks), then `close`."""

    def __init__(self, spec: StudySpec, variant: str, scale: str, storage: optuna.storages.BaseStorage,
                 tracker: Tracker, progress: ProgressCallback | None) -> None:
        self.spec, self.variant, self.scale = spec, variant, scale
        self.name = optuna_study_name(spec.name, variant, scale)
        self.storage, self.tracker, self.progress = storage, tracker, progress
        self.study: optuna.Study | None = None
        self.plan: ScalePlan | None = None
        self.record: ScaleRecord | None = None
        self.searcher: TokenOptunaSearch | None = None
        self.scheduler: TrialScheduler | None = None
        self.recorder: TrialRecorder | None = None
        self.callbacks: list[Callback] = []
        self.done_before = 0
        self.to_suggest = 0
        self.outcome: ScaleOutcome | None = None
        # What the progress callback was last told: the counted trials' numbers and the best loss.
        self._counted_numbers: set[int] = set()
        self._best_loss: float | None = None
        self._study_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.study is not None

    @property
    def planned(self) -> int:
        assert self.plan is not None, "open the cell first"
        return self.plan.trials

    def finished(self) -> int:
        """Trials that count towards the plan (see `_counted`)."""
        assert self.study is not None, "open the cell first"
        return len(_counted(self.study.get_trials(deepcopy=False)))

    def is_done(self) -> bool:
        """Every planned trial finished (none is left to suggest or running)."""
        return self.is_open and self.to_suggest == 0 and self.finished() >= self.planned

    def job(self) -> TrialJob:
        """What each trial of this cell trains (the same before and after `open`)."""
        fidelity, budget = self.spec.fidelity, self.spec.tokens(self.scale)
        return TrialJob(
            family=self.spec.family, family_options=dict(self.spec.family_options), scale=self.scale,
            params=self.spec.params(self.scale), budget_tokens=budget,
            eval_every_tokens=fidelity.eval_every_tokens, seed=self.spec.seed,
            rung_tokens=rung_tokens(fidelity.grace_tokens, budget, fidelity.reduction_factor),
            train=dict(self.spec.variant(self.variant).train),
        )

    def scale_record(self) -> ScaleRecord:
        """What the tracker records of this (variant, scale); its `id` empty until the cell opens."""
        spec = self.spec
        planned = self.plan.trials if self.plan is not None else spec.trials_per_scale[self.scale]
        return ScaleRecord(spec.name, self.variant, self.scale, params=spec.params(self.scale),
                           budget_tokens=spec.tokens(self.scale), seed=spec.seed, trials=planned,
                           id="" if self.record is None else self.record.id)

    def open(self) -> None:
        """Load or create the Optuna study and its plan, start the MLflow parent
        run, repair what a killed driver left, and set up the search of the
        trials still missing."""
        spec = self.spec
        self.study = optuna.create_study(study_name=self.name, storage=self.storage, direction="minimize",
                                         load_if_exists=True)
        self.plan = self._load_or_make_plan()
        self.record = self.tracker.start_scale(self.scale_record(), self.plan)
        self._repair()
        trials = self.study.get_trials(deepcopy=False)
        counted = _counted(trials)
        self.tracker.reconcile(self.record, {trial.number: _trial_end(trial) for trial in counted})
        self.done_before = len(counted)
        self.to_suggest = max(0, self.planned - self.done_before)
        self._report(trials)
        if self.to_suggest == 0:
            logger.info("%s: all %d trials done, skipped", self.name, self.planned)
            return
        logger.info("%s: running %d of %d trials", self.name, self.to_suggest, self.planned)
        self.searcher = self._searcher()
        self.scheduler = spec.search.scheduler(budget_tokens=spec.tokens(self.scale),
                                               grace_tokens=spec.fidelity.grace_tokens,
                                               reduction_factor=spec.fidelity.reduction_factor)
        self.recorder = TrialRecorder(self.tracker, self.record, self.storage, self.name)
        self.callbacks = [self.recorder, _Reporter(self)]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's configuration, or None when the cell has suggested all its trials."""
        if self.to_suggest == 0 or self.searcher is None:
            return None
        config = self.searcher.suggest(trial_id)
        if config is not None:
            self.to_suggest -= 1
        return config

    def close(self) -> ScaleOutcome:
        """Check the plan's law against the scale's trials, log the best trial to
        the parent run, and return the outcome."""
        assert self.study is not None and self.plan is not None and self.record is not None
        self.tracker.flush()
        trials = self.study.get_trials(deepcopy=False)
        best = _best(trials)
        best_params = None if best is None else trial_params(best)
        rows = load_trials(self.spec, variants=[self.variant], scales=[self.scale], storage=self.storage)
        law = self.spec.search.check(self.plan, rows, seed=self.spec.seed)
        self.study.set_user_attr(LAW_BROKEN, law.broken)
        if law.broken:
            logger.warning("%s: %s", self.name, law.reason)
        self.tracker.end_scale(self.record, ScaleResult(
            None if best is None else best.number, None if best is None else best.value, best_params,
            None if best is None else best.user_attrs.get("run_id"), law))
        self._report(trials)
        counted = _counted(trials)
        failed = sum(finished_status(trial) == FAILED for trial in counted)
        errors = {} if self.recorder is None else self.recorder.errors
        self.outcome = ScaleOutcome(self.variant, self.scale, self.planned, len(counted),
                                    len(counted) - self.done_before, None if best is None else best.value,
                                    best_params, self.plan, law, failed,
                                    errors[min(errors)] if errors else None)
        return self.outcome

    def interrupt(self) -> None:
        """End the parent run of a cell the run stopped before it finished."""
        self.tracker.flush()
        if self.record is not None:
            self.tracker.end_scale(self.record, None)

    def trial_ended(self, number: int) -> None:
        """Tell the progress callback how the cell stands now that trial `number` has ended and been told
        to Optuna. Reads that one trial: reading them all (and Optuna's cache reads every running trial
        again) after each trial made the driver's cost per trial grow with the trials of the cell."""
        if self.progress is None or self.study is None:
            return
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(self.name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        trial = self.storage.get_trial(trial_id)
        self._count([trial])
        self.progress(ScaleProgress(self.variant, self.scale, len(self._counted_numbers), self.planned,
                                    self._best_loss))

    def _report(self, trials: Sequence[FrozenTrial]) -> None:
        if self.progress is None:
            return
        self._counted_numbers, self._best_loss = set(), None
        self._count(trials)
        self.progress(ScaleProgress(self.variant, self.scale, len(self._counted_numbers), self.planned,
                                    self._best_loss))

    def _count(self, trials: Sequence[FrozenTrial]) -> None:
        """Add `trials` to what the progress callback is told: the counted ones, the best loss."""
        self._counted_numbers.update(trial.number for trial in _counted(trials))
        best = _best(trials)
        if best is not None and (self._best_loss is None or cast(float, best.value) < self._best_loss):
            self._best_loss = best.value

    def _load_or_make_plan(self) -> ScalePlan:
        """The plan stored with the Optuna study (a resumed scale keeps its plan), else one made now and
        stored; then its listed trials that are not in the study yet are enqueued."""
        assert self.study is not None
        plan = self._load_plan() or self._make_plan()
        self._enqueue_missing(plan)
        return plan

    def _load_plan(self) -> ScalePlan | None:
        assert self.study is not None
        stored = self.study.user_attrs.get(PLAN)
        return None if stored is None else ScalePlan.from_dict(stored)

    def _make_plan(self) -> ScalePlan:
        """The strategy's plan of this scale, stored with the Optuna study before any of its trials is
        enqueued (`_enqueue_missing` completes an enqueue a killed driver left half done)."""
        assert self.study is not None
        study, spec = self.study, self.spec
        smaller = spec.scales[:spec.scales.index(self.scale)] if spec.search.plans_from_smaller_scales else []
        plan = spec.search.plan(ScaleToPlan(
            name=self.name, scale=self.scale, params=spec.params(self.scale), tokens=spec.tokens(self.scale),
            space=spec.variant(self.variant).space, trials=spec.trials_per_scale[self.scale],
            history=load_trials(spec, variants=[self.variant], scales=smaller, storage=self.storage),
            previous_law_broken=bool(smaller) and self._law_broken(smaller[-1]),
            cost_ratio=spec.cost_ratio(self.scale), seed=spec.seed,
            curves=load_curves(spec, variants=[self.variant], scales=smaller, storage=self.storage)))
        logger.info("%s: %s", self.name, plan.reason)
        study.set_user_attr(PLAN, plan.to_dict())
        return plan

    def _enqueue_missing(self, plan: ScalePlan) -> None:
        """Enqueue the trials `plan` lists beyond those the study holds already. Trials are enqueued in
        the plan's order, so the study holds a prefix of the list: its listed trials that were not
        interrupted (an interrupted one's copy, queued again, stands for it)."""
        assert self.study is not None
        listed = plan.enqueued()
        origins = {origin for origin, _, _ in listed}
        held = sum(trial.user_attrs.get("origin") in origins and trial.user_attrs.get("status") != INTERRUPTED
                   for trial in self.study.get_trials(deepcopy=False))
        for origin, setting, within in listed[held:]:
            seed = {"seed": int(setting["seed"])} if "seed" in setting else {}
            self.study.enqueue_trial(fixed_params(setting, within), user_attrs={"origin": origin, **seed})

    def _law_broken(self, scale: str) -> bool:
        """Whether `scale` of this variant ran and broke the law its plan predicted."""
        try:
            study = optuna.load_study(study_name=optuna_study_name(self.spec.name, self.variant, scale),
                                      storage=self.storage)
        except KeyError:
            return False
        return bool(study.user_attrs.get(LAW_BROKEN, False))

    def _searcher(self) -> TokenOptunaSearch:
        """The strategy's sampler over the plan's space (trials enqueued to explore sample the full one)."""
        assert self.study is not None and self.plan is not None
        sampler = self.spec.search.sampler(self.plan, name=self.name, stored_trials=len(self.study.trials),
                                           seed=self.spec.seed)
        space = define_space(self.plan.space, self.spec.variant(self.variant).space)
        return TokenOptunaSearch(space, budget_tokens=self.spec.tokens(self.scale), study_name=self.name,
                                 storage=self.storage, sampler=sampler)

    def _repair(self) -> None:
        """Mark trials left RUNNING by a killed driver interrupted (FAIL) and queue their
        configurations again (`Tracker.reconcile` then deletes their records)."""
        assert self.study is not None
        study, storage = self.study, self.storage
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            logger.warning("%s: trial %d was interrupted; its configuration runs again",
                           study.study_name, trial.number)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, "status", INTERRUPTED)
            study.tell(trial.number, state=TrialState.FAIL)
            origin = {"origin": trial.user_attrs["origin"]} if "origin" in trial.user_attrs else None
            study.enqueue_trial(trial.params, user_attrs=origin)


def _counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The `trials` that count towards the plan: complete, pruned, or failed but not interrupted."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [trial for trial in trials
            if trial.state in states and trial.user_attrs.get("status") != INTERRUPTED]


def _trial_end(trial: FrozenTrial) -> TrialEnd:
    """How a finished trial ended, as Optuna holds it: its status and its eval-loss curve (step = tokens)."""
    curve = [{"tokens": float(step), "loss": float(loss)}
             for step, loss in sorted(trial.intermediate_values.items())]
    tokens_seen = trial.user_attrs.get("tokens_seen")
    status = cast(FinalStatus, finished_status(trial))  # a counted trial was not interrupted
    return TrialEnd(status, None if tokens_seen is None else int(tokens_seen), curve)


def _best(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The complete (full-budget, not diverged) trial of lowest loss among `trials`."""
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE
                and trial.user_attrs.get("status", COMPLETE) == COMPLETE]
    return min(complete, key=lambda trial: cast(float, trial.value), default=None)


class _Reporter(Callback):
    """Reports the cell's progress after each of its trials ends (Ray Tune tells the searcher first,
    so the trial's final state is in the Optuna store)."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.cell.trial_ended(int(trial.config["trial_number"]))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.cell.trial_ended(int(trial.config["trial_number"]))
