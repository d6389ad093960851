"""Loss regret of a setting in a measured cell: how much worse than the best measured there, in %.

Two ways to read the loss of a setting (lr, batch size) that was not
necessarily run:

* ``"nearest"``: the loss of the nearest complete trial, distance measured in
  octaves of lr and of batch size; compared with the lowest measured loss.
* ``"local"``: a local quadratic in (log₂ lr, log₂ batch size) fitted by
  least squares with Gaussian kernel weights of standard deviation
  `bandwidth` octaves around the setting (LOESS), which averages out the
  run-to-run noise of neighbouring trials; compared with the lowest value of
  the same smoother at the settings that were run.

A setting whose nearest trial diverged has infinite regret.
"""

from __future__ import annotations

import math
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd

from hpo.vocab import COMPLETE, DIVERGED

METHODS = ("local", "nearest")


def regret_pct(
    rows: pd.DataFrame, lr: float, batch_size: float, *, method: str = "local", bandwidth: float = 1.0
) -> float:
    """``100·(L(setting) - L_best) / L_best`` in one cell's trials (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"regret method must be one of {METHODS}, got {method!r}")
    complete = rows[rows["status"] == COMPLETE]
    if _nearest_trial(rows, lr, batch_size)["status"] == DIVERGED:
        return math.inf
    if method == "nearest":
        loss = float(_nearest_trial(complete, lr, batch_size)["loss"])
        best = float(complete["loss"].min())
    else:
        loss = local_loss(complete, lr, batch_size, bandwidth=bandwidth)
        best = local_best(complete, bandwidth=bandwidth)
    return 100.0 * (loss - best) / best


def local_best(rows: pd.DataFrame, *, bandwidth: float = 1.0) -> float:
    """The lowest `local_loss` at the settings of the complete trials `rows`: the local reading's best."""
    run = zip(rows["lr"], rows["batch_size"], strict=True)
    return min(local_loss(rows, lr, batch_size, bandwidth=bandwidth) for lr, batch_size in run)


def local_loss(rows: pd.DataFrame, lr: float, batch_size: float, *, bandwidth: float = 1.0) -> float:
    """Loss at (lr, batch size) from a kernel-weighted local quadratic over complete trials `rows`."""
    offsets = np.column_stack([np.log2(rows["lr"] / lr), np.log2(rows["batch_size"] / batch_size)])
    weights = np.sqrt(np.exp(-0.5 * (offsets**2).sum(axis=1) / bandwidth**2))
    pairs = combinations_with_replacement(range(2), 2)
    features = np.column_stack(
        [np.ones(len(offsets)), *offsets.T, *(offsets[:, i] * offsets[:, j] for i, j in pairs)]
    )
    coefficients = np.linalg.lstsq(
        features * weights[:, None], rows["loss"].to_numpy() * weights, rcond=None
    )[0]
    return float(coefficients[0])


def _nearest_trial(rows: pd.DataFrame, lr: float, batch_size: float) -> pd.Series:
    lrs, batch_sizes = rows["lr"].to_numpy(dtype=float), rows["batch_size"].to_numpy(dtype=float)
    distance = np.log2(lrs / lr) ** 2 + np.log2(batch_sizes / batch_size) ** 2
    return rows.iloc[int(np.argmin(distance))]
