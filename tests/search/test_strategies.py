"""Every registered search strategy through one conformance suite, as Optuna tests every sampler.

A strategy plans each scale of a ladder inside the variant's space, plans
the same scale the same way again (a resumed scale), stores its plan, checks
a scale it planned, gives a seeded sampler and a scheduler on tokens, reads
its settings back from a study file, and runs a short study to its plan with
both stores agreeing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from ray.tune.schedulers import TrialScheduler

from hpo.analysis import TRIAL_COLUMNS
from hpo.evaluation.surrogate import Surrogate
from hpo.run.runner import run_study
from hpo.search.design import sample_full_space
from hpo.search.plan import LawCheck, ScalePlan
from hpo.search.strategy import STRATEGIES, ScaleToPlan, SearchStrategy
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from hpo.study.spec import parse_spec
from hpo.vocab import COMPLETE, DIVERGED, ORIGINS

SPACE = SearchSpace(lr=LogRange(1e-4, 3e-2), batch_size=PowerOfTwoRange(8, 1024),
                    weight_decay=WeightDecayRange(1e-2, 0.3, zero=True))
LADDER = (1e6, 4e6, 1.6e7, 6.4e7)
TOKENS_PER_PARAM = 20
TRIALS = 12


@pytest.fixture(params=STRATEGIES.names())
def strategy(request: pytest.FixtureRequest) -> SearchStrategy:
    return STRATEGIES.get(request.param)()


def full_budget_trials(params: float, settings: list[dict[str, float]], rng: np.random.Generator
                       ) -> pd.DataFrame:
    """`settings` trained to D = 20·N on the surrogate landscape, as trial-table rows."""
    truth, tokens = Surrogate(), TOKENS_PER_PARAM * params
    rows = []
    for number, setting in enumerate(settings):
        loss = truth.loss(params, tokens, setting, tokens, rng)
        rows.append({"study": "s", "variant": "default", "scale": f"{params:.0e}", "params": params,
                     "tokens": tokens, "tokens_seen": tokens, **setting, "seed": 0, "loss": loss,
                     "status": DIVERGED if math.isnan(loss) else COMPLETE, "trial_number": number,
                     "run_id": ""})
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def to_plan(strategy: SearchStrategy, index: int, history: pd.DataFrame, seed: int = 0) -> ScaleToPlan:
    params = LADDER[index]
    if not strategy.plans_from_smaller_scales:
        history = history.iloc[:0]
    return ScaleToPlan(name=f"s/default/{index}", scale=str(index), params=int(params),
                       tokens=int(TOKENS_PER_PARAM * params), space=SPACE, trials=TRIALS, history=history,
                       previous_law_broken=False, cost_ratio=(params / LADDER[-1]) ** 2, seed=seed)


def within(space: SearchSpace, setting: dict[str, float]) -> bool:
    lr, batch, wd = setting["lr"], setting["batch_size"], setting["weight_decay"]
    assert isinstance(space.lr, LogRange) and isinstance(space.batch_size, PowerOfTwoRange)
    assert isinstance(space.weight_decay, WeightDecayRange)
    inside_lr = space.lr.low * (1 - 1e-9) <= lr <= space.lr.high * (1 + 1e-9)
    inside_wd = wd == 0 or space.weight_decay.low * (1 - 1e-9) <= wd <= space.weight_decay.high * (1 + 1e-9)
    return inside_lr and inside_wd and batch in space.batch_size.choices


def plan_the_ladder(strategy: SearchStrategy) -> list[ScalePlan]:
    """Plan each scale of `LADDER` in turn, its plan's settings (the rest drawn) trained on the surrogate."""
    rng = np.random.default_rng(0)
    history = full_budget_trials(LADDER[0], [], rng)
    plans = []
    for index, params in enumerate(LADDER):
        plan = strategy.plan(to_plan(strategy, index, history))
        listed = [setting for _, setting, _ in plan.enqueued()]
        drawn = [sample_full_space(plan.space, rng) for _ in range(plan.trials - len(listed))]
        history = pd.concat([history, full_budget_trials(params, listed + drawn, rng)], ignore_index=True)
        plans.append(plan)
    return plans


def test_every_strategy_plans_each_scale_inside_the_full_space(strategy: SearchStrategy) -> None:
    for plan in plan_the_ladder(strategy):
        assert plan.full_space == SPACE and plan.trials >= 1 and plan.reason
        assert len(plan.enqueued()) <= plan.trials
        for origin, setting, _ in plan.enqueued():
            assert origin in ORIGINS and within(SPACE, setting), (origin, setting)


