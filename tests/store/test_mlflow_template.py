"""A new sqlite MLflow store is a copy of a migrated template, and MLflow uses it like one it built."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hpo.store.mlflow_template import prepare_sqlite_store


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HPO_CACHE_DIR", str(cache))
    return cache


def schema(path: Path) -> dict[str, object]:
    """Each table's columns (name, type, not null, primary key) and indexes, and the schema version.

    Compared as data, not DDL text: MLflow's migrations rebuild sqlite tables with their
    constraints in an order that varies from one build to the next."""
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        layout: dict[str, object] = {
            table: (sorted((c[1], c[2], c[3], c[5]) for c in db.execute(f'PRAGMA table_info("{table}")')),
                    sorted(i[1] for i in db.execute(f'PRAGMA index_list("{table}")')
                           if not i[1].startswith("sqlite_autoindex")))
            for table in tables}
        layout["version"] = db.execute("SELECT version_num FROM alembic_version").fetchall()
    db.close()
    return layout


def test_a_store_from_the_template_has_the_schema_mlflow_builds(tmp_path: Path) -> None:
    built = tmp_path / "built.db"
    MlflowClient(f"sqlite:///{built}").search_experiments()
    copied = tmp_path / "copied.db"

    prepare_sqlite_store(f"sqlite:///{copied}")

    assert schema(copied) == schema(built)
    client = MlflowClient(f"sqlite:///{copied}")
    assert [e.name for e in client.search_experiments()] == ["Default"]  # added back by MLflow, as new
    experiment = client.create_experiment("study", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 1.5, step=100)
    assert client.get_metric_history(run.info.run_id, "loss")[0].step == 100


def test_the_template_is_built_once_and_reused(tmp_path: Path, own_cache: Path) -> None:
    prepare_sqlite_store(f"sqlite:///{tmp_path / 'a.db'}")
    (template,) = own_cache.glob("mlflow-*.db")
    built_at = template.stat().st_mtime_ns

    prepare_sqlite_store(f"sqlite:///{tmp_path / 'b.db'}")

    assert template.stat().st_mtime_ns == built_at
    assert schema(tmp_path / "b.db") == schema(tmp_path / "a.db")


def test_an_existing_store_is_left_untouched(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{store}")
    client.create_experiment("kept")
    before = store.read_bytes()

    prepare_sqlite_store(f"sqlite:///{store}")

    assert store.read_bytes() == before


def test_other_backends_and_missing_folders_are_left_to_mlflow(tmp_path: Path, own_cache: Path) -> None:
    prepare_sqlite_store("postgresql://user@localhost/mlflow")
    prepare_sqlite_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}")

    assert not own_cache.exists()
    assert not (tmp_path / "no").exists()
