"""`Leases`: one driver owns a (variant, scale) at a time, recorded in the study's Optuna database.

Two drivers on one (variant, scale) would each enqueue its plan, and each
would take the other's running trials for a killed driver's. So a driver
takes a lease on every (variant, scale) it runs before it opens any of them:
a row of the table ``hpo_leases`` in the study's Optuna database (sqlite or
PostgreSQL: the store the drivers share anyway), keyed by the scale's Optuna
study name, holding the owner's host, pid and start time and a heartbeat the
owner refreshes every `heartbeat_seconds`. A lease whose heartbeat is older
than `expire_seconds`, or whose owner's process on this host is gone, belongs
to a driver that died: the next driver takes it over (an atomic update on the
old heartbeat, so two takers cannot both win), and only then repairs the
trials that driver left running. A live lease makes
`acquire` raise `LeaseHeld` naming its owner, or, with ``wait``, wait for it.

Heartbeats compare the clocks of the machines the drivers run on: keep them
synchronised (NTP) when drivers run on several machines; `expire_seconds`
(default 60 s) absorbs ordinary skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from hpo.store.errors import StoreError
from hpo.store.schema_lock import creating_schema
from hpo.vocab import retry

__all__ = ["LeaseHeld", "Leases", "Owner"]

logger = logging.getLogger(__name__)

_METADATA = sa.MetaData()
_TABLE = sa.Table(
    "hpo_leases", _METADATA,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: a driver on `host` with process id `pid`, holding it since `since` (Unix
    seconds), its last heartbeat at `heartbeat`."""

    host: str
    pid: int
    since: float
    heartbeat: float

    def alive(self) -> bool:
        """False when the owner ran on this host and its process is gone (its lease is dead at once);
        True otherwise, as far as this host can tell."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a live process of another user
            return True
        return True

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        age = now - self.heartbeat
        return f"host {self.host}, pid {self.pid}, since {started} (heartbeat {age:.0f} s ago)"


class LeaseHeld(StoreError):
    """A (variant, scale) is run by another live driver."""

    def __init__(self, name: str, owner: Owner) -> None:
        self.name, self.owner = name, owner
        super().__init__(f"{name} is being run by another driver ({owner.describe(time.time())}): wait for "
                         "it with `hpo run --wait`, or stop that driver first")


class Leases:
    """The leases this driver holds in the database of `engine`, refreshed by a heartbeat thread."""

    def __init__(self, engine: Engine, *, expire_seconds: float = 60.0, heartbeat_seconds: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 < heartbeat_seconds < expire_seconds:
            raise ValueError("heartbeat_seconds must be positive and below expire_seconds")
        self.engine, self.expire_seconds, self.heartbeat_seconds = engine, expire_seconds, heartbeat_seconds
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with creating_schema(engine.url.render_as_string(hide_password=False)):
            retry(lambda: _METADATA.create_all(engine), attempts=4, delay=0.5,
                  retryable=lambda error: isinstance(error, sa_exc.OperationalError)
                  and "already exists" in str(error),
                  what="lease table created concurrently")

    def acquire(self, names: Sequence[str], *, wait: bool = False, poll_seconds: float = 5.0,
                on_wait: Callable[[LeaseHeld], None] | None = None) -> None:
        """Take the lease of every name in `names`, or none of them: `LeaseHeld` for the first held
        by a live driver, or, with `wait`, poll every `poll_seconds` until all are free (calling
        `on_wait` once per owner waited for). Starts the heartbeat."""
        told: set[str] = set()
        while True:
            try:
                for name in names:
                    self._take(name)
                    self.held.append(name)
                break
            except LeaseHeld as held:
                self.release()
                if not wait:
                    raise
                if on_wait is not None and held.owner.host + str(held.owner.pid) not in told:
                    told.add(held.owner.host + str(held.owner.pid))
                    on_wait(held)
                time.sleep(poll_seconds)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="hpo-lease-heartbeat", daemon=True)
            self._thread.start()

    def release(self) -> None:
        """Give back every lease held and stop the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.held:
            try:
                with self.engine.begin() as db:
                    db.execute(_TABLE.delete().where(_TABLE.c.owner == self.owner))
            except sa_exc.SQLAlchemyError as error:  # a full disk, say: the leases expire by themselves
                logger.warning("could not give back %d lease(s) (%s); they expire in %g s", len(self.held),
                               type(error).__name__, self.expire_seconds)
            self.held = []

    def holders(self, names: Sequence[str]) -> dict[str, Owner]:
        """The live owners of those of `names` that another driver holds (read only)."""
        now = self.clock()
        with self.engine.connect() as db:
            rows = db.execute(sa.select(_TABLE).where(_TABLE.c.name.in_(list(names)))).all()
        return {row.name: Owner(row.host, row.pid, row.since, row.heartbeat) for row in rows
                if row.owner != self.owner and now - row.heartbeat <= self.expire_seconds}

    def _take(self, name: str) -> None:
        now = self.clock()
        values = {"name": name, "owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                  "since": now, "heartbeat": now}
        with self.engine.begin() as db:
            row = db.execute(sa.select(_TABLE).where(_TABLE.c.name == name)).first()
            if row is None:
                try:
                    with db.begin_nested():
                        db.execute(_TABLE.insert().values(**values))
                    return
                except sa_exc.IntegrityError:  # another driver inserted it meanwhile
                    row = db.execute(sa.select(_TABLE).where(_TABLE.c.name == name)).one()
            owner = Owner(row.host, row.pid, row.since, row.heartbeat)
            if row.owner != self.owner and now - row.heartbeat <= self.expire_seconds and owner.alive():
                raise LeaseHeld(name, owner)
            unchanged = (_TABLE.c.name == name) & (_TABLE.c.heartbeat == row.heartbeat)
            taken = db.execute(_TABLE.update().where(unchanged).values(**values))
            if taken.rowcount != 1:  # another driver took the expired lease first
                raise LeaseHeld(name, owner)
            if row.owner != self.owner:
                logger.warning("%s: took over the lease of a driver that stopped (%s)", name,
                               owner.describe(now))

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                with self.engine.begin() as db:
                    kept = db.execute(_TABLE.update().where(_TABLE.c.owner == self.owner)
                                      .values(heartbeat=self.clock())).rowcount
                if kept < len(self.held):
                    logger.error("lost %d of %d leases to another driver: this driver stalled for longer "
                                 "than %g s", len(self.held) - kept, len(self.held), self.expire_seconds)
            except sa_exc.SQLAlchemyError as error:
                logger.warning("lease heartbeat failed (%s); retrying", type(error).__name__)
