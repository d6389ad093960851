"""A new sqlite MLflow store, copied from a migrated template instead of migrated anew.

MLflow builds a new SQL store by running its whole chain of Alembic schema
migrations: seconds of CPU (3-8 s on a 2-core machine) for every new study,
before its first trial. The result is the same empty schema each time for a
given MLflow version, so the first store made on a machine is kept as a
template, ``cache_dir()/mlflow-<version>.db``, with its ``Default``
experiment removed (MLflow adds that back when it opens an empty store, with
the artifact root of the opening process, as for a store it created). A new
sqlite store is then a copy of the template (milliseconds); MLflow checks its
schema version when it opens it, as for any store. Other backends
(PostgreSQL, MySQL, a tracking server) are migrated by MLflow, on PostgreSQL
one process at a time (`open_tracking_store`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from hpo.store.schema_lock import creating_schema
from models.data import cache_dir

__all__ = ["open_tracking_store", "prepare_sqlite_store"]

logger = logging.getLogger(__name__)

_SQLITE = "sqlite:///"


def open_tracking_store(tracking_uri: str) -> MlflowClient:
    """A client of the MLflow store at `tracking_uri`, its tables made: a new sqlite file from the
    template, a fresh PostgreSQL database migrated under `creating_schema` (the client opens the store,
    migrating an empty one, when it is made; MLflow keeps it for the rest of the process)."""
    prepare_sqlite_store(tracking_uri)
    with creating_schema(tracking_uri):
        return MlflowClient(tracking_uri)


def prepare_sqlite_store(tracking_uri: str) -> None:
    """Create the sqlite file of `tracking_uri` from the template when it does
    not exist yet; do nothing for a file that exists or another kind of URI.

    The new file uses write-ahead logging, as the Optuna store does
    (`hpo.store.trial_table.optuna_storage`): one file synced per commit, and the MLflow
    UI reads while the driver writes."""
    if not tracking_uri.startswith(_SQLITE):
        return
    path = Path(tracking_uri.removeprefix(_SQLITE).split("?", 1)[0])
    if path.exists() or not path.parent.is_dir():
        return
    template = _template()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as copy:
        partial = Path(copy.name)
    try:
        shutil.copyfile(template, partial)
        with closing(sqlite3.connect(partial)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # a setting stored in the file
        os.link(partial, path)  # fails, leaving the store alone, if another process made it meanwhile
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def _template() -> Path:
    """The migrated, experiment-free store of this MLflow version, made on first use."""
    template = cache_dir() / f"mlflow-{mlflow.__version__}.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building the MLflow store template %s (once per MLflow version)", template)
    with tempfile.TemporaryDirectory(dir=template.parent) as folder:
        built = Path(folder) / template.name
        MlflowClient(f"{_SQLITE}{built}").search_experiments()  # runs MLflow's migrations
        with sqlite3.connect(built) as db:
            db.execute("DELETE FROM experiment_tags")
            db.execute("DELETE FROM experiments")
        db.close()
        os.replace(built, template)
    return template
