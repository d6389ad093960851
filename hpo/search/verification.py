"""Verification: a recommendation trained at a scale the user can afford, beside its neighbours.

Before the single large run, ``hpo verify`` trains the recommended setting at
one scale beyond the ladder (the target, or an intermediate scale) together
with its learning rate ×2 and ÷2 and, when the study searches the batch size,
its batch size ×2 and ÷2 (`neighbourhood`), each on several seeds, every
trial to its full budget (origin ``verify``: ASHA stops none). `Verification`
is the search strategy that plans exactly those trials; `verdict` reads what
they measured.

The verdict compares mean final losses over the seeds. The seed noise σ is
read from the spread between the seeds of each setting (`seed_noise`: the
median over settings, so that one setting with an unstable seed does not
make every difference look like noise), so the
difference of two settings' means has standard error s = σ·√(2/seeds); the
recommendation is *within noise* of the best setting when its mean is at
most 2·s above the best's. Units: loss in nats per token (the family's eval
loss), lr and weight decay as trained, batch size in sequences per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from hpo.search.plan import ScalePlan, Setting
from hpo.search.strategy import ScaleToPlan, SearchStrategy
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace
from hpo.vocab import DIVERGED, HYPERPARAMETERS

__all__ = ["Measured", "Verification", "VerifyReport", "label", "neighbourhood", "seed_noise", "verdict"]

NOISE_MULTIPLE = 2.0
"""How many standard errors of a difference of means count as noise."""


def neighbourhood(recommended: Setting, space: SearchSpace) -> list[Setting]:
    """The recommended setting first, then its lr ×2 and ÷2 and, when `space` searches the batch
    size, its batch size ×2 and ÷2 (inside the space's powers of two)."""
    settings = [dict(recommended), {**recommended, "lr": 2 * recommended["lr"]},
                {**recommended, "lr": recommended["lr"] / 2}]
    if isinstance(space.batch_size, PowerOfTwoRange):
        batch = int(recommended["batch_size"])
        settings += [{**recommended, "batch_size": float(other)} for other in (2 * batch, batch // 2)
                     if other >= 1 and space.batch_size.low <= other <= space.batch_size.high]
    return settings


def label(setting: Setting, recommended: Setting) -> str:
    """How `setting` differs from `recommended`: ``recommended``, ``lr ×2``, ``batch ÷2``, ..."""
    for name, short in (("lr", "lr"), ("batch_size", "batch")):
        ratio = setting[name] / recommended[name]
        if not math.isclose(ratio, 1.0):
            return f"{short} ×{ratio:g}" if ratio > 1 else f"{short} ÷{1 / ratio:g}"
    return "recommended"


@dataclass(frozen=True)
class Verification(SearchStrategy):
    """Train the `planned` settings (each with its ``seed``), nothing else; the first is the
    recommendation."""

    name = "verify"
    planned: tuple[Setting, ...] = ()

    def plan(self, scale: ScaleToPlan) -> ScalePlan:
        space = _covering(self.planned)
        return ScalePlan(scale=scale.scale, transferred=False, space=space, full_space=space,
                         trials=len(self.planned), verify=self.planned,
                         reason=f"verification: {len(self.planned)} trials, the recommendation and its "
                                "neighbours on each seed, each to its full budget")


@dataclass(frozen=True)
class Measured:
    """One setting's final losses over its seeds (inf for a seed that diverged or failed) and their mean."""

    label: str
    setting: Setting
    losses: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.losses)) if self.losses else math.inf


