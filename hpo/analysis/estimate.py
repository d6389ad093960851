"""`Estimate`: a point value with a bootstrap interval around it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_ROUNDING_ULPS = 64
"""Draws whose median absolute deviation is within 64 units in the last place of their scale are one value."""


@dataclass(frozen=True)
class Estimate:
    """A value and its interval ``[low, high]`` at confidence `level`.

    Units are those of the quantity estimated (lr, batch size in sequences or
    examples per step, loss in nats per token, parameter count, ...). An
    estimate without uncertainty (a fixed setting) has ``low == value == high``.
    """

    value: float
    low: float
    high: float
    level: float = 0.9

    @classmethod
    def exact(cls, value: float) -> Estimate:
        """A fixed value, no uncertainty."""
        return cls(value, value, value, 1.0)

    @classmethod
    def missing(cls) -> Estimate:
        """Nothing could be estimated (NaN everywhere)."""
        return cls(math.nan, math.nan, math.nan, math.nan)

    @classmethod
    def from_draws(
        cls, value: float, draws: np.ndarray, level: float = 0.9, *, log_scale: bool = True
    ) -> Estimate:
        """`value` ± z·σ, σ the robust spread of the bootstrap `draws` (in ln units when `log_scale`).

        σ = 1.4826·MAD, the standard deviation of a normal with the draws'
        median absolute deviation. Bootstrap replicates of an optimum have heavy
        tails (a resample can lose the trials that pin the minimum down), which
        make percentile intervals far wider than the estimator's real spread;
        the MAD ignores those tails. When over half the draws are one value
        (the MAD is zero: an optimum that is the best trial of a few, kept by
        most resamples), the interval is the draws' central `level` percentile
        range instead, so the resamples that picked another trial still count.
        """
        draws = np.asarray(draws, dtype=float)
        draws = draws[np.isfinite(draws) & ((draws > 0) if log_scale else True)]
        if draws.size < 2 or not math.isfinite(value):
            return cls(value, math.nan, math.nan, level)
        center = math.log(value) if log_scale else value
        spread = draws_spread(np.log(draws) if log_scale else draws)
        if spread == 0:
            low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
            return cls(float(value), float(min(low, value)), float(max(high, value)), level)
        half_width = NormalDist().inv_cdf(0.5 + level / 2) * spread
        low, high = center - half_width, center + half_width
        if log_scale:  # beyond ~709 e-folds a float holds no bound: the ends reach 0 and inf
            with np.errstate(over="ignore", under="ignore"):
                low, high = np.exp(low), np.exp(high)
        return cls(float(value), float(low), float(high), level)

    def covers(self, truth: float) -> bool:
        """Whether `truth` lies inside ``[low, high]``."""
        return self.low <= truth <= self.high


def robust_std(values: np.ndarray) -> float:
    """1.4826 × the median absolute deviation: the standard deviation for normal data, robust to tails."""
    values = np.asarray(values, dtype=float)
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def draws_spread(draws: np.ndarray) -> float:
    """`robust_std` of bootstrap draws, 0 where it is float rounding (at most `_ROUNDING_ULPS` units in the
    last place of the draws' scale, 1 at least): one value reached along different paths, such as a
    surface's minimum on a bound of the box and back from ln, is one value, not a spread of 1e-16 that an
    interval would turn into a certainty."""
    draws = np.asarray(draws, dtype=float)
    rounding = _ROUNDING_ULPS * np.finfo(float).eps * max(1.0, abs(float(np.median(draws))))
    spread = robust_std(draws)
    return 0.0 if spread <= 1.4826 * rounding else spread
