"""Two drivers share one real PostgreSQL store: each runs its own variant of one
study at the same time, on one Ray cluster, against a fresh database."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from cluster_helpers import LocalCluster, audit, driver_env, hpo, record, start_driver, write_study
from mlflow import MlflowClient
from pg_server import PostgresServer, free_port, postgres_server, server_binaries

from hpo.spec import load_spec
from hpo.trials import optuna_storage, optuna_study_name

VARIANTS = ("tuned_wd", "no_wd")
TRIALS = 4


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A fresh server; without its binaries the test skips, except under CI, where it fails."""
    if server_binaries() is None:
        message = "PostgreSQL server binaries not found: run .ci/install_postgres.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server(password=f"pw-{secrets.token_hex(8)}") as server:
        yield server


def status_rows(output: str) -> dict[str, dict[str, int]]:
    """`hpo status`'s table: variant → planned and finished counts by status."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells and cells[0] in VARIANTS:
            rows[cells[0]] = dict(zip(("planned", "complete", "pruned", "diverged", "failed"),
                                      map(int, cells[2:7]), strict=True))
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
    record("two drivers at once, one variant each, on one fresh PostgreSQL store",
           "trial numbers and run ids unique; `hpo status` during the run; password never shown; counts",
           result, time.monotonic() - started)


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    """A database nobody listens on ends `hpo run` and `hpo status` in one line
    on stderr and exit code 2, without printing the URL's password."""
    secret = f"pw-{secrets.token_hex(8)}"
    url = f"postgresql+psycopg2://hpo:{secret}@127.0.0.1:{free_port()}/optuna"
    path = write_study(tmp_path, "unreachable", records=tmp_path / "records", trials=1,
                       storage={"optuna": url, "mlflow": url.replace("/optuna", "/mlflow")})
    for command in ("run", "status"):
        result = hpo(command, str(path), cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert "127.0.0.1" in result.stderr and secret not in result.stdout + result.stderr
