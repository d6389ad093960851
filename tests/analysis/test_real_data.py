"""Real sweeps measured by others (../shared/data): Step Law grids backtested, Chinchilla's loss law.

The Step Law grids hold four model sizes (215M-537M) at 3-4 token budgets
each, every cell a grid of about 12 learning rates x 10 batch sizes. The
backtest holds sizes out (the largest, then the largest of the rest, then
each size inside the span), fits the others and judges the prediction in the
held-out cells against their own runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import fit_loss_law, fit_scaling
from hpo.evaluation.backtest import (
    LEAVE_LARGEST_OUT,
    LEAVE_ONE_OUT,
    PREDICTED,
    REUSE_BEST,
    BacktestReport,
    run_backtest,
)


@pytest.fixture(scope="module")
def backtest(steplaw_trials: pd.DataFrame) -> BacktestReport:
    return run_backtest(steplaw_trials, n_bootstrap=20)


def test_the_largest_sizes_and_every_size_inside_the_span_are_held_out(backtest: BacktestReport) -> None:
    held_out = [
        (fold.kind, round(fold.held_out_params / 1e6), len(fold.fitted_params)) for fold in backtest.folds
    ]
    assert held_out == [
        (LEAVE_LARGEST_OUT, 537, 3),
        (LEAVE_LARGEST_OUT, 429, 2),
        (LEAVE_ONE_OUT, 268, 3),
        (LEAVE_ONE_OUT, 429, 3),
    ]
    assert {cell.tokens for cell in backtest.folds[0].cells} == {1e10, 2.84e10, 5e10}


def test_a_grid_sweep_is_fitted_through_near_best_bands(steplaw_trials: pd.DataFrame) -> None:
    variant_fit = fit_scaling(steplaw_trials, loss_law=False).variants["default"]
    assert all(optimum.method == "near_best" for optimum in variant_fit.optima)
    assert 0.0002 < variant_fit.noise < 0.003, "loss noise of smoothed final losses: a few hundredths of a %"


def test_the_largest_size_predicted_from_all_others_is_within_a_tenth_of_a_percent(
    backtest: BacktestReport,
) -> None:
    largest = backtest.folds[0]
    assert all(cell.regret_local_pct[PREDICTED] < 0.1 for cell in largest.cells)
    assert np.mean([c.regret_local_pct[PREDICTED] for c in largest.cells]) < np.mean(
        [c.regret_local_pct[REUSE_BEST] for c in largest.cells]
    )


def test_intervals_cover_most_held_out_cells_without_spanning_decades(backtest: BacktestReport) -> None:
    assert backtest.coverage() >= 0.75
    assert backtest.median_lr_interval_ratio() < 3.0


def test_predicted_optimum_moves_with_the_token_budget(backtest: BacktestReport) -> None:
    by_budget = sorted(backtest.folds[0].cells, key=lambda cell: cell.tokens)
    assert by_budget[0].predicted_lr.value < by_budget[-1].predicted_lr.value
    assert by_budget[0].predicted_batch_size.value < by_budget[-1].predicted_batch_size.value


def test_chinchilla_loss_law_predicts_the_largest_budgets_within_two_percent(shared_data: Path) -> None:
    points = pd.read_csv(shared_data / "chinchilla_fig4_points.csv")
    params = points["Model Size"].to_numpy()
    compute = points["Training FLOP"].to_numpy()
    tokens = compute / (6 * params)
    loss = points["loss"].to_numpy()
    fitted = compute < 1e21
    law = fit_loss_law(params[fitted], loss[fitted], tokens=tokens[fitted], n_bootstrap=5)
    assert 0.25 < law.alpha < 0.45 and 0.25 < law.beta < 0.6
    error = np.abs(law.predict(params[~fitted], tokens[~fitted]) / loss[~fitted] - 1)
    assert np.median(error) < 0.02
