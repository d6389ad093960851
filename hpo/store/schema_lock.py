"""One process at a time makes a PostgreSQL store's tables.

Optuna, MLflow and the lease table each create their tables the first time a
process opens an empty database, and MLflow then runs its chain of schema
migrations (seconds). Two drivers (or a driver and ``hpo status``) opening
one fresh PostgreSQL database at once both do it; PostgreSQL's DDL is
transactional, so the loser fails on a duplicate catalogue row (``duplicate
key value violates unique constraint "pg_type_typname_nsp_index"``), and
while the winner is still migrating, a retry can fail again. `creating_schema`
holds a session-level advisory lock of the database for as long as a store is
being opened, so the second process waits and then finds the tables made.
sqlite needs no lock: its writers are serialised by the file's own lock, and
its openers retry the rare "table already exists".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from sqlalchemy.pool import NullPool

__all__ = ["creating_schema"]

_KEY = 0x68706F5F736368  # "hpo_sch": one lock per database, the same in every hpo process


@contextmanager
def creating_schema(url: str) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock of the database at SQLAlchemy `url` for the block (released
    when it ends, or when the connection drops with a killed process); other URLs pass through."""
    if not url.startswith(("postgresql", "postgres")):
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _KEY})
    finally:
        engine.dispose()
