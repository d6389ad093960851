"""define_space: lr log-uniform, batch size an ordered power-of-two exponent, weight decay with an exact 0."""

from __future__ import annotations

import math
import pickle

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.search.sampling import define_space, trial_params
from hpo.study.spec import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange

FULL = SearchSpace(lr=LogRange(1e-4, 1e-1), batch_size=PowerOfTwoRange(16, 128),
                   weight_decay=WeightDecayRange(1e-3, 0.3, zero=True))


def sampled(space: SearchSpace, trials: int = 60) -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sample = define_space(space)
    study.optimize(lambda trial: sample(trial)["lr"], n_trials=trials)
    return study


def test_each_hyperparameter_has_its_natural_distribution() -> None:
    distributions = {}
    for trial in sampled(FULL).trials:
        distributions.update(trial.distributions)
    assert distributions["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert distributions["log2_batch_size"] == IntDistribution(4, 7)
    assert distributions["weight_decay"] == FloatDistribution(1e-3, 0.3, log=True)
    assert distributions["weight_decay_is_zero"] == CategoricalDistribution([False, True])


def test_values_lie_in_the_space_with_powers_of_two_and_an_exact_zero() -> None:
    values = [trial_params(trial) for trial in sampled(FULL).trials]
    assert all(1e-4 <= v["lr"] <= 1e-1 for v in values)
    assert {v["batch_size"] for v in values} == {16, 32, 64, 128}
    decays = [v["weight_decay"] for v in values]
    assert 0.0 in decays
    assert all(d == 0.0 or 1e-3 <= d <= 0.3 for d in decays)
    assert any(d > 0 for d in decays)


def test_weight_decay_without_zero_never_asks_for_it() -> None:
    space = SearchSpace(lr=FULL.lr, batch_size=FULL.batch_size, weight_decay=WeightDecayRange(1e-3, 0.3))
    study = sampled(space, trials=10)
    assert all("weight_decay_is_zero" not in trial.params for trial in study.trials)
    assert all(trial.params["weight_decay"] > 0 for trial in study.trials)


def test_fixed_values_are_constants_the_sampler_never_sees() -> None:
    space = SearchSpace(lr=3e-3, batch_size=64, weight_decay=0.0)
    study = sampled(space, trials=3)
    assert all(trial.params == {} for trial in study.trials)
    assert trial_params(study.trials[0]) == {"lr": 3e-3, "batch_size": 64, "weight_decay": 0.0}


def test_trial_params_recovers_what_the_trial_sampled() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = define_space(FULL)(trial)
    study.tell(trial, 1.0)
    recovered = trial_params(study.trials[0])
    assert recovered == values
    assert math.log2(recovered["batch_size"]).is_integer()


def test_space_pickles() -> None:
    """Ray checkpoints the searcher, and the space with it, with pickle."""
    sample = pickle.loads(pickle.dumps(define_space(FULL)))
    fixed = optuna.trial.FixedTrial({"lr": 1e-3, "log2_batch_size": 5, "weight_decay_is_zero": True})
    assert sample(fixed) == {"lr": 1e-3, "batch_size": 32, "weight_decay": 0.0}
