"""Every registered tracker through one conformance suite: the calls the runner makes, in its order.

A tracker finds a scale's record again when a study resumes, records each
trial with its status, keeps one record for a trial that runs again after an
error, reconciles its records with the trials that count (a killed driver's
leftovers), closes a scale with or without a result, and records a summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpo.analysis import extrapolate
from hpo.evaluation.synthetic import crossing_variants, make_synthetic_trials
from hpo.search.plan import LawCheck, full_plan
from hpo.store.tracker import TRACKERS, ScaleRecord, ScaleResult, Tracker, TrialEnd, TrialStart
from hpo.study.space import LogRange, SearchSpace

URIS: dict[str, Callable[[Path], str]] = {"mlflow": lambda folder: f"sqlite:///{folder / 'mlflow.db'}"}
"""How each tracker's tests name a fresh store in a folder."""
PLAN = full_plan("w8", SearchSpace(lr=LogRange(1e-4, 1e-2), batch_size=16, weight_decay=0.0), 3, "search")
SCALE = ScaleRecord("conformance", "default", "w8", params=1_000, budget_tokens=3_000, seed=0, trials=3)
CURVE = [{"tokens": 1_000.0, "loss": 0.9, "train_loss": 1.0, "lr": 1e-3}, {"tokens": 3_000.0, "loss": 0.7}]


def test_every_registered_tracker_has_a_store_for_these_tests() -> None:
    assert set(TRACKERS.names()) <= set(URIS)


@pytest.fixture(params=TRACKERS.names())
def tracker(request: pytest.FixtureRequest, tmp_path: Path) -> Tracker:
    return TRACKERS.get(request.param)(URIS[request.param](tmp_path), "conformance", tmp_path / "artifacts")


def test_a_resumed_scale_finds_its_record_again(tracker: Tracker) -> None:
    first = tracker.start_scale(SCALE, PLAN)
    assert first.id and tracker.start_scale(SCALE, PLAN).id == first.id


def test_each_trial_is_recorded_once_with_its_status(tracker: Tracker) -> None:
    scale = tracker.start_scale(SCALE, PLAN)
    records = [tracker.start_trial(scale, TrialStart(number, 1e-3, 16, 0.0)) for number in range(3)]
    tracker.retry_trial(records[1], 1)
    tracker.end_trial(records[0], TrialEnd("complete", 3_000, CURVE))
    tracker.end_trial(records[1], TrialEnd("pruned", 1_000, CURVE[:1]))
    tracker.flush()
    assert len(set(records)) == 3
    assert tracker.recorded(scale) == {0: "complete", 1: "pruned", 2: "running"}


def test_reconcile_keeps_the_records_of_the_trials_that_count(tracker: Tracker) -> None:
    scale = tracker.start_scale(SCALE, PLAN)
    records = [tracker.start_trial(scale, TrialStart(number, 1e-3, 16, 0.0)) for number in range(3)]
    tracker.end_trial(records[0], TrialEnd("complete", 3_000, CURVE))
    tracker.flush()
    # Killed: trial 1 was interrupted (it runs again as a new trial); trial 2 was told, its record left open.
    tracker.reconcile(scale, {0: TrialEnd("complete", 3_000, CURVE), 2: TrialEnd("failed", 1_000, CURVE[:1])})
    assert tracker.recorded(scale) == {0: "complete", 2: "failed"}


def test_a_scale_closes_with_its_result_or_as_interrupted(tracker: Tracker) -> None:
    scale = tracker.start_scale(SCALE, PLAN)
    record = tracker.start_trial(scale, TrialStart(0, 1e-3, 16, 0.0))
    tracker.end_trial(record, TrialEnd("complete", 3_000, CURVE))
    tracker.flush()
    tracker.end_scale(scale, ScaleResult(0, 0.7, {"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0}, record,
                                         LawCheck(False, "full search: nothing to check")))
    again = tracker.start_scale(SCALE, PLAN)
    tracker.end_scale(again, None)
    assert tracker.recorded(again) == {0: "complete"}


def test_a_summary_is_recorded(tracker: Tracker, tmp_path: Path) -> None:
    trials = make_synthetic_trials(crossing_variants(3e8)[:1], [1e7, 1e8, 1e9], trials_per_cell=12)
    assert tracker.write_summary(extrapolate(trials, target_params=1e10, n_bootstrap=10), trials, [])
