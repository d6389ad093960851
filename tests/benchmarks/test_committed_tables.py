"""The committed ladder tables (benchmarks/data/*.csv.gz) are what their README says, and replay reads them.

Their columns, full grids, evaluations every D/27 tokens, increasing curves, and a replayed trial reading
its run's numbers exactly. No training: a few seconds.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import tabular_ladder as tab


@pytest.fixture(scope="module", params=sorted(tab.TABLES))
def committed(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame]:
    return request.param, tab.load_table(tab.TABLES[request.param])


def test_committed_tables_have_the_documented_columns_and_full_grids(committed: tuple[str, pd.DataFrame]
                                                                     ) -> None:
    _, table = committed
    assert tuple(table.columns) == tab.COLUMNS
    assert set(table["status"]) <= set(tab.STATUSES)
    for scale, rows in table.groupby("scale"):
        grid = {c: rows[c].nunique() for c in ("lr", "batch_size", "weight_decay", "seed")}
        assert grid["lr"] >= 7 and grid["batch_size"] >= 3 and grid["weight_decay"] >= 2, (scale, grid)
        assert grid["seed"] == 2
        d = int(rows["tokens"].iloc[0])
        complete = rows[rows["status"] == "complete"]
        # every complete run is evaluated at every D/27 tokens: the rungs D/27, D/9, D/3, D are evaluations
        assert set(complete["tokens_seen"]) == {d // 27 * k for k in range(1, 28)}, scale
        assert len(complete) == 27 * complete.groupby(list(tab.RUN)).ngroups
        for k in (1, 3, 9, 27):
            assert d * k % 27 == 0
        sorted_rows = rows.sort_values([*tab.RUN, "tokens_seen"])
        assert (sorted_rows.groupby(list(tab.RUN))["tokens_seen"].diff().dropna() > 0).all()
        assert rows["loss"].notna().all()


def test_committed_tables_replay_their_rows_exactly(committed: tuple[str, pd.DataFrame]) -> None:
    _, table = committed
    truth = tab.TabularLadder(table)
    runs = table.groupby(list(tab.RUN))
    keys = list(runs.groups)
    for index in np.random.default_rng(0).choice(len(keys), size=40, replace=False):
        scale, lr, batch, wd, seed = keys[index]
        curve = runs.get_group(keys[index])
        seeds = truth.grid(scale)["seed"]
        draw = next(d for d in itertools.count() if seeds[int(np.random.default_rng(d).integers(len(seeds)))]
                    == seed)
        rng = np.random.default_rng(draw)
        setting = {"lr": lr, "batch_size": batch, "weight_decay": wd}
        params, tokens = truth.params(scale), truth.tokens(scale)
        # one trial asking at every evaluation of its run, in order: the table's numbers, exactly
        replayed = [truth.loss(params, tokens, setting, seen, rng) for seen in curve["tokens_seen"]]
        assert replayed == curve["loss"].tolist()
        if curve["status"].iloc[0] == "diverged":
            assert math.isnan(truth.loss(params, tokens, setting, tokens, rng))


def test_the_gpt_table_is_the_ladder_of_issue_15() -> None:
    truth = tab.TabularLadder.from_csv(tab.TABLES["gpt"])
    assert truth.scales == ("13k", "100k", "336k", "793k") and truth.target_scale == "793k"
    for scale in truth.scales:
        grid = truth.grid(scale)
        lrs = np.array(grid["lr"])
        assert len(lrs) >= 7 and np.allclose(np.diff(np.log10(lrs)), 0.25, atol=1e-3)
        assert len(grid["batch_size"]) >= 3
        assert grid["weight_decay"] == (0.0, 0.1) and grid["seed"] == (0, 1)
        best, _ = truth.best(scale)
        assert lrs[0] < best["lr"] < lrs[-1], f"{scale}: the best lr {best['lr']} is on the grid's edge"


def test_a_table_cut_at_a_scale_makes_it_the_target(committed: tuple[str, pd.DataFrame]) -> None:
    _, table = committed
    truth = tab.TabularLadder(table)
    target = truth.scales[-2]
    cut = truth.up_to(target)
    assert cut.target_scale == target
    assert cut.ladder_scales == truth.scales[:-2]
    assert cut.best(target) == truth.best(target)
    with pytest.raises(ValueError, match="fewer than two scales"):
        truth.up_to(truth.scales[1])
    with pytest.raises(ValueError, match="not a scale"):
        truth.up_to("w9999")
