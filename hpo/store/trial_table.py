"""Where a study's trials live in Optuna, and the trial table read from there.

Each (variant, scale) of a study is one Optuna study named
``{study}/{variant}/{scale}`` (`optuna_study_name`) in the study's RDB
storage (`optuna_storage`). `load_trials` reads them into the trial table,
the input of `hpo.analysis`.

One row per finished trial of every (variant, scale) of the study, with the
columns of the trial-record contract (`TRIAL_COLUMNS`): ``params`` is the
scale's non-embedding parameter count N, ``tokens`` its token budget D,
``tokens_seen`` how far the trial got, ``lr``/``batch_size``/``weight_decay``
what it trained with, ``loss`` its last eval loss (NaN if it never reported
one), ``status`` complete / pruned / diverged / failed, ``run_id`` its MLflow
child run ("" if none). Trials interrupted by a killed driver (run again on
resume), and trials not finished yet, are left out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from hpo.analysis.trials import TRIAL_COLUMNS
from hpo.search.sampling import trial_params
from hpo.study.checks import without_password
from hpo.study.spec import StudySpec, load_spec

__all__ = ["COMPUTE_COLUMNS", "INTERRUPTED", "LAW_BROKEN", "PLAN", "load_study_attrs", "load_trials",
           "optuna_storage", "optuna_study_name"]

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
"""User attribute ``status`` of a trial whose driver was killed while it ran."""
PLAN = "plan"
"""Optuna study user attribute: the (variant, scale)'s `hpo.search.scale_aware.ScalePlan`, as plain data."""
LAW_BROKEN = "law_broken"
"""Optuna study user attribute: the scale's optimum fell outside its plan's narrowed space."""
COMPUTE_COLUMNS = ("flops", "seconds")
"""Extra columns of `load_trials(..., compute=True)`: training FLOPs (the
family's `train_flops` of the tokens seen) and seconds in the training loop."""

_STATUS_OF_STATE = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def optuna_study_name(study: str, variant: str, scale: str) -> str:
    """The Optuna study of one (variant, scale): ``{study}/{variant}/{scale}``."""
    return f"{study}/{variant}/{scale}"


class _RDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, except that its pickled form carries no password.

    Ray Tune pickles the searcher and the callbacks, and with them this
    storage, into the study's output folder (for a `Tuner.restore` that hpo
    does not use); a copy read back connects with ``$PGPASSWORD``.
    """

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = without_password(state["url"])
        return state


def optuna_storage(url: str, *, attempts: int = 4) -> optuna.storages.RDBStorage:
    """The Optuna RDB storage at SQLAlchemy `url`; sqlite waits up to 30 s for a lock.

    A sqlite file is switched to write-ahead logging (a setting kept in the
    file), so readers (``hpo status``, the MLflow UI's neighbours) do not
    block the running driver, and its connections commit without waiting for
    the disk (`_sync_at_checkpoints`). The file must be on a local disk, as sqlite requires for any
    shared use; a team or a cluster uses PostgreSQL.

    Two processes opening a new database at once (two drivers on one fresh
    PostgreSQL, or a reader beside a starting driver) both create its tables
    and stamp its schema version; the loser's error (an integrity error, or
    sqlite's "table already exists") is retried, up to `attempts` tries in
    all, 0.5 s apart, by when the winner has finished.
    """
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 30}} if sqlite else None
    for attempt in range(1, attempts + 1):
        try:
            storage = _RDBStorage(url, engine_kwargs=engine_kwargs)
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as error:
            # sqlite reports a table made meanwhile as an OperationalError; anything else it raises is final.
            created = not isinstance(error, sqlalchemy.exc.OperationalError) or "already exists" in str(error)
            if attempt == attempts or not created:
                raise
            logger.info("Optuna storage schema created concurrently (%s); try %d of %d",
                        type(error.orig).__name__, attempt + 1, attempts)
            time.sleep(0.5)
    if sqlite:
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        sqlalchemy.event.listen(storage.engine, "connect", _sync_at_checkpoints)
        storage.engine.dispose()  # the connections opened so far reconnect with the setting
    return storage


def _sync_at_checkpoints(connection: Any, record: Any) -> None:
    """sqlite's ``synchronous=NORMAL``: in write-ahead-log mode a commit no longer
    waits for the disk (about 1.3 ms each, a dozen per trial); a killed process
    still loses nothing committed, only a power cut or an OS crash can lose
    the last commits (sqlite syncs the log at each checkpoint)."""
    connection.execute("PRAGMA synchronous=NORMAL")


def load_study_attrs(spec: StudySpec) -> dict[tuple[str, str], dict[str, object]]:
    """The user attributes of each (variant, scale)'s Optuna study that exists
    (`PLAN`, `LAW_BROKEN`), keyed by (variant, scale)."""
    storage = optuna_storage(spec.storage.optuna)
    summaries = {summary.study_name: summary for summary in optuna.get_all_study_summaries(storage)}
    return {(variant.name, scale): dict(summaries[name].user_attrs)
            for variant in spec.variants for scale in spec.scales
            if (name := optuna_study_name(spec.name, variant.name, scale)) in summaries}


def load_trials(study: StudySpec | str | Path, *, variants: Sequence[str] | None = None,
                scales: Sequence[str] | None = None, compute: bool = False,
                storage: optuna.storages.BaseStorage | None = None) -> pd.DataFrame:
    """Every finished trial of `study` (a spec, or the path of its study file),
    one row each; only of `variants` and `scales` when given; with the
    `COMPUTE_COLUMNS` when `compute`. `storage` is the study's Optuna storage
    when the caller holds it open already (opening one costs tens of milliseconds)."""
    spec = study if isinstance(study, StudySpec) else load_spec(study)
    family = spec.load_family() if compute else None
    storage = storage or optuna_storage(spec.storage.optuna)
    existing = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    rows = []
    for variant in spec.variants:
        if variants is not None and variant.name not in variants:
            continue
        for scale in spec.scales if scales is None else [s for s in spec.scales if s in scales]:
            name = optuna_study_name(spec.name, variant.name, scale)
            if name not in existing:
                continue
            optuna_study = optuna.load_study(study_name=name, storage=storage)
            for trial in optuna_study.get_trials(deepcopy=False, states=tuple(_STATUS_OF_STATE)):
                if trial.user_attrs.get("status") == INTERRUPTED:
                    continue
                extra = {} if family is None else {
                    "flops": family.train_flops(scale, int(trial.user_attrs.get("tokens_seen", 0))),
                    "seconds": float(trial.user_attrs.get("seconds", math.nan))}
                rows.append({
                    "study": spec.name, "variant": variant.name, "scale": scale,
                    "params": spec.params(scale), "tokens": spec.tokens(scale),
                    "tokens_seen": int(trial.user_attrs.get("tokens_seen", 0)),
                    **trial_params(trial), "seed": spec.seed, "loss": _loss(trial),
                    "status": trial.user_attrs.get("status", _STATUS_OF_STATE[trial.state]),
                    "trial_number": trial.number, "run_id": trial.user_attrs.get("run_id", ""), **extra,
                })
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS) + (list(COMPUTE_COLUMNS) if compute else []))


def _loss(trial: FrozenTrial) -> float:
    """The last eval loss: the told value of a complete trial, else its last
    intermediate value (a diverged trial's penalty is not an eval loss)."""
    if trial.state == TrialState.COMPLETE and trial.user_attrs.get("status", "complete") == "complete":
        return float(trial.value)
    if trial.last_step is not None:
        return float(trial.intermediate_values[trial.last_step])
    return math.nan
