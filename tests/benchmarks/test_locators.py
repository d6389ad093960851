"""`benchmarks/locators.py` re-analyses one scale-aware search with every locator, on a committed table."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import locators
import search_efficiency as se
from tabular_ladder import SETTING, TABLES, TabularLadder

TABLE_NAMES = [name for name, path in TABLES.items() if path.exists()]


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_the_rows_differ_only_by_the_analysis_of_one_search(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the search's σ is unreadable, `auto` takes the surfaces and the bands at σ read fall back to
    the tolerance (0.1%): those rows must score alike, which they do only on the same history."""
    truth = TabularLadder.from_csv(TABLES[name])
    monkeypatch.setattr(locators, "_TRUTH", truth)
    monkeypatch.setattr(locators, "_LADDER", se.table_ladder(truth))

    regrets, read = locators.repetition((4, 0))

    by_row = dict(zip(locators.ROWS, regrets, strict=True))
    assert math.isnan(read)
    assert all(math.isfinite(r) and r >= 0 for r in regrets)
    assert by_row["auto"] == by_row["surface"]
    assert by_row["near_best, σ read"] == by_row["near_best, σ 0.1%"]


def test_a_tables_own_noise_is_read_from_its_two_seeds_near_each_scales_best() -> None:
    rng = np.random.default_rng(0)
    sigma, rows = 0.008, []
    for scale in ("small", "large"):
        for k, lr in enumerate(np.geomspace(1e-3, 1e-1, 400)):
            mean = 2.0 * (1 + 0.01 * (k % 3)) if k < 300 else 4.0
            spread = sigma if k < 300 else 0.2
            for seed in (0, 1):
                loss = mean * math.exp(spread * rng.standard_normal())
                rows.append({"scale": scale, **dict(zip(SETTING, (lr, 8, 0.0), strict=True)),
                             "seed": seed, "loss": loss})

    read = locators.table_sigma(pd.DataFrame(rows))

    assert read == pytest.approx(sigma, rel=0.1)
