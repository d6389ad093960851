"""The near-best band of one cell: the settings as good as its best, and where its centre lies.

Real loss landscapes are flat near the optimum: over a decade of learning
rate the loss may move by less than the run-to-run noise, so the single best
trial (or the minimum of a fitted bowl) wanders across that plateau from one
sweep to the next. What is well determined is the *band* of settings whose
loss is within a small tolerance of the best; published scaling fits (Step
Law, DeepSeek) regress that set, not the argmin.

A trial's membership is the probability that its true loss lies within
`tolerance` of the best trial's, given the relative noise σ of one loss
(`noise.estimate_noise`; both losses noisy, so their difference has spread
√2·σ):

    w_i = Φ((tolerance − ΔL_i) / (√2·σ)),   ΔL_i = L_i / L_best − 1.

The band's centre is the weighted mean of ln h for each searched
hyperparameter h, each trial weighted by w_i times its share of the searched
space (`space_shares`, the inverse of its sampling density), its spread the
weighted standard deviation (the band's half-width, in ln units). Weight
decay's exact-zero option is a branch of its own, which the band does not
choose: the caller says whether the centre is wd = 0 (`find_optimum` asks the
cell's surface, which fits each branch over lr and batch size too and takes
the one whose minimum is lower); otherwise it is the weighted mean of ln wd
over wd > 0. A band cannot weigh the branches against each
other: the zero option stands for one value where the positive range holds
many, and a trial's membership is decided mostly by its lr and batch size,
which the band does not model (random searches half of whose trials sit at
wd = 0, costing 0.3% less: the bands chose it in 34-60% of draws, the
surfaces in 71-100%; docs/analysis.md).
A hyperparameter that was not searched is held at the best trial's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy.special import ndtr

from hpo.vocab import HYPERPARAMETERS

GRID_FILL = 0.5
"""A cell is a grid when its trials fill at least half the product of its distinct values."""
_GRID_RESOLUTION = 0.01
"""Values within 1% of each other (in ln) count as one grid value (a sweep's 3.45e-4 and 3.453e-4)."""
DEFAULT_TOLERANCE = 0.001
"""A setting within 0.1% of the best loss counts as as good as the best."""
_EDGE_FRACTION = 0.05
_EDGE_MEMBERSHIP = 0.5


@dataclass(frozen=True, eq=False)
class NearBestBand:
    """The near-best band of one cell. Units: hyperparameters in their own units; spreads in ln units."""

    center: np.ndarray
    """lr, batch_size, weight_decay at the centre (the best trial's where not searched; wd may be 0)."""
    spread: np.ndarray
    """Weighted standard deviation of ln h over the band (0 where not searched or at wd = 0)."""
    membership: np.ndarray
    """Each trial's probability of being within the tolerance of the best, in the order given."""
    shares: np.ndarray
    """Each trial's share of the searched space (`space_shares`), in the order given."""

    @property
    def effective_trials(self) -> float:
        """How many trials the band holds, counted by their weights w = membership × share: (Σw)² / Σw²."""
        weights = self.membership * self.shares
        return float(weights.sum() ** 2 / (weights**2).sum())

    def interval(self, column: int, level: float) -> tuple[float, float]:
        """The band of one hyperparameter at `level`: centre × e^(±z·spread), z the normal quantile."""
        z = NormalDist().inv_cdf(0.5 + level / 2)
        center, spread = self.center[column], self.spread[column]
        if center <= 0:
            return center, center
        return center * math.exp(-z * spread), center * math.exp(z * spread)


def membership(losses: np.ndarray, *, tolerance: float, noise: float) -> np.ndarray:
    """``Φ((tolerance − ΔL) / (√2·σ))`` per trial, ΔL its relative distance to the best loss."""
    distance = losses / losses.min() - 1.0
    return ndtr((tolerance - distance) / (math.sqrt(2.0) * noise))


def near_best_band(
    settings: np.ndarray,
    losses: np.ndarray,
    searched: tuple[str, ...],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    noise: float,
    zero_weight_decay: bool = False,
) -> NearBestBand:
    """The band of one cell's complete trials: `settings` one row (lr, batch_size, weight_decay) per
    trial, `losses` their losses, `noise` σ (a fraction of the loss); its weight decay is 0 where
    `zero_weight_decay` (the exact-zero branch chosen by the caller) and weight decay was searched."""
    inside = membership(losses, tolerance=tolerance, noise=noise)
    shares = space_shares(settings, searched)
    weights = inside * shares
    center = settings[int(np.argmin(losses))].astype(float)
    spread = np.zeros(len(HYPERPARAMETERS))
    for column, name in enumerate(HYPERPARAMETERS):
        if name not in searched:
            continue
        rows = settings[:, column] > 0
        if name == "weight_decay" and zero_weight_decay:
            center[column] = 0.0
            continue
        center[column], spread[column] = _weighted_log_moments(settings[rows, column], weights[rows])
    return NearBestBand(center=center, spread=spread, membership=inside, shares=shares)


def space_shares(settings: np.ndarray, searched: tuple[str, ...]) -> np.ndarray:
    """Each trial's share of the searched space: the product over searched hyperparameters of the width
    (in ln h) of the interval its value stands for, divided among the trials at that value.

    A value's interval reaches halfway to the next distinct value on each side (values within 1%
    count as one; the outermost values reach as far outwards as inwards); wd = 0 is a value of its
    own, as wide as the widest positive one. A band's centre is a Monte Carlo estimate of the centre
    of the near-best region; weighting each trial by the inverse of its sampling density (its share)
    makes it one whatever the design: a grid spaced unevenly (Step Law's batch sizes are denser above
    128 than below) or a sampler crowding where it looked (TPE) no longer pulls the centre towards
    where the trials are dense. On an even grid every share is equal.
    """
    shares = np.ones(len(settings))
    for name in searched:
        values = settings[:, HYPERPARAMETERS.index(name)]
        logs = np.log(np.where(values > 0, values, 1.0))
        keys = np.where(values > 0, np.round(logs / _GRID_RESOLUTION), -np.inf)
        distinct, index, counts = np.unique(keys, return_inverse=True, return_counts=True)
        positive = np.isfinite(distinct)
        widths = np.zeros(len(distinct))
        centres = np.bincount(index, weights=logs) / counts
        widths[positive] = _interval_widths(centres[positive])
        if not positive.all():
            widths[~positive] = widths[positive].max(initial=1.0)
        shares *= (widths / counts)[index]
    return shares / shares.sum()


def _interval_widths(logs: np.ndarray) -> np.ndarray:
    """Width of each sorted value's interval: half the gap to each neighbour, the outer gap mirrored."""
    if logs.size < 2:
        return np.ones_like(logs)
    gaps = np.diff(logs)
    return (np.concatenate([gaps[:1], gaps]) + np.concatenate([gaps, gaps[-1:]])) / 2


def is_grid(rows: pd.DataFrame) -> bool:
    """Whether one cell's trials (rows of a normalised trial table) lie on a grid: at least three
    distinct values of lr or batch size, and trials filling `GRID_FILL` of the product of the distinct
    values of every hyperparameter tried with several. There a band's centroid is the centre of the
    near-optimal region; on a random or adaptive search (Optuna's TPE crowds its trials where it
    looked), it is pulled towards where the sampler looked."""
    counts = []
    for name in HYPERPARAMETERS:
        values = rows[name].to_numpy(dtype=float)
        logs = np.log(values[values > 0]) if (values > 0).any() else np.empty(0)
        distinct = np.unique(np.round(logs / _GRID_RESOLUTION)).size + int((values == 0).any())
        if distinct > 1:
            counts.append(distinct)
    if not counts or max(counts) < 3:
        return False
    return len(rows) >= GRID_FILL * math.prod(counts)


def band_edges(settings: np.ndarray, band: NearBestBand, searched: tuple[str, ...]) -> dict[str, str]:
    """Searched hyperparameters whose band reaches an end of the range tried: a trial within 5% (of
    the log range) of that end is in the band with probability ≥ 1/2 ("widen the range")."""
    edges: dict[str, str] = {}
    for name in searched:
        column = HYPERPARAMETERS.index(name)
        values = settings[:, column]
        positive = values > 0
        if positive.sum() < 2:
            continue
        logs = np.log(values[positive])
        low, high = logs.min(), logs.max()
        if high <= low:
            continue
        position = (logs - low) / (high - low)
        inside = band.membership[positive] >= _EDGE_MEMBERSHIP
        if np.any(inside & (position <= _EDGE_FRACTION)):
            edges[name] = "low"
        elif np.any(inside & (position >= 1.0 - _EDGE_FRACTION)):
            edges[name] = "high"
    return edges


def _weighted_log_moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """exp of the weighted mean of ln values, and the weighted standard deviation of ln values."""
    if weights.sum() <= 0:
        weights = np.ones_like(values)
    logs = np.log(values)
    mean = float(np.average(logs, weights=weights))
    return math.exp(mean), float(np.sqrt(np.average((logs - mean) ** 2, weights=weights)))
