"""The search space of one variant as an Optuna define-by-run function.

Each hyperparameter of `hpo.study.space.SearchSpace` is sampled so that the sampler
sees its natural geometry:

* ``lr`` (peak learning rate): log-uniform, ``suggest_float("lr", low, high, log=True)``;
* ``batch_size`` (sequences or examples per step): an *ordered* integer over
  the exponents, ``k = suggest_int("log2_batch_size", log2 low, log2 high)``
  and ``batch_size = 2**k`` — never a categorical, so TPE learns that 32 lies
  between 16 and 64;
* ``weight_decay``: log-uniform; with ``zero: true`` an exact 0 is a further
  option, chosen first by ``suggest_categorical("weight_decay_is_zero", ...)``.

A plain number in the space fixes that hyperparameter: it is returned as a
constant and never shown to the sampler. The function returns the values a
trial trains with, keyed ``lr``, ``batch_size``, ``weight_decay``;
`trial_params` recovers them from a stored trial, `fixed_params` turns
them back into the sampler's parameters (to enqueue a trial).

A trial enqueued with user attribute ``origin`` `EXPLORE` or `PROBE` samples
the `explore` space given to `define_space` instead (the full space, while
scale-aware search narrows the one the sampler learns in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from hpo.vocab import EXPLORE, HYPERPARAMETERS, PROBE

__all__ = ["TrialParams", "define_space", "fixed_params", "trial_params"]

TrialParams = dict[str, float | int]
"""What a trial trains with: ``lr`` (float), ``batch_size`` (int), ``weight_decay`` (float)."""

@dataclass(frozen=True)
class _Sampler:
    """Samples `space` on a trial; a module-level class so that it pickles
    (Ray checkpoints the searcher that holds it with `pickle`)."""

    space: SearchSpace
    explore: SearchSpace

    def __call__(self, trial: optuna.Trial) -> TrialParams:
        space = self.explore if trial.user_attrs.get("origin") in (EXPLORE, PROBE) else self.space
        values: TrialParams = {
            "lr": _lr(trial, space.lr),
            "batch_size": _batch_size(trial, space.batch_size),
            "weight_decay": _weight_decay(trial, space.weight_decay),
        }
        for name, value in values.items():
            trial.set_user_attr(name, value)
        return values


def define_space(space: SearchSpace, explore: SearchSpace | None = None
                 ) -> Callable[[optuna.Trial], TrialParams]:
    """A define-by-run function sampling `space` on an Optuna trial (`explore`,
    default `space`, for trials enqueued to explore). It also records the
    values as the trial's user attributes, so what a trial trained with stays
    readable after the study file's space is edited."""
    return _Sampler(space, explore or space)


def fixed_params(values: TrialParams, space: SearchSpace) -> dict[str, object]:
    """The sampler's parameters that make a trial of `space` train with `values`
    (for `optuna.Study.enqueue_trial`); fixed hyperparameters have none."""
    params: dict[str, object] = {}
    if isinstance(space.lr, LogRange):
        params["lr"] = float(values["lr"])
    if isinstance(space.batch_size, PowerOfTwoRange):
        params["log2_batch_size"] = int(values["batch_size"]).bit_length() - 1
    if isinstance(space.weight_decay, WeightDecayRange):
        if space.weight_decay.zero:
            params["weight_decay_is_zero"] = values["weight_decay"] == 0
        if values["weight_decay"] != 0:
            params["weight_decay"] = float(values["weight_decay"])
    return params


def trial_params(trial: optuna.trial.FrozenTrial) -> TrialParams:
    """The lr, batch size and weight decay a trial trained with, as recorded when it was sampled."""
    return {name: trial.user_attrs[name] for name in HYPERPARAMETERS}


def _lr(trial: optuna.Trial, lr: LogRange | float) -> float:
    if isinstance(lr, LogRange):
        return trial.suggest_float("lr", lr.low, lr.high, log=True)
    return float(lr)


def _batch_size(trial: optuna.Trial, batch_size: PowerOfTwoRange | int) -> int:
    if isinstance(batch_size, PowerOfTwoRange):
        low, high = batch_size.low.bit_length() - 1, batch_size.high.bit_length() - 1
        return 2 ** trial.suggest_int("log2_batch_size", low, high)
    return int(batch_size)


def _weight_decay(trial: optuna.Trial, weight_decay: WeightDecayRange | float) -> float:
    if not isinstance(weight_decay, WeightDecayRange):
        return float(weight_decay)
    if weight_decay.zero and trial.suggest_categorical("weight_decay_is_zero", [False, True]):
        return 0.0
    return trial.suggest_float("weight_decay", weight_decay.low, weight_decay.high, log=True)
