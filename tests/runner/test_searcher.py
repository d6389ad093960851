"""TokenOptunaSearch in a real study: tokens as the step, pruned, diverged and failed trials."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from runner_families import FAILING_BATCH_SIZE

from hpo.run.runner import run_study
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.spec import parse_spec

BUDGET = 4000
EVALS = 8
"""Evaluations of a complete trial: every 500 tokens at batch 32 (512, 1024, …, 3520) and at the budget."""
GOOD, SLOW, DIVERGING = 1.0e-2, 1.0e-4, 30.0
CONFIGS = [  # run in this order, two at a time: the slow one reaches the first rung after two good ones
    {"lr": GOOD, "log2_batch_size": 5},
    {"lr": 5.0e-3, "log2_batch_size": 5},
    {"lr": SLOW, "log2_batch_size": 5},
    {"lr": DIVERGING, "log2_batch_size": 5},
    {"lr": GOOD, "log2_batch_size": FAILING_BATCH_SIZE.bit_length() - 1},
]


@pytest.fixture(scope="module")
def finished(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    """One scale of five queued trials: complete, complete or pruned, pruned, diverged, failed."""
    spec = parse_spec({
        "name": "searcher", "family": "runner_families:FlakyMLP", "scales": ["w8"], "target": 1.0e6,
        "budget": {"tokens": BUDGET},
        "space": {"lr": {"low": 1.0e-4, "high": 30.0}, "batch_size": {"low": 16, "high": 32}},
        "trials_per_scale": len(CONFIGS), "search": "independent",
        "fidelity": {"grace_tokens": 1000, "reduction_factor": 2, "eval_every_tokens": 500},
        "max_concurrent": 2,
    }, output_root=tmp_path_factory.mktemp("searcher"))
    spec.output_dir.mkdir(parents=True)
    study = optuna.create_study(study_name=optuna_study_name(spec.name, "default", "w8"),
                                storage=optuna_storage(spec.storage.optuna), direction="minimize")
    for config in CONFIGS:
        study.enqueue_trial(config)
    run_study(spec)
    trials = {trial.number: trial for trial in study.get_trials()}
    return trials, spec


def test_every_trial_ends_in_a_final_state(finished: tuple[dict, object]) -> None:
    trials, _ = finished
    assert len(trials) == len(CONFIGS)
    assert all(trial.state.is_finished() for trial in trials.values())
    assert [trials[n].params["lr"] for n in range(len(CONFIGS))] == [c["lr"] for c in CONFIGS]


def test_complete_trial_reports_intermediate_values_at_tokens(finished: tuple[dict, object]) -> None:
    trial = finished[0][0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["status"] == "complete"
    steps = sorted(trial.intermediate_values)
    assert steps[0] >= 500 and steps[-1] == BUDGET == trial.user_attrs["tokens_seen"]
    assert all(step % 32 == 0 for step in steps[:-1]), "steps are tokens seen, in whole batches"
    assert trial.value == trial.intermediate_values[steps[-1]]


def test_stopped_by_asha_is_pruned_with_its_curve(finished: tuple[dict, object]) -> None:
    trial = finished[0][2]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["status"] == "pruned"
    assert 1000 <= max(trial.intermediate_values) == trial.user_attrs["tokens_seen"] < BUDGET


def test_diverging_learning_rate_is_complete_with_a_penalty(finished: tuple[dict, object]) -> None:
    trials = finished[0]
    trial = trials[3]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["status"] == "diverged"
    assert trial.value > trials[0].value and trial.user_attrs["tokens_seen"] < BUDGET


def test_raising_family_fails_that_trial_only(finished: tuple[dict, object]) -> None:
    trials = finished[0]
    assert trials[4].state == TrialState.FAIL
    assert trials[4].user_attrs["status"] == "failed"
    assert sum(trial.state == TrialState.FAIL for trial in trials.values()) == 1


def test_raising_trial_is_retried_as_one_trial_with_one_run(finished: tuple[dict, object]) -> None:
    """Ray Tune runs an errored trial again `retries` times (default 2): still
    one Optuna trial and one MLflow run, both saying how often it was retried."""
    trials, spec = finished
    assert spec.retries == 2
    assert trials[4].user_attrs["retries"] == 2
    assert all("retries" not in trial.user_attrs for n, trial in trials.items() if n != 4)
    client = MlflowClient(spec.storage.mlflow)
    experiment = client.get_experiment_by_name(spec.name)
    children = [r for r in client.search_runs([experiment.experiment_id])
                if r.data.tags.get("kind") == "trial"]
    assert len(children) == len(CONFIGS)
    assert client.get_run(trials[4].user_attrs["run_id"]).data.tags["retries"] == "2"


def test_mlflow_runs_carry_the_same_status(finished: tuple[dict, object]) -> None:
    trials, spec = finished
    client = MlflowClient(spec.storage.mlflow)
    for trial in trials.values():
        run = client.get_run(trial.user_attrs["run_id"])
        assert run.data.tags["status"] == trial.user_attrs["status"]
        assert run.info.status == ("FAILED" if trial.user_attrs["status"] == "failed" else "FINISHED")


def test_a_trial_reports_at_the_rungs_and_the_end_carrying_every_evaluation(
        finished: tuple[dict, object]) -> None:
    """ASHA judges at 1000, 2000 and 4000 tokens: the complete trial reported to
    Ray Tune three times (at 1024, 2016 and 4000 tokens seen), yet Optuna and
    MLflow hold all eight of its evaluations."""
    trials, spec = finished
    trial = trials[0]
    reports = [json.loads(line) for path in Path(spec.output_dir, "ray").glob("*/*/result.json")
               for line in path.read_text().splitlines()]
    tokens = [report["tokens"] for report in reports if report["trial_number"] == 0]
    assert tokens == [1024, 2016, BUDGET]
    assert len(trial.intermediate_values) == EVALS
    history = MlflowClient(spec.storage.mlflow).get_metric_history(trial.user_attrs["run_id"], "loss")
    assert sorted(metric.step for metric in history) == sorted(trial.intermediate_values)
    assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)
