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

from hpo.vocab import COMPLETE, DIVERGED, FINAL_STATUSES, PRUNED

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


def scale_name(params: float) -> str:
    """A short name for a parameter count: ``214663680 -> "215M"``, ``1.3e9 -> "1.3B"``."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= size:
            return f"{params / size:.3g}{unit}"
    return f"{params:.3g}"


def normalize_trials(table: pd.DataFrame, *, divergence_factor: float = 1.5) -> pd.DataFrame:
    """Validate a trial table and return it with exactly the contract's columns.

    Defaults: ``variant="default"``, ``status="complete"``, ``weight_decay=0``,
    ``tokens_seen=tokens``, ``scale`` named from ``params``, ``study=""``,
    ``seed=0``, ``trial_number`` the row order, ``run_id=""``.

    Status is then made consistent with the numbers:

    * a complete trial with ``tokens_seen < tokens`` is *pruned* (its loss was
      measured before the full budget and is never compared with full-budget
      losses);
    * a complete trial whose loss is NaN/inf, or above `divergence_factor`
      times the best finite loss of its cell (variant, params, tokens) at a
      learning rate above that best trial's, is *diverged*: it marks the
      learning-rate stability edge. A trial as bad at a lower learning rate
      only learned slowly and stays complete (a stability edge there would cap
      every recommended learning rate below it).

    Raises:
        ValueError: a required column is missing, the table is empty, a
            positive column holds a value <= 0, or a status is unknown.
    """
    if table.empty:
        raise ValueError("trials: the table is empty; pass at least one trial row")
    for column in REQUIRED_COLUMNS:
        if column not in table.columns:
            raise ValueError(
                f"trials: missing required column '{column}'; add it or rename your column to '{column}'"
            )
    trials = table.reset_index(drop=True).copy()
    for column in (*_POSITIVE_COLUMNS, "loss"):
        trials[column] = pd.to_numeric(trials[column], errors="coerce").astype(float)
    for column in _POSITIVE_COLUMNS:
        bad = ~(trials[column] > 0)
        if bad.any():
            raise ValueError(
                f"trials: column '{column}' must be > 0 but {int(bad.sum())} rows are not; fix or drop them"
            )
    defaults: Mapping[str, object] = {
        "study": "",
        "variant": "default",
        "weight_decay": 0.0,
        "seed": 0,
        "status": COMPLETE,
        "run_id": "",
    }
    for column, value in defaults.items():
        if column not in trials.columns:
            trials[column] = value
    if "tokens_seen" not in trials.columns:
        trials["tokens_seen"] = trials["tokens"]
    if "trial_number" not in trials.columns:
        trials["trial_number"] = np.arange(len(trials))
    if "scale" not in trials.columns:
        trials["scale"] = trials["params"].map(scale_name)
    trials["tokens_seen"] = pd.to_numeric(trials["tokens_seen"], errors="coerce").fillna(trials["tokens"])
    trials["weight_decay"] = pd.to_numeric(trials["weight_decay"], errors="coerce").fillna(0.0)
    trials["variant"] = trials["variant"].astype(str)
    trials["status"] = trials["status"].astype(str).str.lower()
    unknown = sorted(set(trials["status"]) - set(FINAL_STATUSES))
    if unknown:
        raise ValueError(f"trials: unknown status {unknown}; use one of {list(FINAL_STATUSES)}")
    _mark_pruned_and_diverged(trials, divergence_factor)
    return trials.loc[:, list(TRIAL_COLUMNS)]


def _mark_pruned_and_diverged(trials: pd.DataFrame, divergence_factor: float) -> None:
    complete = trials["status"] == COMPLETE
    trials.loc[complete & (trials["tokens_seen"] < trials["tokens"]), "status"] = PRUNED
    complete = trials["status"] == COMPLETE
    finite = np.isfinite(trials["loss"])
    trials.loc[complete & ~finite, "status"] = DIVERGED
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
    """Read a CSV of trials and normalise it (`normalize_trials`).

    `rename` maps a foreign sweep's column names onto the contract's, e.g.
    ``{"N": "params", "D": "tokens", "bs": "batch_size"}``.
    """
    table = pd.read_csv(path)
    if rename:
        table = table.drop(columns=[c for c in rename.values() if c in table.columns and c not in rename])
        table = table.rename(columns=dict(rename))
    return normalize_trials(table, divergence_factor=divergence_factor)


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
