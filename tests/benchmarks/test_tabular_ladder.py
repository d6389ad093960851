"""Ladder tables (benchmarks/tabular_ladder.py) check their grid and replay their own numbers exactly.

On a small synthetic table: the replay rules (seeds, rungs, snapping, regret, divergence) and the checks
that refuse a damaged table. The committed tables are tested in test_committed_tables.py. No training.
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

D = {"s": 270, "t": 540}
LRS = (1e-3, 1.778e-3, 3.162e-3)
BATCHES = (8, 16)
WDS = (0.0, 0.1)
SEEDS = (0, 1)


def synthetic_table() -> pd.DataFrame:
    """Two scales, s (N = 100) and t (N = 1000, the target); loss = a bowl in log lr whose bottom is
    lr 1.778e-3, batch 8, wd 0.1, plus 0.001 × seed, falling with tokens seen; the run at t with lr 3.162e-3,
    batch 16, wd 0, seed 1 diverges after its third evaluation."""
    rows = []
    for (scale, n), lr, batch, wd, seed in itertools.product((("s", 100), ("t", 1000)), LRS, BATCHES, WDS,
                                                           SEEDS):
        diverged = scale == "t" and (lr, batch, wd, seed) == (3.162e-3, 16, 0.0, 1)
        for k in range(1, 4 if diverged else 28):
            seen = D[scale] // 27 * k
            loss = (3.0 - math.log10(n) / 4 + math.log(lr / 1.778e-3) ** 2 + 0.01 * (batch == 16)
                    + 0.005 * (wd == 0) + 0.001 * seed + 1.0 / k)
            rows.append({"family": "toy", "scale": scale, "params": n, "tokens": D[scale], "lr": lr,
                         "batch_size": batch, "weight_decay": wd, "seed": seed, "tokens_seen": seen,
                         "loss": loss, "train_loss": loss + 0.1,
                         "status": "diverged" if diverged else "complete"})
    return pd.DataFrame(rows)


def test_replay_reads_the_curve_of_the_drawn_seed_at_each_rung() -> None:
    table = synthetic_table()
    truth = tab.TabularLadder(table)
    setting = {"lr": 1.778e-3, "batch_size": 8, "weight_decay": 0.1}
    for draw in range(6):
        rng = np.random.default_rng(draw)
        seed = SEEDS[int(np.random.default_rng(draw).integers(len(SEEDS)))]
        curve = table[(table["scale"] == "s") & (table["lr"] == 1.778e-3) & (table["batch_size"] == 8)
                      & (table["weight_decay"] == 0.1) & (table["seed"] == seed)]
        for k in (1, 3, 9, 27):  # one trial: its rungs, in order, read one seed
            expected = float(curve.loc[curve["tokens_seen"] == D["s"] // 27 * k, "loss"].iloc[0])
            assert truth.loss(100, D["s"], setting, D["s"] / 27 * k, rng) == expected


def test_a_new_trial_of_a_grid_point_draws_its_own_seed() -> None:
    truth = tab.TabularLadder(synthetic_table())
    setting = {"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0}
    rng = np.random.default_rng(0)
    finals = set()
    for _ in range(20):
        truth.loss(100, D["s"], setting, D["s"] / 27, rng)
        finals.add(truth.loss(100, D["s"], setting, D["s"], rng))
    assert len(finals) == 2  # the two seeds' final losses, both read


def test_off_grid_settings_read_the_nearest_grid_point() -> None:
    truth = tab.TabularLadder(synthetic_table())
    assert truth.snap("s", {"lr": 2.1e-3, "batch_size": 11, "weight_decay": 0.02}) == {
        "lr": 1.778e-3, "batch_size": 8, "weight_decay": 0.1}
    assert truth.snap("s", {"lr": 1.0, "batch_size": 1024, "weight_decay": 0.0}) == {
        "lr": 3.162e-3, "batch_size": 16, "weight_decay": 0.0}
    space = truth.space()
    assert (space.lr.low, space.lr.high) == (1e-3, 3.162e-3)
    assert space.batch_size.choices == BATCHES and space.weight_decay.zero


def test_regret_is_against_the_targets_best_mean_over_seeds() -> None:
    table = synthetic_table()
    truth = tab.TabularLadder(table)
    assert truth.target_scale == "t" and truth.ladder_scales == ("s",)
    best, loss = truth.best("t")
    assert best == {"lr": 1.778e-3, "batch_size": 8, "weight_decay": 0.1}
    final = table[(table["scale"] == "t") & (table["tokens_seen"] == D["t"])]
    assert loss == pytest.approx(final[(final["lr"] == 1.778e-3) & (final["batch_size"] == 8)
                                       & (final["weight_decay"] == 0.1)]["loss"].mean())
    assert truth.regret_pct(1000, D["t"], best, truth.space()) == 0.0
    other = {"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0}
    other_loss = truth.mean_final_loss("t", other)
    regret = truth.regret_pct(1000, D["t"], other, truth.space())
    assert regret == pytest.approx(100 * (other_loss / loss - 1))
    diverged = {"lr": 3.162e-3, "batch_size": 16, "weight_decay": 0.0}
    assert truth.regret_pct(1000, D["t"], diverged, truth.space()) == math.inf


def test_a_diverged_run_reads_nan_after_its_last_evaluation() -> None:
    truth = tab.TabularLadder(synthetic_table())
    setting = {"lr": 3.162e-3, "batch_size": 16, "weight_decay": 0.0}
    rng = np.random.default_rng(0)
    for _ in range(10):  # until a trial draws seed 1, the diverged one
        truth.loss(1000, D["t"], setting, D["t"] / 27, rng)
        if math.isnan(truth.loss(1000, D["t"], setting, D["t"] / 9 * 2, rng)):
            return
    raise AssertionError("no trial read the diverged seed")


@pytest.mark.parametrize("damage", ["missing point", "unsorted curve", "short complete run", "no column"])
def test_check_table_refuses_a_damaged_table(damage: str) -> None:
    table = synthetic_table()
    if damage == "missing point":
        table = table[~((table["scale"] == "s") & (table["lr"] == 1e-3) & (table["seed"] == 0)
                        & (table["batch_size"] == 8) & (table["weight_decay"] == 0.0))]
    elif damage == "unsorted curve":
        table = pd.concat([table.iloc[[1]], table.iloc[[0]], table.iloc[2:]])
    elif damage == "short complete run":
        table = table[~((table["scale"] == "s") & (table["tokens_seen"] == D["s"]) & (table["seed"] == 0)
                        & (table["lr"] == 1e-3) & (table["batch_size"] == 8) & (table["weight_decay"] == 0))]
    else:
        table = table.drop(columns="train_loss")
    with pytest.raises(ValueError):
        tab.check_table(table)


def test_written_tables_read_back(tmp_path: Path) -> None:
    table = synthetic_table()
    written = tab.write_table(table.to_dict("records"), tmp_path / "toy.csv.gz")
    back = tab.load_table(tmp_path / "toy.csv.gz")
    pd.testing.assert_frame_equal(back, written, check_exact=False, rtol=1e-6)


def test_a_trial_with_its_own_seed_reads_that_seed_and_the_table_holds_no_more() -> None:
    """A plan's repeated setting names its seed: index k reads the grid's k-th seed at every rung, and an
    index the table does not hold is refused rather than replayed from another seed."""
    table = synthetic_table()
    truth = tab.TabularLadder(table)
    setting = {"lr": 1.778e-3, "batch_size": 8, "weight_decay": 0.1}
    rng = np.random.default_rng(0)
    for index, seed in enumerate(SEEDS):
        curve = table[(table["scale"] == "s") & (table["lr"] == 1.778e-3) & (table["batch_size"] == 8)
                      & (table["weight_decay"] == 0.1) & (table["seed"] == seed)]
        for k in (1, 3, 9, 27):
            expected = float(curve.loc[curve["tokens_seen"] == D["s"] // 27 * k, "loss"].iloc[0])
            assert truth.loss(100, D["s"], setting, D["s"] / 27 * k, rng, seed=index) == expected
    with pytest.raises(ValueError, match="seeds per grid point"):
        truth.loss(100, D["s"], setting, D["s"], rng, seed=len(SEEDS))