def test_every_strategy_plans_a_scale_again_the_same_way(strategy: SearchStrategy) -> None:
    rng = np.random.default_rng(1)
    drawn = [full_budget_trials(params, [sample_full_space(SPACE, rng) for _ in range(TRIALS)], rng)
             for params in LADDER[:2]]
    history = pd.concat(drawn, ignore_index=True)
    assert strategy.plan(to_plan(strategy, 2, history)) == strategy.plan(to_plan(strategy, 2, history))


def test_every_strategys_plans_survive_storage(strategy: SearchStrategy) -> None:
    for plan in plan_the_ladder(strategy):
        assert ScalePlan.from_dict(plan.to_dict()) == plan


def test_every_strategy_checks_a_scale_it_planned(strategy: SearchStrategy) -> None:
    rng = np.random.default_rng(2)
    plan = plan_the_ladder(strategy)[-1]
    trials = full_budget_trials(LADDER[-1], [setting for _, setting, _ in plan.enqueued()]
                                + [sample_full_space(plan.space, rng) for _ in range(3)], rng)
    check = strategy.check(plan, trials, seed=0)
    assert isinstance(check, LawCheck) and check.reason


def test_every_strategy_gives_a_seeded_sampler_and_a_scheduler_on_tokens(strategy: SearchStrategy) -> None:
    plan = plan_the_ladder(strategy)[0]

    def suggestions(seed: int) -> list[float]:
        sampler = strategy.sampler(plan, name="s/default/0", stored_trials=0, seed=seed)
        study = optuna.create_study(sampler=sampler)
        return [study.ask().suggest_float("lr", 1e-4, 1e-2, log=True) for _ in range(3)]

    assert isinstance(strategy.sampler(plan, name="n", stored_trials=0, seed=0), optuna.samplers.BaseSampler)
    assert suggestions(0) == suggestions(0) != suggestions(1)
    scheduler = strategy.scheduler(budget_tokens=9000, grace_tokens=1000, reduction_factor=3)
    assert isinstance(scheduler, TrialScheduler) and scheduler._time_attr == "tokens"


def test_every_strategys_settings_read_back_from_a_study_file(strategy: SearchStrategy, tmp_path: Path
                                                              ) -> None:
    data = yaml.safe_load((Path(__file__).parents[2] / "studies" / "mlp_ladder.yaml").read_text())
    spec = parse_spec({**data, "search": strategy.settings()}, output_root=tmp_path)
    assert spec.search == strategy and not strategy.problems()


def test_every_strategy_runs_a_short_study_to_its_plan_in_both_stores(
    strategy: SearchStrategy, ray_runtime: None, tmp_path: Path
) -> None:
    data = yaml.safe_load((Path(__file__).parents[2] / "studies" / "mlp_ladder.yaml").read_text())
    data.update(name=f"conformance-{strategy.name}", scales=["w8", "w16", "w32"], trials_per_scale=3,
                budget={"tokens": 2000}, fidelity={"grace_tokens": 1000, "reduction_factor": 2},
                family_options={"val_examples": 256}, max_concurrent=2,
                search=strategy.settings())
    spec = parse_spec(data, output_root=tmp_path)

    outcome = run_study(spec)

    storage = optuna_storage(spec.storage.optuna)
    client = MlflowClient(spec.storage.mlflow)
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    children = client.search_runs([experiment.experiment_id], "tags.kind = 'trial'", max_results=1000)
    for scale in outcome.scales:
        assert scale.finished == scale.planned == scale.plan.trials
        study = optuna.load_study(study_name=optuna_study_name(spec.name, scale.variant, scale.scale),
                                  storage=storage)
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == scale.planned and all(t.state.is_finished() for t in trials)
        assert all(t.user_attrs.get("origin", "search") in ORIGINS for t in trials)
        runs = [r for r in children if r.data.tags["scale"] == scale.scale]
        assert sorted(r.info.run_id for r in runs) == sorted(t.user_attrs["run_id"] for t in trials)


def test_every_strategy_previews_the_first_scale_as_it_plans_it(strategy: SearchStrategy) -> None:
    empty = full_budget_trials(LADDER[0], [], np.random.default_rng(0))
    scale = to_plan(strategy, 0, empty)
    how, trials = strategy.preview(scale, 0)
    assert how and trials == strategy.plan(scale).trials
    for index in range(1, len(LADDER)):
        assert strategy.preview(to_plan(strategy, index, empty), index)[1] >= 1
