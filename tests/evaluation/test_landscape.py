"""One synthetic landscape (`hpo.evaluation.landscape`), drawn from by the surrogate and the trial tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpo.evaluation.landscape import Landscape
from hpo.evaluation.surrogate import Surrogate
from hpo.evaluation.synthetic import make_grid_sweep, make_synthetic_trials

SETTING = {"lr": 1e-3, "batch_size": 64.0, "weight_decay": 0.05}


def test_a_landscape_is_its_laws_times_a_penalty_steeper_above_the_best_lr() -> None:
    landscape = Landscape(lr_a=2.0, lr_b=-0.7, lr_c=0.3, high_lr_steepness=3.0, divergence_ratio=4.0)
    params, tokens = 1e8, 2e9
    best = landscape.optimum(params, tokens)
    assert best["lr"] == pytest.approx(2.0 * params**-0.7 * tokens**0.3)
    assert landscape.true_loss(params, tokens, best) == pytest.approx(landscape.optimal_loss(params, tokens))
    above = landscape.penalty({**best, "lr": best["lr"] * math.e}, best) - 1
    below = landscape.penalty({**best, "lr": best["lr"] / math.e}, best) - 1
    assert above == pytest.approx(3 * below) and below == pytest.approx(landscape.lr_curvature)
    assert landscape.true_loss(params, tokens, {**best, "lr": best["lr"] * 4.01}) == math.inf
    with pytest.raises(ValueError, match="depends on D"):
        landscape.optimal_lr(params)


def test_the_surrogate_draws_its_laws_from_its_landscape_with_its_numbers_unchanged() -> None:
    """The values pinned are those of the surrogate before it drew from `Landscape` (to the last digit)."""
    surrogate = Surrogate()
    landscape = surrogate.landscape
    assert surrogate.optimal_lr(1e6) == landscape.optimal_lr(1e6) == pytest.approx(0.0029858037791512288)
    assert surrogate.optimal_batch_size(2e7) == pytest.approx(41.62766037009368, rel=1e-12)
    assert surrogate.optimal_loss(1e8, 2e9) == landscape.optimal_loss(1e8, 2e9)
    assert surrogate.true_loss(1e8, 2e9, SETTING) == pytest.approx(3.5589071949267814, rel=1e-12)
    noisy = surrogate.loss(1e6, 2e7, SETTING, 2e7 / 9, np.random.default_rng(0))
    assert noisy == pytest.approx(12.638558167495981, rel=1e-12)
    broken = surrogate.with_lr_break(1e7, 10.0)
    assert broken.optimal_lr(1e7) == pytest.approx(10 * surrogate.optimal_lr(1e7))
    assert broken.optimal_lr(1e6) == surrogate.optimal_lr(1e6)


def test_trial_tables_draw_their_losses_from_the_landscape() -> None:
    landscape = Landscape(lr_a=2.0, lr_b=-0.7, lr_c=0.3, batch_c=0.5, batch_b=0.0, batch_a=0.002, noise=0.0)
    sweep = make_grid_sweep(landscape, [(1e8, 2e9)], lrs=[1e-3, 4e-3, 1e-1], batch_sizes=[64, 128])
    for row in sweep.itertuples():
        setting = {"lr": row.lr, "batch_size": row.batch_size, "weight_decay": 0.0}
        expected = landscape.true_loss(1e8, 2e9, setting)
        assert (row.status == "diverged") == (expected == math.inf)
        assert row.loss == pytest.approx(expected) or (math.isnan(row.loss) and expected == math.inf)
    trials = make_synthetic_trials([landscape], [1e8], trials_per_cell=50, pruned_share=0.0)
    complete = trials[trials["status"] == "complete"]
    expected = [
        landscape.true_loss(1e8, 2e9, {"lr": lr, "batch_size": batch, "weight_decay": 0.0})
        for lr, batch in zip(complete["lr"], complete["batch_size"], strict=True)
    ]
    assert isinstance(complete, pd.DataFrame) and complete["loss"].tolist() == pytest.approx(expected)
