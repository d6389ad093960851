"""Regret of a setting in a measured cell, read from the nearest trial or a local surface."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import normalize_trials
from hpo.evaluation.regret import local_loss, regret_pct


@pytest.fixture(scope="module")
def bowl() -> pd.DataFrame:
    """A noiseless grid: loss = 2·(1 + 0.01·log2(lr/1e-3)² + 0.005·log2(batch/128)²); lr ≥ 2e-2 diverges."""
    lrs, batches = np.meshgrid(np.geomspace(1e-4, 4e-2, 12), 2.0 ** np.arange(4, 11))
    lrs, batches = lrs.ravel(), batches.ravel()
    loss = 2 * (1 + 0.01 * np.log2(lrs / 1e-3) ** 2 + 0.005 * np.log2(batches / 128) ** 2)
    loss = np.where(lrs >= 2e-2, np.nan, loss)
    return normalize_trials(
        pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs, "batch_size": batches, "loss": loss}).assign(
            status=np.where(np.isnan(loss), "diverged", "complete")
        )
    )


def test_local_surface_reads_a_quadratic_bowl_exactly(bowl: pd.DataFrame) -> None:
    complete = bowl[bowl["status"] == "complete"]
    expected = 2 * (1 + 0.01 * 0.5**2 + 0.005 * 0.25**2)
    assert local_loss(complete, 1e-3 * 2**0.5, 128 * 2**0.25) == pytest.approx(expected, rel=1e-9)


def test_best_measured_setting_has_zero_regret(bowl: pd.DataFrame) -> None:
    best = bowl.loc[bowl["loss"].idxmin()]
    for method in ("local", "nearest"):
        assert regret_pct(bowl, best["lr"], best["batch_size"], method=method) == pytest.approx(0.0, abs=1e-6)


def test_regret_grows_away_from_the_optimum(bowl: pd.DataFrame) -> None:
    near = regret_pct(bowl, 2e-3, 128)
    far = regret_pct(bowl, 8e-3, 128)
    assert 0 < near < far


def test_setting_among_diverged_trials_has_infinite_regret(bowl: pd.DataFrame) -> None:
    assert regret_pct(bowl, 3.5e-2, 128) == math.inf


def test_unknown_method_is_rejected(bowl: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="regret method"):
        regret_pct(bowl, 1e-3, 128, method="argmin")
