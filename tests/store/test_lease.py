"""Leases on (variant, scale)s in a real sqlite database: one driver at a time, a dead one's taken over."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from hpo.store.lease import LeaseHeld, Leases

NAMES = ["s/default/w8", "s/default/w16"]


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'optuna.db'}")


class Clock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_driver_is_refused_with_the_owner_named(engine: sa.Engine) -> None:
    first, second = Leases(engine), Leases(engine)
    first.acquire(NAMES)
    with pytest.raises(LeaseHeld, match=r"s/default/w8 is being run by another driver \(host .*, pid \d+"):
        second.acquire(NAMES)
    assert second.held == [] and set(second.holders(NAMES)) == set(NAMES)
    first.release()
    second.acquire(NAMES)
    assert second.held == NAMES
    second.release()


def test_leases_are_all_or_nothing(engine: sa.Engine) -> None:
    first, second = Leases(engine), Leases(engine)
    first.acquire(NAMES[1:])
    with pytest.raises(LeaseHeld):
        second.acquire(NAMES)
    assert not second.holders(NAMES[:1]) and first.holders(NAMES[:1]) == {}  # w8 was given back
    first.release()


def test_a_lease_without_heartbeat_is_taken_over(engine: sa.Engine) -> None:
    clock = Clock()
    dead = Leases(engine, expire_seconds=60, heartbeat_seconds=10, clock=clock)
    dead.acquire(NAMES)
    dead._stop.set()  # the driver died: its heartbeat stops, its rows stay
    clock.now += 30
    with pytest.raises(LeaseHeld):
        Leases(engine, clock=clock).acquire(NAMES)
    clock.now += 31
    alive = Leases(engine, clock=clock)
    alive.acquire(NAMES)
    assert alive.held == NAMES and not alive.holders(NAMES)
    alive.release()


def test_a_waiting_driver_starts_when_the_first_one_ends(engine: sa.Engine) -> None:
    first, second = Leases(engine), Leases(engine)
    first.acquire(NAMES)
    told: list[LeaseHeld] = []
    waiter = threading.Thread(target=second.acquire, args=(NAMES,),
                              kwargs={"wait": True, "poll_seconds": 0.05, "on_wait": told.append})
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and len(told) == 1
    first.release()
    waiter.join(5)
    assert not waiter.is_alive() and second.held == NAMES
    second.release()


def test_a_lease_whose_process_is_gone_from_this_host_is_taken_over_at_once(engine: sa.Engine) -> None:
    dead = Leases(engine)
    dead.acquire(NAMES)
    dead._stop.set()
    with engine.begin() as db:  # its driver's process has ended
        db.execute(sa.text("UPDATE hpo_leases SET pid = :pid"), {"pid": _pid_of_finished()})
    alive = Leases(engine)
    alive.acquire(NAMES)
    assert alive.held == NAMES
    alive.release()


def _pid_of_finished() -> int:
    """The process id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
