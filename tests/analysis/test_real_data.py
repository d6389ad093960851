"""Real sweeps measured by others (../shared/data): leave-largest-out on Step Law, loss laws on Chinchilla.

The Step Law grids hold four model sizes (215M-537M) at 3-4 token budgets
each. The laws are fitted on the three smaller sizes and must predict an lr
and batch size for the largest whose loss, read from a local surface of the
held-out cell's own runs, is within 0.5% of the best measured there, and
better than reusing the best setting of the largest fitted size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import fit_loss_law
from hpo.evaluation.backtest import PREDICTED, REUSE_BEST, HeldOutCell, leave_largest_out


@pytest.fixture(scope="module")
def held_out(steplaw_trials: pd.DataFrame) -> list[HeldOutCell]:
    return leave_largest_out(steplaw_trials, n_bootstrap=30)


def mean_regret(cells: list[HeldOutCell], method: str) -> float:
    return float(np.mean([cell.regret_local_pct[method] for cell in cells]))


def test_every_budget_of_the_largest_size_is_held_out(held_out: list[HeldOutCell]) -> None:
    assert {cell.tokens for cell in held_out} == {1e10, 2.84e10, 5e10}
    assert all(cell.params == 536_872_960 for cell in held_out)


def test_predicted_setting_is_within_half_a_percent_of_the_best_measured(held_out: list[HeldOutCell]) -> None:
    assert all(cell.regret_local_pct[PREDICTED] < 0.5 for cell in held_out)
    assert all(cell.regret_nearest_pct[PREDICTED] < 0.5 for cell in held_out)


def test_predicted_setting_beats_reusing_the_largest_fitted_sizes_best(held_out: list[HeldOutCell]) -> None:
    assert mean_regret(held_out, PREDICTED) < mean_regret(held_out, REUSE_BEST)


def test_predicted_optimum_moves_with_the_token_budget(held_out: list[HeldOutCell]) -> None:
    by_budget = sorted(held_out, key=lambda cell: cell.tokens)
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
