"""The trial table every analysis reads: validation, defaults, divergence and pruning.

One row per trial, with the column names of the trial-record contract
(docs/analysis.md): ``study, variant, scale, params, tokens, tokens_seen, lr,
batch_size, weight_decay, seed, loss, status, trial_number, run_id``.

Units: ``params`` is the parameter count N the laws use, ``tokens`` the
trial's full token budget D, ``tokens_seen`` how many it trained on, ``lr``
the peak learning rate, ``batch_size`` sequences (or examples) per step,
``loss`` the last evaluation loss. Only ``params, tokens, lr, batch_size,
loss`` are required; the rest default.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from os import PathLike

import numpy as np
import pandas as pd

from hpo.vocab import COMPLETE, DIVERGED, FAILED, FINAL_STATUSES, PRUNED

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("params", "tokens", "lr", "batch_size", "loss")
TRIAL_COLUMNS = (
    "study",
    "variant",
    "scale",
    "params",
    "tokens",
    "tokens_seen",
    "lr",
    "batch_size",
    "weight_decay",
    "seed",
    "loss",
    "status",
    "trial_number",
    "run_id",
)
CELL_COLUMNS = ("variant", "params", "tokens")
"""A *cell* is one (variant, model size N, token budget D): the unit an optimum is found in."""

_POSITIVE_COLUMNS = ("params", "tokens", "lr", "batch_size")
_NUMERIC_COLUMNS = (*_POSITIVE_COLUMNS, "tokens_seen", "weight_decay", "loss")
_ROWS_SHOWN = 5
"""An error names this many offending rows, then how many more."""


def scale_name(params: float) -> str:
    """A short name for a parameter count: ``214663680 -> "215M"``, ``1.3e9 -> "1.3B"``."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= size:
            return f"{params / size:.3g}{unit}"
    return f"{params:.3g}"


def normalize_trials(
    table: pd.DataFrame, *, divergence_factor: float = 1.5, rows_named: str = "row"
) -> pd.DataFrame:
    """Validate a trial table (`check_trials`) and return it with exactly the contract's columns.

    Defaults: ``variant="default"``, ``status="complete"``, ``weight_decay=0``,
    ``tokens_seen=tokens``, ``scale`` named from ``params``, ``study=""``,
    ``seed=0``, ``trial_number`` the row order, ``run_id=""``; an empty
    ``weight_decay`` or ``tokens_seen`` cell takes its default too.

    Status is then made consistent with the numbers:

    * a complete trial with ``tokens_seen < tokens`` is *pruned* (its loss was
      measured before the full budget and is never compared with full-budget
      losses);
    * a complete trial whose loss is above `divergence_factor` times the best
      loss of its cell (variant, params, tokens) at a learning rate above that
      best trial's is *diverged*: it marks the learning-rate stability edge. A
      trial as bad at a lower learning rate only learned slowly and stays
      complete (a stability edge there would cap every recommended learning
      rate below it). A missing loss is never taken for divergence: only the
      status says so (`check_trials`).

    Raises:
        ValueError: the table fails `check_trials` (the message names the column, the rows and the fix).
    """
    trials = check_trials(table, rows_named=rows_named).reset_index(drop=True)
    defaults: Mapping[str, object] = {
        "study": "",
        "variant": "default",
        "seed": 0,
        "run_id": "",
    }
    for column, value in defaults.items():
        if column not in trials.columns:
            trials[column] = value
    trials["tokens_seen"] = trials["tokens_seen"].fillna(trials["tokens"])
    trials["weight_decay"] = trials["weight_decay"].fillna(0.0)
    if "trial_number" not in trials.columns:
        trials["trial_number"] = np.arange(len(trials))
    if "scale" not in trials.columns:
        trials["scale"] = trials["params"].map(scale_name)
    trials["variant"] = trials["variant"].astype(str)
    _mark_pruned_and_diverged(trials, divergence_factor)
    return trials.loc[:, list(TRIAL_COLUMNS)]


