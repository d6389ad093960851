"""Space-filling designs over a `SearchSpace`: a Latin hypercube and uniform draws.

Each searched hyperparameter is drawn on its natural scale: lr and weight
decay log-uniformly, batch size over its powers of two; with exact-zero
weight decay allowed, half of the draws are 0. Pure: numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from hpo.search.plan import Setting
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange

__all__ = ["latin_hypercube", "sample_full_space"]


def latin_hypercube(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Setting]:
    """`n` settings of a Latin hypercube over `space`: each searched hyperparameter's
    range (log scale; batch size over its powers of two) cut into `n` equal strata,
    one setting in each, strata paired at random. With exact-zero weight decay
    allowed, the lower half of its strata is wd = 0 (as `sample_full_space` draws it half the time)."""
    unit = np.column_stack([(rng.permutation(n) + rng.uniform(size=n)) / n for _ in range(3)])
    settings = []
    for u_lr, u_batch, u_wd in unit:
        lr, batch_size, wd = space.lr, space.batch_size, space.weight_decay
        if isinstance(lr, LogRange):
            lr = math.exp(math.log(lr.low) + u_lr * (math.log(lr.high) - math.log(lr.low)))
        if isinstance(batch_size, PowerOfTwoRange):
            batch_size = batch_size.choices[min(int(u_batch * len(batch_size.choices)),
                                                len(batch_size.choices) - 1)]
        if isinstance(wd, WeightDecayRange):
            u_wd = 2 * u_wd - 1 if wd.zero else u_wd
            log_wd = math.log(wd.low) + u_wd * (math.log(wd.high) - math.log(wd.low))
            wd = 0.0 if u_wd < 0 else math.exp(log_wd)
        settings.append({"lr": float(lr), "batch_size": int(batch_size), "weight_decay": float(wd)})
    return settings


def sample_full_space(space: SearchSpace, rng: np.random.Generator) -> Setting:
    """A setting drawn uniformly (log scale; batch size over its powers of two) from `space`."""
    lr = space.lr if not isinstance(space.lr, LogRange) else math.exp(
        rng.uniform(math.log(space.lr.low), math.log(space.lr.high)))
    batch_size = space.batch_size if not isinstance(space.batch_size, PowerOfTwoRange) else int(
        rng.choice(space.batch_size.choices))
    wd = space.weight_decay
    if isinstance(wd, WeightDecayRange):
        log_wd = rng.uniform(math.log(wd.low), math.log(wd.high))
        wd = 0.0 if wd.zero and rng.random() < 0.5 else math.exp(log_wd)
    return {"lr": float(lr), "batch_size": int(batch_size), "weight_decay": float(wd)}
