"""`ProtectedASHA`: Ray Tune's ASHA on tokens, except for the trials that test a prediction.

Scale-aware search (`hpo.search.scale_aware`) enqueues the predicted optimum, the
settings of a design and a few drawn from the full space. Judged early, they
would be stopped by trials that only look better at a few tokens (a short run
favours a higher lr and a smaller batch than the full run): the scale would
confirm its own prediction instead of testing it, and a design's optimum would
carry early stopping's bias. Trials whose config carries an ``origin`` in
`PROTECTED` therefore always train to their full budget; their results still
enter ASHA's rungs, so they are the yardstick others are cut by. Probes (origin
``probe``) are judged like any trial from `judge_from_tokens` on: at a scale
where full-budget trials are dear, one that beats the prediction at every rung
it is judged at is what shows a broken law. Before `judge_from_tokens` (where
the smaller scales' rungs ranked trials unlike their final losses, e.g. inside
the warmup, or where a short run favours a lower lr) a probe runs on, and its
losses still enter the rungs.

`rung_tokens` lists the token counts ASHA judges at, where a trial reports (`hpo.run.trainable`).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from hpo.vocab import PROBE, PROTECTED

__all__ = ["ProtectedASHA", "rung_tokens"]


def rung_tokens(grace_tokens: int, budget_tokens: int, reduction_factor: float) -> tuple[int, ...]:
    """The token counts at which ASHA (one bracket) judges a trial: grace · rf^k
    for k = 0, 1, … while it does not pass the budget (the rungs of Ray's `ASHAScheduler`)."""
    count = int(math.log(budget_tokens / grace_tokens) / math.log(reduction_factor) + 1)
    return tuple(math.ceil(grace_tokens * reduction_factor**k) for k in range(count))


class ProtectedASHA(ASHAScheduler):
    """`ASHAScheduler` that lets trials of a `PROTECTED` origin run to the end, and probes run on until
    `judge_from_tokens` (None: judged from the first rung, as any trial). Other arguments are ASHA's."""

    def __init__(self, *args: Any, judge_from_tokens: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judge_from_tokens = judge_from_tokens

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        origin = trial.config.get("origin")
        if origin in PROTECTED:
            return TrialScheduler.CONTINUE
        if (origin == PROBE and self.judge_from_tokens is not None
                and float(result.get(self._time_attr, 0)) < self.judge_from_tokens):
            return TrialScheduler.CONTINUE
        return decision
