"""Every method of benchmarks/search_efficiency.py runs on every committed ladder table by replay.

One short search per method (3 trials per scale) on each table ends with a regret and a compute
fraction; a search reads only the table (each trial's losses are its grid point's curve) and repeats
exactly. The recommendation (`hpo.analysis.extrapolate`) rests on 2 bootstrap replicates instead of the
benchmark's 20: its fits are most of a search's time, and only its point values are used. No training:
about 20 s on a quiet machine.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import search_efficiency as se
import tabular_ladder as tab


@pytest.fixture(autouse=True)
def few_bootstrap_replicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(se, "EXTRAPOLATE_BOOTSTRAP", 2)


@pytest.fixture(scope="module", params=sorted(tab.TABLES))
def table(request: pytest.FixtureRequest) -> tab.TabularLadder:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("hpo").setLevel(logging.ERROR)
    return tab.TabularLadder.from_csv(tab.TABLES[request.param])


def test_the_ladder_is_the_tables_smaller_scales_and_the_target_its_largest(table: tab.TabularLadder
                                                                             ) -> None:
    ladder = se.table_ladder(table)
    assert ladder.params == tuple(table.params(s) for s in table.scales[:-1])
    assert ladder.params == tuple(sorted(ladder.params))
    assert ladder.target_params == table.params(table.scales[-1]) > max(ladder.params)
    assert ladder.tokens == tuple(float(table.tokens(s)) for s in table.scales[:-1])


@pytest.mark.parametrize("method", se.SEARCHES)
def test_every_method_runs_by_replay(table: tab.TabularLadder, method: str) -> None:
    outcomes = se.repetition(table, method, 3, 0, se.table_ladder(table))
    assert [o.method for o in outcomes] == ([method, "naive_transfer"] if method == "independent"
                                            else [method])
    for outcome in outcomes:
        assert outcome.compute_fraction > 0
        assert outcome.regret_pct >= 0 or math.isinf(outcome.regret_pct)


def test_a_replayed_search_repeats_exactly(table: tab.TabularLadder) -> None:
    ladder = se.table_ladder(table)
    first, _ = se.search_ladder(table, "scale_aware", 3, 0, ladder)
    again, _ = se.search_ladder(table, "scale_aware", 3, 0, ladder)
    pd.testing.assert_frame_equal(first, again)


def test_a_search_reads_its_trials_losses_from_the_table(table: tab.TabularLadder) -> None:
    ladder = se.table_ladder(table)
    history, _ = se.search_ladder(table, "asha_random", 4, 1, ladder)
    assert set(history["params"]) == set(ladder.params)
    final = table.final_losses()
    for row in history[history["status"] == "complete"].itertuples():
        point = table.snap(table.scale(row.params), {"lr": row.lr, "batch_size": row.batch_size,
                                                     "weight_decay": row.weight_decay})
        seeds = final[(final["scale"] == table.scale(row.params)) & (final["lr"] == point["lr"])
                      & (final["batch_size"] == point["batch_size"])
                      & (final["weight_decay"] == point["weight_decay"])]
        assert np.isclose(seeds["loss"], row.loss, rtol=0, atol=0).any()


def test_every_grid_point_reads_each_ladder_run_once_on_one_of_its_seeds(table: tab.TabularLadder) -> None:
    ladder = se.table_ladder(table)
    recommended: list[pd.DataFrame] = []
    recommend = se.recommend

    def keep(history: pd.DataFrame, seed: int, ladder: se.Ladder) -> dict[str, float]:
        recommended.append(history)
        return recommend(history, seed, ladder)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(se, "recommend", keep)
        outcome = se.every_grid_point(table, 0, ladder)
    (history,) = recommended
    final = table.final_losses()
    final = final[final["scale"].isin(table.ladder_scales)]
    points = final.drop_duplicates(["scale", *tab.SETTING])
    assert outcome.method == "every_grid_point" and outcome.budget == len(history) == len(points)
    assert not history.duplicated(["scale", *tab.SETTING]).any()
    for _, trial in history.sample(20, random_state=0).iterrows():  # each trial is one seed's run, as tabled
        runs = final[(final["scale"] == trial["scale"]) & (final["lr"] == trial["lr"])
                     & (final["batch_size"] == trial["batch_size"])
                     & (final["weight_decay"] == trial["weight_decay"])]
        assert trial["loss"] in set(runs["loss"]) or (math.isnan(trial["loss"]) and runs["loss"].isna().any())
    flops = sum(6.0 * table.params(s) * table.tokens(s) * len(points[points["scale"] == s])
                for s in table.ladder_scales)
    assert outcome.compute_fraction == pytest.approx(flops / ladder.target_flops)
    assert outcome.regret_pct >= 0 or math.isinf(outcome.regret_pct)
