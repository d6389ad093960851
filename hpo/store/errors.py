"""`StoreError`: a study's stores cannot be used as they are; the message says which store and what to do.

The command line prints it as one line and exits with code 2; nothing was
written past the point it was raised.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import traceback
from pathlib import Path

from hpo.study.checks import mask

__all__ = ["StoreError", "StoresDisagree", "describe_store_failure"]

_SIGNS = {"full": ("disk is full", "no space"), "read-only": ("readonly", "read-only"),
          "locked": ("locked", "busy"), "corrupt": ("malformed", "not a database", "corrupt", "invalid data")}
"""Words of a database error's message that say which failure it is."""
_FIXES = {
    "full": "free space on its disk, then run the study again: it resumes",
    "read-only": "make its folder writable, then run the study again: it resumes",
    "locked": "stop the process that holds it (another driver, an open `sqlite3` shell), then run again",
    "corrupt": "restore it from a backup, or move the study's output away to start afresh",
}


class StoreError(RuntimeError):
    """A study's Optuna store or tracker cannot be used as they are (one line: which, why, the fix)."""


class StoresDisagree(StoreError):
    """The Optuna store and the tracker hold different trials of one (variant, scale)."""


def describe_store_failure(error: BaseException, *, optuna_url: str, tracker_uri: str,
                           output_dir: Path) -> str | None:
    """One line for an error that a study's store raised during a run (disk full, read-only, locked,
    corrupted database): which store, by the code it was raised in (MLflow's, Optuna's, else the
    study's output folder, where Ray Tune writes too), its URL (password masked), the cause, and the
    fix; None when `error` is no store's."""
    cause = _store_cause(error)
    if cause is None:
        return None
    kind, text = cause
    frames = [frame.filename for each in [error, *_chain(error)]
              for frame in traceback.extract_tb(each.__traceback__)]
    if any(f"{os.sep}mlflow{os.sep}" in name for name in frames):
        store = f"the tracker's store {mask(tracker_uri)}"
    elif any(f"{os.sep}optuna{os.sep}" in name or name.endswith("lease.py") for name in frames):
        store = f"the Optuna store {mask(optuna_url)}"
    else:
        store = f"the study's output folder {output_dir}"
    return f"{store} failed ({text}): {_FIXES[kind]}"


def _chain(error: BaseException) -> list[BaseException]:
    """`error`'s causes and contexts, innermost last."""
    found: list[BaseException] = []
    inner = error.__cause__ or error.__context__
    while inner is not None and inner not in found:
        found.append(inner)
        inner = inner.__cause__ or inner.__context__
    return found


def _store_cause(error: BaseException) -> tuple[str, str] | None:
    """(kind, one-line text) of the first store failure in `error`'s chain, or None."""
    import sqlalchemy.exc  # here: the command line imports this module before it needs any database

    for candidate in [error, *_chain(error)]:
        if isinstance(candidate, OSError) and candidate.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            kind = "read-only" if candidate.errno == errno.EROFS else "full"
            return kind, candidate.strerror or str(candidate)
        if isinstance(candidate, sqlalchemy.exc.DBAPIError | sqlite3.Error):
            text = " ".join(str(getattr(candidate, "orig", None) or candidate).split("\n")[0].split())
            lowered = text.lower()
            for kind, words in _SIGNS.items():
                if any(word in lowered for word in words):
                    return kind, text
    return None