def check_trials(table: pd.DataFrame, *, rows_named: str = "row") -> pd.DataFrame:
    """The table with its numeric columns as floats and its status lower case, or ValueError.

    Every error is one line naming the column, the first offending rows (by
    the table's index, called `rows_named`: `read_trials` passes ``"line"``,
    the index being the CSV's line numbers) and their values, and the fix:

    * the table is empty, or a required column (``params, tokens, lr,
      batch_size, loss``) is missing;
    * a numeric column (those and ``tokens_seen``, ``weight_decay``) holds
      text that is not a number;
    * ``params``, ``tokens``, ``lr`` or ``batch_size`` is empty, ≤ 0 or
      infinite; ``tokens_seen`` or ``weight_decay`` is negative;
    * a loss is ≤ 0 (a reward, an accuracy or a log-likelihood is not a loss);
    * a status is not one of `hpo.vocab.FINAL_STATUSES`;
    * a loss is missing (NaN) or infinite in a row whose status is
      ``complete`` (the default): a missing loss is not evidence of
      divergence; the status must say ``diverged`` (or ``failed``, ``pruned``).
    """
    if table.empty:
        raise ValueError("trials: the table is empty; pass at least one trial row")
    for column in REQUIRED_COLUMNS:
        if column not in table.columns:
            raise ValueError(
                f"trials: missing required column '{column}'; add it or rename your column to '{column}'"
            )
    trials = table.copy()
    for column in _NUMERIC_COLUMNS:
        trials[column] = _numbers(table, column, rows_named)
    for column in _POSITIVE_COLUMNS:
        _require(trials, column, trials[column].isna(), "is empty", "fill the values in", rows_named)
        bad = ~((trials[column] > 0) & np.isfinite(trials[column]))
        _require(trials, column, bad, "must be a positive finite number", "fix the values", rows_named)
    for column in ("tokens_seen", "weight_decay"):
        _require(trials, column, trials[column] < 0, "must be >= 0", "fix the values", rows_named)
    fix_loss = "pass the loss itself, e.g. cross-entropy (a reward, accuracy or log-likelihood is not a loss)"
    _require(trials, "loss", trials["loss"] <= 0, "must be > 0", fix_loss, rows_named)
    status = trials["status"] if "status" in trials.columns else pd.Series(COMPLETE, index=trials.index)
    trials["status"] = status.where(status.isna(), status.astype(str).str.strip().str.lower())
    unknown = ~trials["status"].isin(FINAL_STATUSES)
    known = f"use one of {list(FINAL_STATUSES)}"
    _require(trials, "status", unknown, "is not a known status", known, rows_named)
    missing = (trials["status"] == COMPLETE) & ~np.isfinite(trials["loss"])
    _require(
        trials,
        "loss",
        missing,
        "is missing or infinite where status is 'complete' (a missing loss is not taken for divergence)",
        f"set their status to '{DIVERGED}' (runs that blew up) or '{FAILED}' (runs that crashed)",
        rows_named,
    )
    return trials


def _numbers(table: pd.DataFrame, column: str, rows_named: str) -> pd.Series:
    """`column` as floats (NaN where absent or empty); ValueError naming the cells that hold text."""
    if column not in table.columns:
        return pd.Series(np.nan, index=table.index, dtype=float)
    values = table[column]
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    text = numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")
    _require(table, column, text, "holds text, not a number,", "write numbers there", rows_named)
    return numbers


def _require(
    table: pd.DataFrame, column: str, bad: pd.Series, problem: str, fix: str, rows_named: str
) -> None:
    """ValueError when any row is `bad`: the column, the problem, the first rows and their values, the fix."""
    if not bad.any():
        return
    positions = np.flatnonzero(bad.to_numpy())
    shown = ", ".join(
        f"{rows_named} {table.index[i]}: {_shown(table[column].iloc[i])}" for i in positions[:_ROWS_SHOWN]
    )
    more = f", and {len(positions) - _ROWS_SHOWN} more" if len(positions) > _ROWS_SHOWN else ""
    raise ValueError(
        f"trials: column '{column}' {problem} in {len(positions)} of {len(table)} rows ({shown}{more}); "
        f"{fix}, or drop those rows"
    )


