"""Power laws of optima: h*(N) = a·N^b and h*(N, D) = a·N^b·D^c."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import fit_power_law, fit_scaling, normalize_trials
from hpo.analysis.power_law import blend_laws, fit_constant, shrink_exponents

PARAMS = np.array([1e7, 3e7, 1e8, 3e8, 1e9])


def test_exact_power_law_is_recovered() -> None:
    law = fit_power_law(PARAMS, 30.0 * PARAMS**-0.5, name="lr")
    assert law.b == pytest.approx(-0.5, abs=1e-9)
    assert law.a == pytest.approx(30.0, rel=1e-6)
    assert law.predict(1e10) == pytest.approx(30.0 * 1e10**-0.5, rel=1e-6)


def test_law_in_params_and_tokens_separates_the_exponents() -> None:
    params = np.repeat(PARAMS, 3)
    tokens = params * np.tile([10.0, 40.0, 160.0], PARAMS.size)
    law = fit_power_law(params, 2.0 * params**-0.7 * tokens**0.3, tokens=tokens)
    assert (law.b, law.c) == (pytest.approx(-0.7, abs=1e-9), pytest.approx(0.3, abs=1e-9))
    with pytest.raises(ValueError, match="tokens=D"):
        law.predict(1e10)


def test_a_poorly_located_cell_weighs_less() -> None:
    rng = np.random.default_rng(0)
    truth = 30.0 * PARAMS**-0.5
    optima = truth * np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    spread = np.array([0.02, 0.02, 0.02, 0.02, 1.0])
    replicates = optima * np.exp(spread * rng.standard_normal((200, PARAMS.size)))
    weighted = fit_power_law(PARAMS, optima, replicates=replicates)
    unweighted = fit_power_law(PARAMS, optima)
    assert abs(weighted.b + 0.5) < 0.02 < abs(unweighted.b + 0.5)


def test_prediction_interval_includes_scatter_between_cells() -> None:
    rng = np.random.default_rng(1)
    optima = 30.0 * PARAMS**-0.5 * np.exp(0.3 * rng.standard_normal(PARAMS.size))
    replicates = optima * np.exp(0.01 * rng.standard_normal((200, PARAMS.size)))
    law = fit_power_law(PARAMS, optima, replicates=replicates)
    assert law.tau > 0.1
    estimate = law.estimate(1e9)
    assert np.log(estimate.high / estimate.low) > 2 * 1.645 * 0.1


def test_a_resolved_exponent_keeps_its_value_when_shrunk() -> None:
    rng = np.random.default_rng(0)
    optima = 30.0 * PARAMS**-0.5 * np.exp(0.02 * rng.standard_normal(PARAMS.size))
    law = fit_power_law(PARAMS, optima)
    shrunk = shrink_exponents(law, PARAMS)
    assert shrunk.b == pytest.approx(law.b, rel=0.01)


def test_a_slope_lost_in_the_noise_shrinks_about_the_largest_size_and_keeps_its_interval_width() -> None:
    """Three noisy cells whose slope is about its own noise: the shrunk law keeps the fit's value at the
    largest size measured (the one nearest a target beyond it), moves most of the way to a constant there,
    and its interval is as wide as the fitted one's."""
    params = PARAMS[:3]
    law = fit_power_law(params, np.array([1.0e-2, 4.0e-3, 9.0e-3]), name="lr")
    shrunk = shrink_exponents(law, params)
    largest = float(params.max())
    fitted_interval, shrunk_interval = law.estimate(1e10), shrunk.estimate(1e10)

    assert law.exponent().low <= 0 <= law.exponent().high
    assert abs(shrunk.b) < 0.7 * abs(law.b)
    assert shrunk.predict(largest) == pytest.approx(law.predict(largest), rel=1e-9)
    beyond = abs(shrunk.b) * np.log(1e10 / largest)
    assert shrunk.predict(1e10) == pytest.approx(law.predict(largest), rel=beyond)
    assert np.log(shrunk_interval.high / shrunk_interval.low) == pytest.approx(
        np.log(fitted_interval.high / fitted_interval.low), rel=0.05)


def test_an_n_d_law_shrinks_about_the_largest_size_at_its_cells_mean_budget() -> None:
    """Two budgets at each of three sizes, the largest at longer ones, optima that do not resolve either
    exponent: the shrunk law keeps the fit's value at the largest N and the mean ln D of that N's cells
    (16e9), not of all cells."""
    params = np.repeat(PARAMS[:3], 2)
    tokens = np.array([2e9, 8e9, 2e9, 8e9, 8e9, 32e9])
    optima = np.array([1.0e-2, 3.0e-3, 4.0e-3, 9.0e-3, 9.0e-3, 5.0e-3])
    law = fit_power_law(params, optima, tokens=tokens, name="lr")
    shrunk = shrink_exponents(law, params, tokens)
    all_cells_budget = float(np.exp(np.mean(np.log(tokens))))

    assert law.exponent("b").low <= 0 <= law.exponent("b").high
    assert law.exponent("c").low <= 0 <= law.exponent("c").high
    assert shrunk.predict(params.max(), 16e9) == pytest.approx(law.predict(params.max(), 16e9), rel=1e-9)
    assert shrunk.predict(params.max(), all_cells_budget) != pytest.approx(
        law.predict(params.max(), all_cells_budget), rel=0.05)


