"""A loss steeper above the optimum than below: its ratio from the cells, and the setting it asks for."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import extrapolate, fit_scaling, normalize_trials
from hpo.analysis.asymmetry import cell_steepness_ratio, point_offset, pooled_steepness_ratio
from hpo.evaluation.landscape import Landscape

LRS = 3e-3 * 2.0 ** np.arange(-3, 3.5, 0.5)


def profile_losses(steepness: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    offset = np.log(LRS / 3e-3)
    clean = 2.5 * (1 + 0.01 * np.where(offset > 0, steepness, 1.0) * offset**2)
    return clean * (1 + noise * np.random.default_rng(seed).standard_normal(LRS.size))


@pytest.mark.parametrize("steepness", [1.0, 3.0, 6.0])
def test_a_cell_tells_how_much_steeper_its_loss_rises_above_the_optimum(steepness: float) -> None:
    assert cell_steepness_ratio(LRS, profile_losses(steepness)) == pytest.approx(steepness, rel=0.05)


def test_the_profile_takes_the_lowest_loss_of_each_value_and_needs_two_values_a_side() -> None:
    lrs, losses = np.repeat(LRS, 2), np.repeat(profile_losses(3.0), 2) * np.tile([1.0, 1.05], LRS.size)
    assert cell_steepness_ratio(lrs, losses) == pytest.approx(3.0, rel=0.05)
    assert cell_steepness_ratio(LRS[5:], profile_losses(3.0)[5:]) is None, "one value below the best"


def test_pooling_shrinks_the_cells_mean_ratio_towards_symmetry_by_its_standard_error() -> None:
    assert pooled_steepness_ratio([3.9, None, 4.0, 4.1]) == pytest.approx(4.0, rel=0.01)
    assert pooled_steepness_ratio([0.5, 4.0, 1.5, 0.7]) == 1.0, "the cells disagree: no asymmetry to act on"
    assert 1.0 < pooled_steepness_ratio([2.0, 8.0, 4.0]) < 4.0
    assert pooled_steepness_ratio([None, 9.0]) == 1.0


def test_the_point_of_least_expected_loss_lies_below_the_median_when_overshooting_costs_more() -> None:
    draws = np.random.default_rng(0).standard_normal(200_000)
    for ratio in (0.5, 3.0, 6.0):
        z = point_offset(ratio)

        def expected(at: float, ratio: float = ratio) -> float:
            u = at - draws
            return float(np.mean(np.where(u > 0, ratio, 1.0) * u**2))

        assert expected(z) <= min(expected(z - 0.05), expected(z + 0.05))
    assert point_offset(1.0) == 0.0
    assert point_offset(6.0) < point_offset(3.0) < 0 < point_offset(0.5)


def test_extrapolate_sets_lr_below_the_laws_median_on_a_landscape_steeper_above(
    grid_sweep: pd.DataFrame, grid_variant: Landscape
) -> None:
    fit = fit_scaling(normalize_trials(grid_sweep), loss_law=False).variants["default"]
    assert fit.steepness["lr"] == pytest.approx(grid_variant.high_lr_steepness, rel=0.3)
    assert fit.steepness["batch_size"] == pytest.approx(1.0, rel=0.3)
    rec = extrapolate(grid_sweep, target_params=8e8, target_tokens=8e8 * 60, n_bootstrap=5)
    law = rec.fit.variants["default"].laws["lr"]
    median = law.predict(8e8, 8e8 * 60)
    shift = math.log(rec.lr.value / median) / law.spread(8e8, 8e8 * 60)
    assert shift == pytest.approx(point_offset(fit.steepness["lr"]), abs=1e-6)
    assert rec.lr.low < rec.lr.value < median < rec.lr.high


def test_extrapolate_never_sets_lr_above_the_laws_median_where_the_loss_is_steeper_below(
    grid_sweep_steeper_below: pd.DataFrame,
) -> None:
    """Cells whose loss rises three times faster below lr* than above (as short runs at small scales read)
    ask, by the expected-loss rule, for an lr above the law's median; the step up would go past anything
    their profiles measured, towards the stability edge, so the recommendation stays at the median."""
    rec = extrapolate(grid_sweep_steeper_below, target_params=8e8, target_tokens=8e8 * 60, n_bootstrap=5)
    steepness = rec.fit.variants["default"].steepness["lr"]
    assert steepness < 1 and point_offset(steepness) > 0, "the expected-loss rule alone would step up"
    median = rec.fit.variants["default"].laws["lr"].predict(8e8, 8e8 * 60)
    assert rec.lr.value == pytest.approx(median, rel=1e-9)
