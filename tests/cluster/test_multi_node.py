"""Studies on a Ray cluster of a head and two worker nodes: trials spread over
the workers; a worker node killed mid-study, and the driver killed mid-study,
lose and duplicate nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from cluster_helpers import (
    Audit,
    LocalCluster,
    attempts,
    audit,
    hpo,
    record,
    start_driver,
    training_on,
    wait_for,
    write_study,
)
from mlflow import MlflowClient
from optuna.trial import TrialState

from hpo.spec import load_spec
from hpo.trials import INTERRUPTED, optuna_storage, optuna_study_name


def assert_nothing_lost_or_duplicated(result: Audit) -> None:
    assert result.finished == result.planned
    assert (result.lost, result.duplicated, result.running_optuna, result.running_mlflow) == (0, 0, 0, 0)


def optuna_trials(study: Path) -> list[optuna.trial.FrozenTrial]:
    spec = load_spec(study)
    return optuna.load_study(study_name=optuna_study_name(spec.name, "default", "w8"),
                             storage=optuna_storage(spec.storage.optuna)).get_trials()


def kill_group(driver_pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver_pid, signal.SIGKILL)


@pytest.mark.slow
def test_worker_node_killed_mid_study_retries_its_trial(ray_cluster: LocalCluster, tmp_path: Path) -> None:
    """A worker node vanishes with a trial on it (a preempted spot instance) and a
    replacement joins: the trial runs again elsewhere as the same Optuna trial
    and MLflow run, and the study ends with exactly its planned trials."""
    started = time.monotonic()
    records = tmp_path / "records"
    path = write_study(tmp_path, "node_killed", records=records, trials=6)
    victim = ray_cluster.workers[1]
    driver = start_driver("run", str(path), "--address", ray_cluster.address, cwd=tmp_path)
    try:
        wait_for(lambda: len({a["node"] for a in attempts(records)}) == 2
                 and bool(training_on(records, victim.node_id)),
                 timeout=240, what="trials training on both worker nodes", driver=driver)
        hit = {a["trial"] for a in training_on(records, victim.node_id)}
        ray_cluster.kill_worker(victim)
        ray_cluster.add_worker()
        assert driver.wait(timeout=300) == 0, driver_log(tmp_path)
    finally:
        kill_group(driver.pid)

    result = audit(path)
    assert_nothing_lost_or_duplicated(result)
    assert result.retried >= 1
    nodes = {a["node"] for a in attempts(records)}
    assert victim.node_id in nodes and len(nodes) >= 2 and ray_cluster.head_id not in nodes
    ran_twice = [trial_id for trial_id in hit  # a trial hit ran again, on another node
                 if len({a["node"] for a in attempts(records) if a["trial"] == trial_id}) == 2]
    assert ran_twice

    trials = optuna_trials(path)
    assert len(trials) == 6 and all(t.state != TrialState.RUNNING for t in trials)
    retried = [t for t in trials if t.user_attrs.get("retries")]
    assert retried and all(t.state.is_finished() and t.user_attrs["status"] != "failed" for t in retried)
    client = MlflowClient(load_spec(path).storage.mlflow)
    for trial in retried:
        run = client.get_run(trial.user_attrs["run_id"])
        assert run.data.tags["retries"] == str(trial.user_attrs["retries"]) and run.info.status == "FINISHED"
        curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
        assert curve == pytest.approx(trial.intermediate_values)
    record("worker node killed mid-trial (1 of 2), replacement node added",
           "retried as the same Optuna trial and MLflow run; counts", result, time.monotonic() - started)


@pytest.mark.slow
def test_driver_killed_mid_study_resumes_from_the_stored_search(ray_cluster: LocalCluster,
                                                                tmp_path: Path) -> None:
    """The driver gets SIGKILL while trials train on the worker nodes; ``hpo run``
    again finishes the study: exact counts, no duplicates, the interrupted
    trials' configurations run again, and TPE goes on from the stored trials."""
    started = time.monotonic()
    records = tmp_path / "records"
    path = write_study(tmp_path, "driver_killed", records=records, trials=8)
    driver = start_driver("run", str(path), "--address", ray_cluster.address, cwd=tmp_path)
    try:
        def finished_and_training() -> bool:
            if not (tmp_path / "driver_killed" / "optuna.db").exists():  # the driver creates it
                return False
            try:
                states = [t.state for t in optuna_trials(path)]
            except KeyError:
                return False
            return states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) >= 2 and any(
                training_on(records, worker.node_id) for worker in ray_cluster.workers)

        wait_for(finished_and_training, timeout=240, what="two finished trials and one training",
                 driver=driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        kill_group(driver.pid)
    before = optuna_trials(path)
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert running, "the driver was killed while no trial ran"

    again = hpo("run", str(path), "--address", ray_cluster.address, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    result = audit(path)
    assert_nothing_lost_or_duplicated(result)

    trials = optuna_trials(path)
    interrupted = [t for t in trials if t.user_attrs.get("status") == INTERRUPTED]
    assert {t.number for t in interrupted} == {t.number for t in running}
    counted = [t for t in trials if t.user_attrs.get("status") != INTERRUPTED]
    resumed = [t for t in counted if t.number >= len(before)]
    # The interrupted configurations were queued again and ran first ...
    assert [t.params for t in resumed[:len(running)]] == [t.params for t in running]
    # ... and the search went on from the stored trials: a fresh sampler with the study's seed
    # would replay the first run's suggestions.
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(params)) == len(params)
    assert [t.number for t in before if t.state.is_finished()] == [
        t.number for t in counted if t.number < len(before)]
    record("driver SIGKILLed mid-study (trials on worker nodes), `hpo run` again",
           "interrupted trials re-queued, TPE resumed from storage; counts", result,
           time.monotonic() - started)


def driver_log(folder: Path) -> str:
    return "".join(path.read_text() for path in sorted(folder.glob("driver-*.log")))[-3000:]
