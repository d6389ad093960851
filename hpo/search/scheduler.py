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
losses still enter the rungs. From it on, ASHA stops a probe only where it
trails the best loss recorded at that rung by more than `probe_margin` (a
fraction of that loss): near the optimum a rung's ranking is least
trustworthy, the losses closest, and a probe there would be cut by a gap of
the size of seed noise (a scale-aware check's probes differ in lr alone);
one far off, past the lr cliff or far too low, trails by several percent
and still stops early.

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
    `judge_from_tokens` (None: judged from the first rung, as any trial) and wherever they trail the best
    loss recorded at the rung by no more than `probe_margin` of it (0: ASHA's cut alone). The others are
    ASHA's, its metric a loss (mode ``min``), its time `time_attr` tokens."""

    def __init__(self, *, time_attr: str, metric: str, max_t: int, grace_period: int, reduction_factor: float,
                 judge_from_tokens: float | None = None, probe_margin: float = 0.0) -> None:
        super().__init__(time_attr=time_attr, metric=metric, mode="min", max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor)
        self.judge_from_tokens = judge_from_tokens
        self.probe_margin = probe_margin
        self._loss_key = metric
        self._rung_tokens = rung_tokens(grace_period, max_t, reduction_factor)
        self._best: dict[int, float] = {}
        self._recorded: set[tuple[str, int]] = set()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        tokens = float(result.get(self._time_attr, 0))
        best = self._record(trial.trial_id, tokens, result.get(self._loss_key))
        origin = trial.config.get("origin")
        if origin in PROTECTED:
            return TrialScheduler.CONTINUE
        if origin != PROBE or tokens >= self._max_t:
            return decision
        if self.judge_from_tokens is not None and tokens < self.judge_from_tokens:
            return TrialScheduler.CONTINUE
        if best is not None and float(result[self._loss_key]) <= best * (1 + self.probe_margin):
            return TrialScheduler.CONTINUE
        return decision

    def _record(self, trial_id: str, tokens: float, loss: Any) -> float | None:
        """Enter `loss` at the highest rung `tokens` has passed that this trial has not reported at yet
        (where ASHA records it); the best loss recorded there before it, None when none or no new rung."""
        passed = [rung for rung in self._rung_tokens
                  if rung <= tokens and (trial_id, rung) not in self._recorded]
        if not passed or loss is None or not math.isfinite(float(loss)):
            return None
        rung = passed[-1]
        self._recorded.add((trial_id, rung))
        best = self._best.get(rung)
        self._best[rung] = float(loss) if best is None else min(best, float(loss))
        return best
