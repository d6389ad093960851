"""What a trial samples: a range, or a fixed value, for each hyperparameter of `hpo.vocab.HYPERPARAMETERS`.

``lr`` is a `LogRange` (log-uniform), ``batch_size`` a `PowerOfTwoRange`
(sequences, or examples, per step), ``weight_decay`` a `WeightDecayRange`
(log-uniform, plus an exact 0 when ``zero``); a plain number fixes that
hyperparameter. `hpo.search.sampling` turns a `SearchSpace` into the
sampler's parameters. Pure: no Optuna here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo.vocab import HYPERPARAMETERS, is_power_of_two, nearest_power_of_two, powers_of_two

__all__ = ["LogRange", "PowerOfTwoRange", "SearchSpace", "WeightDecayRange", "space_from_dict",
           "space_to_dict"]


@dataclass(frozen=True)
class LogRange:
    """A log-uniform range of positive reals, ``0 < low < high``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high < math.inf:
            raise ValueError(f"{self!r} is invalid: use 0 < low < high < inf")


@dataclass(frozen=True)
class PowerOfTwoRange:
    """The powers of two from `low` to `high`, inclusive: an ordered integer
    parameter (batch size, in sequences or examples per step)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not (is_power_of_two(self.low) and is_power_of_two(self.high) and self.low <= self.high):
            raise ValueError(f"{self!r} is invalid: use powers of two with low <= high")

    @property
    def choices(self) -> tuple[int, ...]:
        """Every power of two from `low` to `high`, smallest first."""
        return powers_of_two(self.low, self.high)

    def nearest(self, value: float) -> int:
        """The power of two of the range nearest to `value` > 0 in log space."""
        return min(max(nearest_power_of_two(value), self.low), self.high)


@dataclass(frozen=True)
class WeightDecayRange(LogRange):
    """A log-uniform weight decay range, plus an exact 0 as a further option when `zero`."""

    zero: bool = False


@dataclass(frozen=True)
class SearchSpace:
    """What a trial samples; a plain number fixes that hyperparameter.
    `lr` is the peak learning rate, `batch_size` sequences (examples) per step."""

    lr: LogRange | float
    batch_size: PowerOfTwoRange | int
    weight_decay: WeightDecayRange | float

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``{hyperparameter: (low, high)}`` of the values this space can train with: a fixed value
        ``v`` is ``(v, v)``, weight decay's exact-zero option lowers its low to 0. The form
        `hpo.analysis.extrapolate` takes for `searched` and `clip_to`."""
        ranges: dict[str, tuple[float, float]] = {}
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if isinstance(value, LogRange | PowerOfTwoRange):
                low = 0.0 if isinstance(value, WeightDecayRange) and value.zero else float(value.low)
                ranges[name] = (low, float(value.high))
            else:
                ranges[name] = (float(value), float(value))
        return ranges


def space_to_dict(space: SearchSpace) -> dict[str, object]:
    """Plain data (JSON) that `space_from_dict` reads back: ranges as mappings, fixed values as numbers."""
    def entry(value: object) -> object:
        if isinstance(value, WeightDecayRange):
            return {"low": value.low, "high": value.high, "zero": value.zero}
        if isinstance(value, LogRange | PowerOfTwoRange):
            return {"low": value.low, "high": value.high}
        return value

    return {"lr": entry(space.lr), "batch_size": entry(space.batch_size),
            "weight_decay": entry(space.weight_decay)}


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """The space `space_to_dict` wrote."""
    lr, batch, wd = data["lr"], data["batch_size"], data["weight_decay"]
    return SearchSpace(
        lr=LogRange(lr["low"], lr["high"]) if isinstance(lr, dict) else float(lr),
        batch_size=PowerOfTwoRange(batch["low"], batch["high"]) if isinstance(batch, dict) else int(batch),
        weight_decay=(WeightDecayRange(wd["low"], wd["high"], wd["zero"]) if isinstance(wd, dict)
                      else float(wd)),
    )
