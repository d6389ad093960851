"""The ways to fit the laws (`fit_scaling(method=...)`) on a grid sweep and a random search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import extrapolate, fit_scaling, normalize_trials
from hpo.analysis.near_best import DEFAULT_TOLERANCE
from hpo.analysis.power_law import fit_power_law
from hpo.analysis.scaling_fit import NOISY
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_grid_sweep

GRID_CELLS = tuple((n, d) for n in (1e8, 2e8, 4e8) for d in (n * 20, n * 60, n * 180))
GRID_LRS = tuple(2.44e-4 * 2 ** (k / 2) for k in range(13))
GRID_BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048)


@pytest.fixture(scope="module")
def grid(grid_sweep: pd.DataFrame) -> pd.DataFrame:
    return normalize_trials(grid_sweep)


def test_auto_blends_bands_and_surfaces_on_a_grid_and_takes_surfaces_on_a_quiet_random_search(
    grid: pd.DataFrame, synthetic_trials: pd.DataFrame
) -> None:
    on_grid = fit_scaling(grid, loss_law=False).variants["default"]
    blended = fit_scaling(grid, method="blend", loss_law=False).variants["default"]
    on_random = fit_scaling(normalize_trials(synthetic_trials), loss_law=False, n_bootstrap=10).variants[
        "default"
    ]
    assert {o.method for o in on_grid.optima} == {"near_best"} and on_grid.noise is not None
    assert on_grid.laws_method == "blend" and on_random.laws_method == "surface"
    assert on_grid.laws["lr"].b == blended.laws["lr"].b and on_grid.laws["lr"].c == blended.laws["lr"].c
    assert {o.method for o in on_random.optima} == {"surface"} and on_random.noise is None


def test_auto_takes_the_bands_on_a_noisy_random_search_with_the_surfaces_tuned_losses(
    noisy_synthetic_trials: pd.DataFrame,
) -> None:
    """One loss's noise at 1%: the cells are located by their bands, and their tuned losses keep the
    surfaces' bootstrap intervals, which the loss law and the crossover verdicts read."""
    fit = fit_scaling(normalize_trials(noisy_synthetic_trials), n_bootstrap=20).variants["default"]
    assert fit.laws_method == "near_best" and fit.noise is not None and fit.noise > NOISY * DEFAULT_TOLERANCE
    assert {o.method for o in fit.optima} == {"near_best"}
    assert all(o.loss.low < o.loss.value < o.loss.high for o in fit.optima)
    assert fit.loss_law is not None


def test_a_blend_is_halfway_between_the_band_law_and_the_surface_minima_law_with_the_bands_interval(
    grid: pd.DataFrame,
) -> None:
    """On every cell the blend's lr law predicts the geometric mean of the band law's and of the law
    through the surface minima (each cell counted once), and keeps the band law's interval width."""
    bands = fit_scaling(grid, method="near_best", loss_law=False, shrink=False).variants["default"]
    blended = fit_scaling(grid, method="blend", loss_law=False, shrink=False).variants["default"]
    cells = [o for o in bands.optima if o.locates("lr")]
    params, tokens = np.array([o.params for o in cells]), np.array([o.tokens for o in cells])
    minima = fit_power_law(params, np.array([o.surface_minimum["lr"] for o in cells]), tokens=tokens)
    target = (1.6e9, 3.2e10)
    band, blend = bands.laws["lr"].estimate(*target), blended.laws["lr"].estimate(*target)
    assert blend.value == pytest.approx(np.sqrt(band.value * minima.predict(*target)), rel=1e-9)
    assert blend.high / blend.low == pytest.approx(band.high / band.low, rel=1e-9)


@pytest.mark.parametrize("method", ["near_best", "surface", "joint", "blend"])
def test_every_method_recovers_the_exponents_of_a_grid_sweep(
    grid: pd.DataFrame, grid_variant: Landscape, method: str
) -> None:
    laws = fit_scaling(grid, method=method, n_bootstrap=20, loss_law=False).variants["default"].laws
    assert laws["lr"].b == pytest.approx(grid_variant.lr_b, abs=0.15)
    assert laws["lr"].c == pytest.approx(grid_variant.lr_c, abs=0.1)
    assert laws["batch_size"].c == pytest.approx(grid_variant.batch_c, abs=0.1)


def test_near_best_intervals_cover_the_optimum_of_a_larger_model_in_most_sweeps(
    grid_variant: Landscape,
) -> None:
    """Six independent sweeps of 1e8-4e8 parameters, target 8e8 at 60 tokens per parameter."""
    target_params, target_tokens = 8e8, 8e8 * 60
    truth = grid_variant.optimal_lr(target_params, target_tokens)
    covered = []
    for seed in range(6):
        sweep = make_grid_sweep(
            grid_variant, GRID_CELLS, lrs=GRID_LRS, batch_sizes=GRID_BATCHES, seed=100 + seed
        )
        rec = extrapolate(sweep, target_params=target_params, target_tokens=target_tokens, n_bootstrap=5)
        covered.append(rec.lr.covers(truth))
    assert sum(covered) >= 5


def test_an_equal_weight_interval_widens_with_the_distance_to_the_cells() -> None:
    rng = np.random.default_rng(0)
    params = np.repeat([1e7, 3e7, 1e8], 3)
    law = fit_power_law(params, 0.1 * params**-0.5 * np.exp(0.1 * rng.standard_normal(params.size)))
    near, far = law.estimate(1e8), law.estimate(1e10)
    assert np.log(far.high / far.low) > 1.5 * np.log(near.high / near.low)


def test_as_many_cells_as_coefficients_take_the_cells_own_error_or_give_no_interval() -> None:
    params, optima = np.array([1e7, 1e8]), np.array([3e-3, 1e-3])
    assert np.isnan(fit_power_law(params, optima).estimate(1e9).low)
    floored = fit_power_law(params, optima, center_variances=np.array([0.01, 0.01])).estimate(1e9)
    assert floored.low < floored.value < floored.high


def test_an_unknown_method_is_rejected(grid: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        fit_scaling(grid, method="bayes")


def test_a_law_that_overflows_at_the_target_is_an_error_naming_the_law() -> None:
    """Batch-size optima that grow as N³ over three cells, extrapolated 117 decades: the law's value
    overflows a float, and the answer is a one-line error, not a crash while rounding it."""
    rows = []
    for params in (1e3, 2e3, 4e3):
        best_batch = 4 * (params / 1e3) ** 3
        for lr in np.geomspace(1e-3, 1e-1, 5):
            for batch in best_batch * np.array([0.25, 0.5, 1.0, 2.0, 4.0]):
                loss = 3.0 + 0.05 * np.log(lr / 1e-2) ** 2 + 0.05 * np.log(batch / best_batch) ** 2
                rows.append({"variant": "v", "scale": f"n{params:g}", "params": params, "tokens": 20 * params,
                             "lr": lr, "batch_size": batch, "weight_decay": 0.0, "loss": loss,
                             "status": "complete", "trial_id": len(rows)})
    with pytest.raises(ValueError, match="the batch_size law .* beyond what a float holds"):
        extrapolate(pd.DataFrame(rows), target_params=1e120)
