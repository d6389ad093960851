"""The Optuna storage of a study: one Optuna study per (variant, scale), in an RDB (sqlite or PostgreSQL).

Each (variant, scale) of a study is the Optuna study ``{study}/{variant}/{scale}``
(`optuna_study_name`) in the study's RDB storage (`optuna_storage`); its user
attributes hold the scale's plan (`PLAN`) and whether it broke its law
(`LAW_BROKEN`, `load_study_attrs`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from hpo.store.errors import StoreError
from hpo.store.schema_lock import creating_schema
from hpo.study.checks import mask
from hpo.study.spec import StudySpec
from hpo.vocab import COMPLETE, FAILED, PRUNED, retry

__all__ = ["FINISHED_STATES", "LAW_BROKEN", "PLAN", "finished_status", "load_study_attrs", "optuna_storage",
           "optuna_study_name", "stored_trials"]

logger = logging.getLogger(__name__)

PLAN = "plan"
"""Optuna study user attribute: the (variant, scale)'s `hpo.search.scale_aware.ScalePlan`, as plain data."""
LAW_BROKEN = "law_broken"
"""Optuna study user attribute: the scale's optimum fell outside its plan's narrowed space."""

_STATUS_OF_STATE = {TrialState.COMPLETE: COMPLETE, TrialState.PRUNED: PRUNED, TrialState.FAIL: FAILED}
FINISHED_STATES = tuple(_STATUS_OF_STATE)
"""The Optuna states of a finished trial."""


def finished_status(trial: FrozenTrial) -> str:
    """How a finished trial ended (`hpo.vocab.FINAL_STATUSES`, or ``interrupted``): its user attribute
    ``status``, set when it was told, else what its Optuna state says."""
    return trial.user_attrs.get("status", _STATUS_OF_STATE[trial.state])


def optuna_study_name(study: str, variant: str, scale: str) -> str:
    """The Optuna study of one (variant, scale): ``{study}/{variant}/{scale}``."""
    return f"{study}/{variant}/{scale}"


def optuna_storage(url: str, *, read_only: bool = False, attempts: int = 4) -> optuna.storages.RDBStorage:
    """The Optuna RDB storage at SQLAlchemy `url`; sqlite waits up to 30 s for a lock. `StoreError`,
    naming the store and the fix, when it cannot be opened.

    `read_only` opens an existing sqlite file without writing to it (`hpo status`,
    `hpo trials`, `hpo analyze`): it works on a read-only or archived study folder,
    and a missing file is an error that names the path tried instead of a new, empty
    store.

    A sqlite file is switched to write-ahead logging (a setting kept in the
    file), so readers (``hpo status``, the MLflow UI's neighbours) do not
    block the running driver, and its connections commit without waiting for
    the disk (`_sync_at_checkpoints`). The file must be on a local disk, as sqlite requires for any
    shared use; a team or a cluster uses PostgreSQL.

    Two processes opening a new database at once (two drivers on one fresh
    PostgreSQL, or a reader beside a starting driver) would both create its
    tables: on PostgreSQL they take turns (`creating_schema`); on sqlite the
    loser's "table already exists" is retried, up to `attempts` tries in all,
    0.5 s apart, by when the winner has finished. A reader that opened the file
    read only before the driver stamped its schema version waits the same way,
    and past the last try is told the store is unfinished.
    """
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 30}} if sqlite else None
    opened = _read_only_sqlite(url) if sqlite and read_only else url
    try:
        with creating_schema(url):
            storage = retry(lambda: optuna.storages.RDBStorage(opened, engine_kwargs=engine_kwargs),
                            attempts=attempts, delay=0.5, retryable=_schema_made_meanwhile,
                            what="Optuna storage schema created concurrently")
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        cause = " ".join(str(getattr(_database_error(error), "orig", None) or error).splitlines()[0].split())
        if read_only and "readonly database" in cause:
            raise StoreError(f"the Optuna store {mask(url)} is unfinished (no schema version yet): if `hpo "
                             "run` is starting on it, try again in a moment; else restore it, or move the "
                             "study's output away to start afresh") from None
        raise StoreError(f"cannot open the Optuna store {mask(url)} ({cause}); check that its database "
                         "is reachable and intact (a corrupted file: restore it, or move the study's output "
                         "away to start afresh)") from None
    if sqlite and not read_only:
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        sqlalchemy.event.listen(storage.engine, "connect", _sync_at_checkpoints)
        storage.engine.dispose()  # the connections opened so far reconnect with the setting
    return storage


def _read_only_sqlite(url: str) -> str:
    """`url` of a sqlite file as a URI that opens it read only: ``mode=ro``, or ``immutable=1`` in a
    folder this process cannot write (a reader of a write-ahead log needs to write beside it)."""
    path = Path(url.split(":///", 1)[1].split("?", 1)[0])
    if not path.is_file():
        raise StoreError(f"no Optuna store at {path}: run the study first (`hpo run STUDY`), or run this "
                         "command from the folder it ran in (a relative `output:` is taken from the current "
                         "directory), or set `output:` to where it ran")
    writable = os.access(path.parent, os.W_OK)
    return f"sqlite:///file:{path}?{'mode=ro' if writable else 'immutable=1'}&uri=true"


def _database_error(error: BaseException) -> BaseException:
    """The database's own error behind `error`: Optuna wraps a failed commit in
    `StorageInternalError`, the driver's error its cause."""
    if isinstance(error, optuna.exceptions.StorageInternalError) and error.__cause__ is not None:
        return error.__cause__
    return error


def _schema_made_meanwhile(error: Exception) -> bool:
    """Whether `error` is another process's creation of the same schema: an integrity error, sqlite's
    "table already exists", or, for a reader that opened the file read only while a driver is still
    creating it, sqlite's "attempt to write a readonly database" (Optuna stamping the schema version the
    driver has not written yet); anything else sqlite raises is final."""
    cause = _database_error(error)
    if isinstance(cause, sqlalchemy.exc.OperationalError):
        return "already exists" in str(cause) or "readonly database" in str(cause)
    return isinstance(cause, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError)


def _sync_at_checkpoints(connection: Any, record: Any) -> None:
    """sqlite's ``synchronous=NORMAL``: in write-ahead-log mode a commit no longer
    waits for the disk (about 1.3 ms each, a dozen per trial); a killed process
    still loses nothing committed, only a power cut or an OS crash can lose
    the last commits (sqlite syncs the log at each checkpoint)."""
    connection.execute("PRAGMA synchronous=NORMAL")


def stored_trials(storage: optuna.storages.BaseStorage, name: str) -> list[FrozenTrial]:
    """Every trial of the Optuna study `name` in `storage`, none when the study does not exist."""
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


def load_study_attrs(spec: StudySpec, storage: optuna.storages.BaseStorage | None = None
                     ) -> dict[tuple[str, str], dict[str, Any]]:
    """The user attributes of each (variant, scale)'s Optuna study that exists
    (`PLAN`, `LAW_BROKEN`), keyed by (variant, scale); `storage` is the study's
    Optuna storage when the caller holds it open already."""
    storage = storage or optuna_storage(spec.storage.optuna)
    summaries = {summary.study_name: summary for summary in optuna.get_all_study_summaries(storage)}
    return {(variant.name, scale): dict(summaries[name].user_attrs)
            for variant in spec.variants for scale in spec.scales
            if (name := optuna_study_name(spec.name, variant.name, scale)) in summaries}


