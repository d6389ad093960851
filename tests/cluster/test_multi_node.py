"""Studies on a Ray cluster of a head and two worker nodes: trials spread over
the workers; a worker node killed mid-study, the driver killed mid-study, and
two drivers sharing one real PostgreSQL store lose and duplicate nothing."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from cluster_helpers import (
    LocalCluster,
    attempts,
    driver_env,
    hpo,
    start_driver,
    training_on,
    wait_for,
    write_study,
)
from mlflow import MlflowClient
from optuna.trial import TrialState
from pg_server import PostgresServer
from store_audit import Audit, audit, record

from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.spec import load_spec
from hpo.vocab import INTERRUPTED


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
    path = write_study(tmp_path, "driver_killed", records=records, trials=6)
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
    # The interrupted configurations were queued again and ran first (a trial killed while it was
    # being sampled has only its first parameters: the rerun samples the rest) ...
    assert len(resumed) >= len(running)
    assert all(old.params.items() <= new.params.items() for old, new in zip(running, resumed, strict=False))
    # ... and the search went on from the stored trials: a fresh sampler with the study's seed
    # would replay the first run's suggestions.
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(params)) == len(params)
    assert [t.number for t in before if t.state.is_finished()] == [
        t.number for t in counted if t.number < len(before)]
    record("driver SIGKILLed mid-study (trials on worker nodes), `hpo run` again",
           "interrupted trials re-queued, TPE resumed from storage; counts", result,
           time.monotonic() - started)


VARIANTS = ("tuned_wd", "no_wd")
TRIALS = 3


def status_rows(output: str) -> dict[str, dict[str, int]]:
    """`hpo status`'s table: variant → planned and finished counts by status."""
    rows, header = {}, []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").replace("┃", "│").split("│")]
        if "planned" in cells:
            header = cells
        elif cells and cells[0] in VARIANTS:
            rows[cells[0]] = {name: int(cells[header.index(name)])
                              for name in ("planned", "complete", "pruned", "diverged", "failed")}
    return rows


@pytest.mark.slow
def test_two_drivers_on_two_variants_share_one_postgres_store(
    ray_cluster: LocalCluster, postgres: PostgresServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    for database in ("optuna", "mlflow"):
        postgres.create_database(database)
    # One study, two copies of its file: one holds the password in its URLs, the
    # other leaves it out, and its driver reads it from $PGPASSWORD.
    with_password = write_study(
        tmp_path, "shared", records=tmp_path / "records", trials=TRIALS,
        variants={"tuned_wd": {}, "no_wd": {"weight_decay": 0}}, max_concurrent=1,
        storage={"optuna": postgres.url("optuna"), "mlflow": postgres.url("mlflow")})
    from_env = tmp_path / "shared_from_env.yaml"
    data = yaml.safe_load(with_password.read_text())
    data["storage"] = {key: postgres.url(key, with_password=False) for key in ("optuna", "mlflow")}
    from_env.write_text(yaml.safe_dump(data))
    env = driver_env(PGPASSWORD=postgres.password)

    drivers = [
        start_driver("run", str(with_password), "--variants", "tuned_wd", "--address", ray_cluster.address,
                     cwd=tmp_path),
        start_driver("run", str(from_env), "--variants", "no_wd", "--address", ray_cluster.address,
                     cwd=tmp_path, env=env),
    ]
    outputs: list[str] = []
    seen: list[dict[str, dict[str, int]]] = []
    try:
        while any(driver.poll() is None for driver in drivers):
            status = hpo("status", str(from_env), cwd=tmp_path, env=env, timeout=120)
            assert status.returncode == 0, status.stderr[-2000:]
            outputs += [status.stdout, status.stderr]
            rows = status_rows(status.stdout)
            assert set(rows) == set(VARIANTS)
            seen.append(rows)
            time.sleep(5)  # each `hpo status` is a process of its own: a few suffice
        codes = [driver.wait(timeout=300) for driver in drivers]
    finally:
        for driver in drivers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, signal.SIGKILL)
    logs = [path.read_text() for path in sorted(tmp_path.glob("driver-*.log"))]
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)

    # `hpo status` while both ran: never more than planned, never going back.
    assert len(seen) >= 2
    for variant in VARIANTS:
        finished = [sum(rows[variant][key] for key in ("complete", "pruned", "diverged", "failed"))
                    for rows in seen]
        assert finished == sorted(finished) and finished[-1] <= TRIALS
        assert all(rows[variant]["planned"] == TRIALS for rows in seen)
    final = hpo("status", str(with_password), cwd=tmp_path, timeout=120)
    outputs += [final.stdout, final.stderr]
    for counts in status_rows(final.stdout).values():
        assert sum(counts.values()) - counts["planned"] == TRIALS

    # Both stores hold every trial of both variants exactly once.
    result = audit(with_password)
    assert result.planned == result.finished == 2 * TRIALS
    assert (result.lost, result.duplicated, result.running_optuna, result.running_mlflow) == (0, 0, 0, 0)
    spec = load_spec(with_password)
    storage = optuna_storage(spec.storage.optuna)
    trial_ids = []
    for variant in VARIANTS:
        study = optuna.load_study(study_name=optuna_study_name(spec.name, variant, "w8"), storage=storage)
        trials = study.get_trials()
        assert sorted(t.number for t in trials) == list(range(TRIALS))
        assert all({"run_id", "status", "tokens_seen"} <= set(t.user_attrs) for t in trials)
        trial_ids += [t._trial_id for t in trials]
    assert len(set(trial_ids)) == len(trial_ids)
    table = pd.read_csv(io.StringIO(hpo("trials", str(with_password), "--csv", cwd=tmp_path).stdout))
    assert len(table) == 2 * TRIALS and table["run_id"].is_unique
    assert (table.loc[table["variant"] == "no_wd", "weight_decay"] == 0).all()
    client = MlflowClient(spec.storage.mlflow)
    for row in table.itertuples():
        run = client.get_run(row.run_id)
        assert (run.data.tags["variant"], run.data.tags["status"]) == (row.variant, row.status)

    # The password is nowhere: not printed by any command, not an MLflow param or tag.
    runs = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
    logged = [str(run.data.params) + str(run.data.tags) for run in runs]
    assert all(postgres.password not in text for text in [*logs, *outputs, *logged])
    written = [path for path in (tmp_path / "shared").rglob("*")  # Ray Tune's pickles included
               if path.is_file() and postgres.password.encode() in path.read_bytes()]
    assert not written, written
    record("two drivers at once, one variant each, on one fresh PostgreSQL store",
           "trial numbers and run ids unique; `hpo status` during the run; password never shown; counts",
           result, time.monotonic() - started)


def driver_log(folder: Path) -> str:
    return "".join(path.read_text() for path in sorted(folder.glob("driver-*.log")))[-3000:]
