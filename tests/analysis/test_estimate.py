"""`Estimate.from_draws`: a robust interval, and one that does not collapse when most draws agree."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.analysis.estimate import Estimate


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
