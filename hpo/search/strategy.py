"""`SearchStrategy`: how each (variant, scale) of a study is searched, and the registry of strategies.

A strategy answers four questions, in the order a run asks them:

1. `plan` (once per (variant, scale), before its first trial): which trials
   the scale runs, which of them are enqueued (a prediction, a design,
   probes) and which space the sampler searches; the plan is stored with the
   scale, so a resumed scale keeps it. A strategy whose
   `plans_from_smaller_scales` is True sees the trials of the variant's
   smaller scales, and the run opens a scale only once they have all ended.
2. `sampler`: the Optuna sampler that suggests the trials the plan does not
   list (TPE by default, random for its first third).
3. `scheduler`: the Ray Tune scheduler that stops weak trials early (ASHA on
   tokens by default; trials of a `hpo.vocab.PROTECTED` origin run to the end,
   probes until the plan's `ScalePlan.judge_from`).
4. `check` (once the scale's trials have all ended): did the scale show what
   the plan assumed? A broken check widens the next scale's search.

A strategy is a frozen dataclass whose fields are its settings, read from
the study file's ``search:`` mapping (``search: {mode: NAME, field: value}``);
`problems` says what is wrong with them, field by field. Register a new one
in `STRATEGIES`; tests/search/test_strategies.py runs every
registered strategy through one conformance suite.

Pure at import (no Optuna, no Ray): `sampler` and `scheduler` import them when called.
"""

from __future__ import annotations

import dataclasses
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

from hpo.registry import Registry
from hpo.search.plan import LawCheck, ScalePlan
from hpo.study.space import SearchSpace

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from _typeshed import DataclassInstance
    from ray.tune.schedulers import TrialScheduler

__all__ = ["STRATEGIES", "ScaleToPlan", "SearchStrategy"]


@dataclass(frozen=True)
class ScaleToPlan:
    """What a strategy knows when it plans one (variant, scale).

    `params` is N (non-embedding parameters) and `tokens` D (one trial's full
    budget); `space` the variant's full search space and `trials` the study's
    trials per scale T; `history` the trial table of the variant's smaller
    scales (empty unless the strategy `plans_from_smaller_scales`);
    `previous_law_broken` whether the scale below broke its check;
    `cost_ratio` ρ, the FLOPs of one full-budget trial here over one at the
    ladder's largest scale; `name` the scale's Optuna study name and `seed`
    the study's seed. `curves`, when the runner gives them, are the
    evaluations of the `history` trials (columns ``scale``, ``trial_number``,
    ``tokens_seen``, ``loss``: one row per evaluation), from which a strategy
    learns at which rung early stopping ranks trials as their final losses do.
    """

    name: str
    scale: str
    params: int
    tokens: int
    space: SearchSpace
    trials: int
    history: pd.DataFrame
    previous_law_broken: bool
    cost_ratio: float
    seed: int
    curves: pd.DataFrame | None = None


class SearchStrategy(ABC):
    """How each (variant, scale) is searched (module docstring). Subclasses are frozen dataclasses."""

    name: ClassVar[str]
    plans_from_smaller_scales: ClassVar[bool] = False

    @abstractmethod
    def plan(self, scale: ScaleToPlan) -> ScalePlan:
        """The trials of `scale`: how many, the enqueued ones, and the space the sampler searches."""

    def preview(self, scale: ScaleToPlan, smaller: int) -> tuple[str, int]:
        """How `scale`, the ladder's scale with `smaller` scales below it, will be searched before any
        trial ran (`hpo validate`): a few words and its number of trials, as its plan will have them when
        what the smaller scales show goes as expected. The sampler's T trials by default."""
        return "search", scale.trials

    def check(self, plan: ScalePlan, trials: pd.DataFrame, *, seed: int) -> LawCheck:
        """Whether the scale's trials (trial-table rows) showed what `plan` assumed; nothing by default."""
        return LawCheck(False, "nothing to check")

    def sampler(self, plan: ScalePlan, *, name: str, stored_trials: int, seed: int
                ) -> optuna.samplers.BaseSampler:
        """TPE, random for its first third of the planned trials (Optuna's default of 10 would leave a
        small study random throughout). Its seed mixes the study's `seed`, the scale's Optuna study
        `name` and the trials it already holds, so scales do not replay one random sequence and a
        resumed scale does not repeat the suggestions it made."""
        import optuna

        mixed = (seed + zlib.crc32(name.encode()) + stored_trials) % 2**32
        return optuna.samplers.TPESampler(seed=mixed, n_startup_trials=max(2, plan.trials // 3))

    def scheduler(self, *, budget_tokens: int, grace_tokens: int, reduction_factor: int,
                  plan: ScalePlan | None = None) -> TrialScheduler:
        """ASHA on tokens (`hpo.search.scheduler.ProtectedASHA`): a trial is first judged after
        `grace_tokens`, then after each `reduction_factor` times more, up to `budget_tokens`; a probe of
        `plan` not before its `ScalePlan.judge_from` share of the budget, nor where it trails a rung's best
        by no more than its `ScalePlan.probe_margin`."""
        from hpo.search.scheduler import ProtectedASHA

        judge_from = None if plan is None or plan.judge_from is None else plan.judge_from * budget_tokens
        return ProtectedASHA(time_attr="tokens", metric="loss", max_t=budget_tokens,
                             grace_period=grace_tokens, reduction_factor=reduction_factor,
                             judge_from_tokens=judge_from,
                             probe_margin=0.0 if plan is None else plan.probe_margin)

    def problems(self) -> list[tuple[str, str, str]]:
        """What is wrong with the settings: ``(field, what is wrong, fix)`` each; none by default."""
        return []

    def settings(self) -> dict[str, object]:
        """The settings as plain data, ``mode`` first (what a study file writes under ``search:``)."""
        return {"mode": self.name, **{name: getattr(self, name) for name in self.setting_names()}}

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The names of the strategy's settings: its dataclass fields."""
        return tuple(field.name for field in dataclasses.fields(cast("type[DataclassInstance]", cls)))


STRATEGIES: Registry[type[SearchStrategy]] = Registry("search strategy", {
    "scale_aware": "hpo.search.scale_aware:ScaleAware",
    "independent": "hpo.search.independent:Independent",
})
"""The strategies a study names as ``search: {mode: NAME}``, the default first (`Registry.register` adds)."""