def test_a_three_cell_law_is_shrunk_by_its_standard_error_not_by_its_t_interval() -> None:
    """One degree of freedom: the interval takes t(1) = 6.3 where z = 1.6, but the shrinkage reads the
    slope's standard error s·√((XᵀX)⁻¹), so κ = b²/(b² + se²)."""
    params = PARAMS[:3]
    optima = 1e-2 * (params / 1e7) ** -0.3 * np.exp(np.array([0.0, 0.08, -0.04]))
    law = fit_power_law(params, optima, name="lr")
    design = np.column_stack([np.ones(3), np.log(params)])
    residuals = np.log(optima) - design @ np.array([law.log_a, law.b])
    standard_error = float(np.sqrt(residuals @ residuals / 1 * np.linalg.inv(design.T @ design)[1, 1]))
    shrunk = shrink_exponents(law, params)

    assert law.interval_widening == pytest.approx(6.314 / 1.645, rel=1e-3)
    assert shrunk.b == pytest.approx(law.b * law.b**2 / (law.b**2 + standard_error**2), rel=0.05)


def test_too_few_cells_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 cells"):
        fit_power_law(PARAMS[:1], np.array([1e-3]), name="lr")


def test_scaling_fit_without_the_loss_law_keeps_the_same_hyperparameter_laws(
    synthetic_trials: pd.DataFrame,
) -> None:
    trials = normalize_trials(synthetic_trials)
    full = fit_scaling(trials, n_bootstrap=20, seed=1).variants["default"]
    laws_only = fit_scaling(trials, n_bootstrap=20, seed=1, loss_law=False).variants["default"]

    assert full.loss_law is not None and laws_only.loss_law is None
    assert laws_only.laws.keys() == full.laws.keys()
    for name, law in full.laws.items():
        assert laws_only.laws[name].predict(1e10) == pytest.approx(law.predict(1e10))


def test_a_held_constant_weighs_a_well_located_cell_above_a_wide_one() -> None:
    """Two tight cells at 0.1 and one wide cell at 0.01: the plain median would be 0.1, a plain
    geometric mean 0.046; the weighted value stays near the tight cells."""
    rng = np.random.default_rng(0)
    optimum = np.array([0.1, 0.1, 0.01])
    replicates = np.column_stack(
        [
            0.1 * np.exp(0.05 * rng.standard_normal(200)),
            0.1 * np.exp(0.05 * rng.standard_normal(200)),
            0.01 * np.exp(1.5 * rng.standard_normal(200)),
        ]
    )
    assert fit_constant(optimum, replicates) == pytest.approx(0.1, rel=0.1)
    assert fit_constant(optimum) == pytest.approx(np.exp(np.mean(np.log(optimum))))


def test_cells_decades_apart_with_tight_bootstraps_get_a_between_cell_scatter_not_an_error() -> None:
    """Three well-located cells whose weight decays lie three decades apart (a tiny study's optima at
    opposite ends of its range): the between-cell variance τ² exceeds the spread of ln h, where a
    fixed search bracket found no root."""
    rng = np.random.default_rng(1)
    optimum = np.array([1e-4, 0.1, 1e-4])
    replicates = optimum * np.exp(0.01 * rng.standard_normal((200, 3)))
    held = fit_constant(optimum, replicates)
    assert 1e-4 < held < 0.1
    law = fit_power_law(PARAMS[:3], optimum, replicates=replicates)
    assert np.isfinite(law.b) and law.tau > 1.0


def test_a_held_constant_of_one_cell_is_its_value_and_non_positive_optima_are_rejected() -> None:
    assert fit_constant(np.array([0.3])) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="positive"):
        fit_constant(np.array([0.1, 0.0]))


def test_replicates_at_zero_weight_decay_are_left_out_without_a_warning() -> None:
    """A weight-decay cell's bootstrap may land on its exact-zero option: that replicate has no logarithm."""
    rng = np.random.default_rng(2)
    optima = 0.05 * PARAMS**0.1
    replicates = optima * np.exp(0.05 * rng.standard_normal((200, PARAMS.size)))
    replicates[:20, 2] = 0.0
    with np.errstate(all="raise"):
        law = fit_power_law(PARAMS, optima, replicates=replicates, name="weight_decay")
        held = fit_constant(optima, replicates)
    assert law.b == pytest.approx(0.1, abs=1e-6) and len(law.coefficient_replicates) == 180
    assert held == pytest.approx(float(np.exp(np.log(optima).mean())), rel=0.2)


def test_a_law_whose_replicates_all_touch_zero_is_fitted_from_the_cells_alone() -> None:
    """When every replicate has some cell at the exact-zero option, no replicate has a logarithm:
    the law falls back to equal weights and resampled cells instead of a least-squares fit of NaN."""
    optima = 0.05 * PARAMS**0.1
    replicates = np.tile(optima, (50, 1))
    replicates[:, 1] = 0.0
    with np.errstate(all="raise"):
        law = fit_power_law(PARAMS, optima, replicates=replicates, name="weight_decay")
    assert law.b == pytest.approx(0.1, abs=1e-6) and np.all(np.isfinite(law.coefficient_replicates))


def test_a_law_in_n_and_d_cannot_be_blended_with_a_law_in_n_alone() -> None:
    params, tokens = np.repeat([1e7, 3e7, 1e8], 2), np.tile([2e8, 6e8], 3)
    optima = 0.1 * params**-0.5 * tokens**0.2
    with pytest.raises(ValueError, match="cannot blend a law in"):
        blend_laws(fit_power_law(params, optima, tokens=tokens), fit_power_law(params, optima))