@dataclass(frozen=True)
class VerifyReport:
    """What a verification measured: every setting (the recommendation first), the best of them, the
    seed noise σ (standard deviation of one loss, `seed_noise`), and whether the recommendation is within
    `NOISE_MULTIPLE` standard errors of the best (`within_noise`)."""

    measured: tuple[Measured, ...]
    noise: float
    seeds: int

    @property
    def recommended(self) -> Measured:
        return self.measured[0]

    @property
    def best(self) -> Measured:
        return min(self.measured, key=lambda measured: measured.mean)

    @property
    def margin(self) -> float:
        """The loss a mean may exceed the best's by and still be noise: 2·σ·√(2/seeds)."""
        return NOISE_MULTIPLE * self.noise * math.sqrt(2 / max(1, self.seeds))

    @property
    def trained(self) -> bool:
        """Whether any setting reached a finite mean loss (every seed of it neither diverged nor failed)."""
        return math.isfinite(self.best.mean)

    @property
    def within_noise(self) -> bool:
        """Whether the recommendation's mean is at most `margin` above the best's; False when nothing
        trained, or when no setting finished on every seed to tell the noise."""
        return self.trained and self.recommended.mean - self.best.mean <= self.margin

    @property
    def to_run(self) -> Measured | None:
        """The setting the measurements say to run at the verified scale: the recommendation when it is
        within noise of the best, else the best (a neighbour that beat it by more than the noise); None
        when nothing trained or the noise is unknown (no setting finished on every seed)."""
        if not self.trained or not math.isfinite(self.noise):
            return None
        return self.recommended if self.within_noise else self.best


def verdict(trials: pd.DataFrame, settings: Sequence[Setting]) -> VerifyReport:
    """The report of the trials (trial-table rows) that ran `settings` (the plan's, each with its seed;
    the first is the recommendation). A setting's rows are those trained with its hyperparameters."""
    distinct: list[Setting] = []
    for setting in settings:
        plain = {name: float(setting[name]) for name in HYPERPARAMETERS}
        if plain not in distinct:
            distinct.append(plain)
    measured = tuple(Measured(label(setting, distinct[0]), setting, _losses(trials, setting))
                     for setting in distinct)
    seeds = max(len(m.losses) for m in measured)
    return VerifyReport(measured, seed_noise([m.losses for m in measured]), seeds)


def seed_noise(losses: Sequence[Sequence[float]]) -> float:
    """σ of one loss from the spread between seeds of each setting (each of the same number of seeds
    k ≥ 2, all finite; the others are left out), robust to a setting whose seeds disagree by far more
    (an unstable lr): σ² = median over settings of s² / (median of χ²(k − 1) / (k − 1)), s² a setting's
    sample variance, which is σ²·χ²(k − 1)/(k − 1) for normal noise. nan when no setting qualifies."""
    usable = [values for values in losses if len(values) > 1 and all(math.isfinite(v) for v in values)]
    if not usable:
        return math.nan
    k = max(len(values) for values in usable)
    variances = [float(np.var(values, ddof=1)) for values in usable if len(values) == k]
    return math.sqrt(float(np.median(variances)) / (stats.chi2.median(k - 1) / (k - 1)))


def _losses(trials: pd.DataFrame, setting: Setting) -> tuple[float, ...]:
    match = np.ones(len(trials), dtype=bool)
    for name in HYPERPARAMETERS:
        match &= np.isclose(trials[name].to_numpy(dtype=float), setting[name], rtol=1e-9, atol=0.0)
    rows = trials[match]
    return tuple(math.inf if status == DIVERGED or not math.isfinite(loss) else float(loss)
                 for loss, status in zip(rows["loss"], rows["status"], strict=True))


def _covering(settings: Sequence[Setting]) -> SearchSpace:
    """The narrowest search space holding every setting (a fixed value where they agree)."""
    lrs, batches = sorted({s["lr"] for s in settings}), sorted({int(s["batch_size"]) for s in settings})
    (weight_decay, *others) = sorted({s["weight_decay"] for s in settings})
    if others:
        raise ValueError("a verification trains one weight decay")
    batch = PowerOfTwoRange(batches[0], batches[-1]) if len(batches) > 1 else batches[0]
    return SearchSpace(lr=LogRange(lrs[0], lrs[-1]) if len(lrs) > 1 else lrs[0], batch_size=batch,
                       weight_decay=weight_decay)
