"""One driver per study on a team's PostgreSQL store: a second `hpo run` of the same study is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cluster_helpers import hpo, start_driver, write_study
from pg_server import PostgresServer
from store_audit import audit, record


def lease_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return int(db.execute(sa.text("SELECT count(*) FROM hpo_leases")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_the_same_study_started_twice_on_postgres_runs_once(postgres: PostgresServer, tmp_path: Path) -> None:
    started = time.monotonic()
    for database in ("twice_optuna", "twice_mlflow"):
        postgres.create_database(database)
    storage = {"optuna": postgres.url("twice_optuna"), "mlflow": postgres.url("twice_mlflow")}
    study = write_study(tmp_path, "twice", records=tmp_path / "records", trials=4, step_seconds=0.02,
                        storage=storage)
    first = start_driver("run", str(study), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while lease_rows(storage["optuna"]) == 0:
        assert time.monotonic() < deadline and first.poll() is None, "the first driver took no lease"
        time.sleep(0.2)

    second = hpo("run", str(study), cwd=tmp_path, timeout=120)
    assert first.wait(timeout=600) == 0

    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr[-2000:]
    assert "is being run by another driver" in second.stderr and f"pid {first.pid}" in second.stderr
    assert postgres.password not in second.stderr
    result = audit(study)
    assert result.clean() and result.planned == 4, result
    record("the same study started twice at once on one PostgreSQL store",
           "the second driver exits 2 in one line naming the first's host and pid; one plan, no duplicate",
           result, time.monotonic() - started)
