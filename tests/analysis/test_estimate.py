"""`Estimate.from_draws`: a robust interval, and one that does not collapse when most draws agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo.analysis.estimate import Estimate, draws_spread, robust_std


def test_interval_is_value_plus_minus_z_robust_spread_in_log_space() -> None:
    draws = np.exp(np.random.default_rng(0).normal(np.log(1e-3), 0.2, 4000))
    estimate = Estimate.from_draws(1e-3, draws, level=0.9)
    assert estimate.low == pytest.approx(1e-3 * np.exp(-1.645 * 0.2), rel=0.05)
    assert estimate.high == pytest.approx(1e-3 * np.exp(1.645 * 0.2), rel=0.05)


def test_draws_mostly_on_one_value_give_their_percentile_range_not_zero_width() -> None:
    draws = np.array([3e-3] * 70 + [2e-3] * 25 + [5e-3] * 5)  # median absolute deviation 0
    estimate = Estimate.from_draws(3e-3, draws, level=0.9)
    assert estimate.low == pytest.approx(2e-3) and 3e-3 <= estimate.high <= 5e-3
    assert estimate.low < estimate.value


def test_draws_on_one_value_up_to_float_rounding_give_their_percentile_range_not_zero_width() -> None:
    """A surface's minimum on the lowest batch size tried, 2, comes back from ln as 2.0000000000000004 in
    some resamples: a median absolute deviation of 1e-16, which made the interval [2.21, 2.21] about the
    point estimate 2.21 (an `hpo run` of a `gpt` ladder at seq_len 64)."""
    rounded = [2.0, np.nextafter(2.0, 3.0), 2.0 + 4 * np.finfo(float).eps]
    draws = np.array(rounded * 30 + [4.0] * 5 + [8.0] * 5)
    estimate = Estimate.from_draws(2.21, draws, level=0.9)
    assert estimate.low == pytest.approx(2.0) and estimate.high >= 4.0
    assert draws_spread(np.log(draws)) == 0.0 < robust_std(np.log(draws))


def test_draws_spread_over_hundreds_of_e_folds_give_an_unbounded_interval_not_an_overflow() -> None:
    """A law fitted to a few scattered cells can draw exponents whose spread, in ln units, exceeds what
    a float can exponentiate: the interval then reaches 0 and inf, which says that nothing bounds it."""
    estimate = Estimate.from_draws(1.0, np.exp(np.linspace(-600.0, 600.0, 101)))
    assert estimate.value == 1.0 and estimate.low < 1e-300 and estimate.high == math.inf
