"""Processes opening one fresh PostgreSQL database at once make its tables one at a time (creating_schema)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from cluster_helpers import driver_env
from pg_server import PostgresServer

from hpo.store.schema_lock import creating_schema

OPEN_BOTH_STORES = """
import sys
from hpo.store.mlflow_template import open_tracking_store
from hpo.store.optuna_store import optuna_storage
optuna_storage(sys.argv[1])
open_tracking_store(sys.argv[2])
"""


def test_a_second_opener_waits_until_the_first_has_made_the_schema(postgres: PostgresServer) -> None:
    postgres.create_database("lock_wait")
    url = postgres.url("lock_wait")
    inside = threading.Event()
    order: list[str] = []

    def second() -> None:
        inside.wait()
        with creating_schema(url):
            order.append("second")

    waiter = threading.Thread(target=second)
    waiter.start()
    with creating_schema(url):
        inside.set()
        time.sleep(1.0)  # the second opener is blocked on the lock meanwhile
        order.append("first")
    waiter.join(timeout=30)
    assert order == ["first", "second"]


def test_four_processes_open_the_same_fresh_stores_at_once(postgres: PostgresServer) -> None:
    for database in ("race_optuna", "race_mlflow"):
        postgres.create_database(database)
    urls = [postgres.url("race_optuna"), postgres.url("race_mlflow")]
    command = [sys.executable, "-c", OPEN_BOTH_STORES, *urls]
    openers = [subprocess.Popen(command, env=driver_env(), stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    errors = [opener.communicate(timeout=300)[1] for opener in openers]
    assert [opener.returncode for opener in openers] == [0, 0, 0, 0], "\n".join(errors)[-3000:]