def _shown(value: object) -> str:
    """A cell's value as an error shows it: text quoted, numbers as they print."""
    return repr(value) if isinstance(value, str) else str(value)


def _mark_pruned_and_diverged(trials: pd.DataFrame, divergence_factor: float) -> None:
    complete = trials["status"] == COMPLETE
    trials.loc[complete & (trials["tokens_seen"] < trials["tokens"]), "status"] = PRUNED
    complete = trials["status"] == COMPLETE
    finite = np.isfinite(trials["loss"])
    cell = [trials[c] for c in CELL_COLUMNS]
    best_in_cell = trials["loss"].where(complete & finite).groupby(cell).transform("min")
    best_lr = trials["lr"].where(trials["loss"] == best_in_cell).groupby(cell).transform("max")
    too_high = trials["loss"] > divergence_factor * best_in_cell
    exploded = complete & finite & too_high & (trials["lr"] > best_lr)
    trials.loc[exploded, "status"] = DIVERGED
    counts = trials["status"].value_counts().to_dict()
    logger.debug("trial statuses after normalisation: %s", counts)


def read_trials(
    path: str | PathLike[str],
    *,
    rename: Mapping[str, str] | None = None,
    divergence_factor: float = 1.5,
) -> pd.DataFrame:
    """Read a CSV of trials and normalise it (`normalize_trials`); an error names the CSV's lines.

    `rename` maps a foreign sweep's column names onto the contract's, e.g.
    ``{"N": "params", "D": "tokens", "bs": "batch_size"}``.

    Raises:
        ValueError: the file cannot be read (missing, a folder, no permission), is not a CSV table
            (empty, binary, broken quoting), or a row breaks the trial-table contract (`normalize_trials`).
    """
    try:
        table = pd.read_csv(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the trials file ({error.strerror or error}); check the path"
                         ) from error
    except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        reason = str(error).splitlines()[0]
        raise ValueError(f"{path}: not a CSV table of trials ({reason}); pass a UTF-8 CSV whose first line "
                         "names the columns (docs/analysis.md, the trial table)") from error
    table.index = pd.RangeIndex(2, len(table) + 2)
    if rename:
        table = table.drop(columns=[c for c in rename.values() if c in table.columns and c not in rename])
        table = table.rename(columns=dict(rename))
    return normalize_trials(table, divergence_factor=divergence_factor, rows_named="line")


def iter_cells(trials: pd.DataFrame) -> Iterator[tuple[str, float, float, pd.DataFrame]]:
    """Yield ``(variant, params, tokens, rows)`` for every cell, smallest N then D first."""
    for _, rows in trials.groupby(list(CELL_COLUMNS), sort=True):
        first = rows.iloc[0]
        yield str(first["variant"]), float(first["params"]), float(first["tokens"]), rows


def varies_tokens_independently(params: np.ndarray, tokens: np.ndarray) -> bool:
    """Whether D varies at fixed N, so laws in N and D together can be fitted.

    True when some model size was trained at two or more token budgets; a
    ladder where D is a function of N (e.g. D = 20·N) cannot separate the two.
    """
    frame = pd.DataFrame({"params": params, "tokens": tokens})
    return bool((frame.groupby("params")["tokens"].nunique() > 1).any())


def require_positive(name: str, value: float | None) -> None:
    """Raise ValueError unless `value` is a finite number > 0 (None passes)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}; pass e.g. {name}=1e9")


def parse_renames(text: str) -> dict[str, str]:
    """``"N=params,D=tokens"`` -> ``{"N": "params", "D": "tokens"}``: a command line's ``--rename``, which
    maps a foreign sweep's columns onto the trial table's (`read_trials`'s `rename`)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"--rename takes FROM=TO pairs separated by commas, got {text!r}")
    return {source.strip(): target.strip() for source, target in pairs}
