"""`benchmarks/locators.py` re-analyses one scale-aware search with every locator, on a committed table."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import locators
import search_efficiency as se
from tabular_ladder import TABLES, TabularLadder

TABLE_NAMES = [name for name, path in TABLES.items() if path.exists()]


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_every_locator_scores_the_same_search(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = TabularLadder.from_csv(TABLES[name])
    monkeypatch.setattr(locators, "_TRUTH", truth)
    monkeypatch.setattr(locators, "_LADDER", se.table_ladder(truth))

    regrets, read = locators.repetition((4, 0))

    assert len(regrets) == len(locators.ROWS)
    assert all(r >= 0 or math.isinf(r) for r in regrets)
    assert math.isnan(read) or read > 0


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_a_tables_own_noise_lies_between_a_tenth_of_a_percent_and_three(name: str) -> None:
    sigma = locators.table_sigma(TabularLadder.from_csv(TABLES[name]))

    assert 0.001 < sigma < 0.03
