"""`ScalePlan`: how a search strategy searches one (variant, scale), and `LawCheck`, what the scale showed.

A plan is stored with the scale's Optuna study (`to_dict`), so a resumed
scale keeps the plan it started with. Pure: no Optuna or Ray here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.analysis import Estimate
from hpo.study.space import SearchSpace, space_from_dict, space_to_dict
from hpo.vocab import DESIGN, EXPLORE, PREDICTED, PROBE, VERIFY

__all__ = ["LawCheck", "ScalePlan", "Setting", "full_plan"]

Setting = dict[str, float]
"""A trial's lr, batch_size (a power of two) and weight_decay; optionally its ``seed`` (of its model's
initialisation and data order; the study's seed otherwise)."""


@dataclass(frozen=True)
class ScalePlan:
    """How one (variant, scale) is searched.

    `transferred` is False for a full search (the first scales, ``independent``
    mode, or after a broken law). `space` is what the sampler searches,
    `full_space` the study's own; `trials` how many trials the scale runs;
    `first` the predicted optimum, run first; `design` settings of `space` and
    `explore` settings of the full space, each trained to its full budget;
    `probes` the prediction at other learning rates, which early stopping
    judges like any trial, but not before `judge_from` (a share of the
    budget: before it, a rung's ranking did not agree with the final one on
    the smaller scales; 1 never stops them, None judges them from the first
    rung), and then only where one trails the best loss recorded at a rung
    by more than `probe_margin` (a fraction of that loss; 0: wherever
    ASHA's cut falls); `verify` the settings `hpo verify` trains, each to its full budget;
    `predicted` the law's prediction per hyperparameter; `reason` one line for
    logs and `hpo status`. Trials beyond those listed (``trials`` minus them)
    are the sampler's, in `space`. A setting may carry its own ``seed``.
    """

    scale: str
    transferred: bool
    space: SearchSpace
    full_space: SearchSpace
    trials: int
    reason: str
    first: Setting | None = None
    explore: tuple[Setting, ...] = ()
    predicted: Mapping[str, Estimate] = field(default_factory=dict)
    design: tuple[Setting, ...] = ()
    probes: tuple[Setting, ...] = ()
    verify: tuple[Setting, ...] = ()
    judge_from: float | None = None
    probe_margin: float = 0.0

    def enqueued(self) -> list[tuple[str, Setting, SearchSpace]]:
        """The trials the plan lists, in the order they run: (``origin``, setting, the space whose
        sampler parameters give it), the prediction first; the sampler's own trials follow them."""
        first = [] if self.first is None else [(PREDICTED, self.first, self.space)]
        listed = ((DESIGN, self.design, self.space), (EXPLORE, self.explore, self.full_space),
                  (PROBE, self.probes, self.full_space), (VERIFY, self.verify, self.space))
        return first + [(origin, setting, within)
                        for origin, settings, within in listed for setting in settings]

    def to_dict(self) -> dict[str, object]:
        """Plain data (JSON-ready) that `from_dict` reads back: a resumed scale keeps its plan."""
        return {
            "scale": self.scale, "transferred": self.transferred, "space": space_to_dict(self.space),
            "full_space": space_to_dict(self.full_space), "trials": self.trials, "reason": self.reason,
            "first": self.first, "explore": list(self.explore), "design": list(self.design),
            "probes": list(self.probes), "verify": list(self.verify), "judge_from": self.judge_from,
            "probe_margin": self.probe_margin,
            "predicted": {name: [e.value, e.low, e.high, e.level] for name, e in self.predicted.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScalePlan:
        """The plan `to_dict` wrote; a plan stored before designs, probes, `judge_from` or `probe_margin`
        existed has none."""
        predicted = {name: Estimate(*values) for name, values in dict(data["predicted"]).items()}
        return cls(scale=str(data["scale"]), transferred=bool(data["transferred"]),
                   space=space_from_dict(data["space"]), full_space=space_from_dict(data["full_space"]),
                   trials=int(data["trials"]),
                   reason=str(data["reason"]), first=data["first"], explore=tuple(data["explore"]),
                   predicted=predicted, design=tuple(data.get("design", ())),
                   probes=tuple(data.get("probes", ())), verify=tuple(data.get("verify", ())),
                   judge_from=data.get("judge_from"), probe_margin=float(data.get("probe_margin", 0.0)))


@dataclass(frozen=True)
class LawCheck:
    """Whether the scale's optimum fell where the law said (`broken` False) and why."""

    broken: bool
    reason: str


def full_plan(scale: str, space: SearchSpace, trials: int, reason: str) -> ScalePlan:
    """Search the whole `space` with all `trials`."""
    return ScalePlan(scale=scale, transferred=False, space=space, full_space=space, trials=trials,
                     reason=reason)
