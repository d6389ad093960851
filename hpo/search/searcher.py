"""`TokenOptunaSearch`: Ray Tune's `OptunaSearch` with tokens as the step and honest final states.

Ray's `OptunaSearch` reports intermediate values at ``training_iteration``
and tells every trial that ASHA stopped as COMPLETE at its truncated loss.
This subclass closes that gap in one place:

* intermediate eval losses, every point of each result's ``curve``
  (`hpo.run.trainable.curve_points`), are reported at ``step = tokens`` seen, so
  trials with different batch sizes line up on the same axis (non-finite
  ones are skipped), the last result's included: Ray does not pass the
  result a scheduler stops a trial at to ``on_trial_result``, only to
  ``on_trial_complete``;
* the final state follows `hpo.run.trainable.trial_status` of the last result:

  ========== =====================================================================
  failed     FAIL (the trainable raised)
  diverged   COMPLETE with the penalty the trainable reported as ``loss``, so TPE
             learns the stability edge (FAIL if that penalty is NaN)
  pruned     PRUNED (ASHA stopped it before the budget; its curve is kept)
  complete   COMPLETE with the last eval loss
  ========== =====================================================================

* user attributes ``status``, ``tokens_seen`` (of a failed trial: its
  last report, 0 if none) and ``seconds`` (time in the training loop, when
  reported) are set before ``tell`` (Optuna forbids changing a finished trial);
* ``suggest`` adds ``trial_number`` (the Optuna trial number), ``origin``
  (`hpo.vocab.ORIGINS`: ``search`` for the sampler's own trials, else the
  origin the plan enqueued the trial with) and, for a trial enqueued with its
  own ``seed``, that seed to the config.

The study is minimised on ``loss`` and kept in the given storage.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from hpo.run.trainable import curve_points, trial_status
from hpo.vocab import COMPLETE, DIVERGED, FAILED, PRUNED, SEARCH

__all__ = ["TokenOptunaSearch"]

logger = logging.getLogger(__name__)


class TokenOptunaSearch(OptunaSearch):
    """Optuna TPE on ``loss`` (minimised) for trials of `budget_tokens` tokens each.

    `space` is a define-by-run function (`hpo.search.sampling.define_space`); the study
    `study_name` is created in `storage` or loaded if it exists; `seed` seeds TPE.
    """

    def __init__(
        self,
        space: Callable[[optuna.Trial], dict[str, Any]],
        *,
        budget_tokens: int,
        study_name: str,
        storage: optuna.storages.BaseStorage,
        sampler: optuna.samplers.BaseSampler,
    ) -> None:
        super().__init__(space=space, metric="loss", mode="min", study_name=study_name, storage=storage,
                         sampler=sampler)
        self.budget_tokens = budget_tokens
        self._last_step: dict[str, int] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next configuration, with ``trial_number`` naming its Optuna trial
        and ``origin`` saying why it runs (``search``, or the origin it was enqueued with)."""
        config = super().suggest(trial_id)
        if config is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        origin = ot_trial.user_attrs.get("origin", SEARCH)
        seed = {"seed": ot_trial.user_attrs["seed"]} if "seed" in ot_trial.user_attrs else {}
        return {**config, "trial_number": ot_trial.number, "origin": origin, **seed}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report the result's curve, each eval loss at step = tokens seen (a
        diverged trial's penalty and non-finite losses are not curve points)."""
        for point in curve_points(result):
            loss, step = float(point["loss"]), int(point["tokens"])
            if math.isfinite(loss) and step > self._last_step.get(trial_id, -1):
                self._ot_trials[trial_id].report(loss, step)
                self._last_step[trial_id] = step

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """Tell Optuna the trial's final state (see the module docstring)."""
        if trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        if result:  # the result a scheduler stopped the trial at never reached on_trial_result
            self.on_trial_result(trial_id, result)
        trial = self._ot_trials[trial_id]
        status = trial_status(result, self.budget_tokens, error=error)
        tokens_seen = self._last_step.pop(trial_id, 0)
        if result and "tokens" in result:
            tokens_seen = int(result["tokens"])
        trial.set_user_attr("status", status)
        trial.set_user_attr("tokens_seen", tokens_seen)
        if result and "seconds" in result:
            trial.set_user_attr("seconds", float(result["seconds"]))
        loss = float(result["loss"]) if result and result.get("loss") is not None else math.nan
        study = self._ot_study
        assert study is not None, "OptunaSearch made its study when it was set up"
        if status == PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        elif status in (COMPLETE, DIVERGED) and not math.isnan(loss):
            study.tell(trial, loss, state=TrialState.COMPLETE)
        else:
            if status != FAILED:
                logger.warning("trial %d ended %s with loss NaN: told as FAIL", trial.number, status)
            study.tell(trial, state=TrialState.FAIL)
