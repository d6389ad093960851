"""A reader opening a study's sqlite store read only while a starting driver is still creating it."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages._rdb import models

from hpo.store.errors import StoreError
from hpo.store.optuna_store import optuna_storage


def unfinished_store(path: Path) -> str:
    """A sqlite store as a driver leaves it between creating Optuna's tables and stamping their version."""
    url = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(url)
    models.BaseModel.metadata.create_all(engine)
    engine.dispose()
    return url


def test_a_reader_waits_for_the_driver_to_finish_the_schema(tmp_path: Path) -> None:
    url = unfinished_store(tmp_path / "optuna.db")
    driver = threading.Timer(0.7, lambda: optuna.storages.RDBStorage(url))  # finishes the schema meanwhile
    driver.start()
    try:
        storage = optuna_storage(url, read_only=True)
    finally:
        driver.join()
    assert optuna.get_all_study_summaries(storage) == []


def test_a_store_left_unfinished_is_one_line_saying_so(tmp_path: Path) -> None:
    url = unfinished_store(tmp_path / "optuna.db")
    with pytest.raises(StoreError, match=r"is unfinished \(no schema version yet\): if `hpo run` is start"):
        optuna_storage(url, read_only=True, attempts=2)
