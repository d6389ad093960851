"""Scale-aware search (`hpo.search.scale_aware`) on a landscape of known optima (`hpo.evaluation.surrogate`).

The smaller scales are searched at random over the full space, every trial
to its full budget, so each test checks the transfer itself and not a
sampler or a pruner. The planned scale is 16M: a *design* scale when a trial
there costs 1/16 of one at the ladder's largest (one ×4 step below it), a
*check* scale when it is the largest; a check's probes are judged early by
Optuna's successive halving, as `hpo.search.scheduler.ProtectedASHA` judges them.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest

from hpo.analysis import find_optimum, fit_scaling, normalize_trials
from hpo.evaluation.surrogate import Surrogate
from hpo.search.scale_aware import (
    BOWL_TRIALS_PER_COEFFICIENT,
    DESIGN_TRIALS_PER_COEFFICIENT,
    ScaleAware,
    ScalePlan,
    check_law,
    design_size,
    latin_hypercube,
    plan_scale,
    sample_full_space,
)
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange

SPACE = SearchSpace(lr=LogRange(1e-4, 3e-2), batch_size=PowerOfTwoRange(8, 1024),
                    weight_decay=WeightDecayRange(1e-2, 0.3))
TRANSFER = ScaleAware()
"""The defaults of ``search: scale_aware``."""
SMALLER = (1e6, 4e6)
"""N of the two scales searched before the one planned."""
NEXT = 1.6e7
TRIALS = 24
TOKENS_PER_PARAM = 20
DESIGN, CHECK = 1 / 16, 1.0
"""Cost ratios of the planned scale: one ×4 step below the ladder's largest (at 20 tokens per parameter), and
the largest itself."""
CHEAP = 1 / 4096
"""The cost ratio of a scale three ×4 steps below the ladder's largest: any design is affordable there."""
RUNGS = (1, 3, 9, 27)
"""Evaluations of a judged trial, in units of D/27 (successive halving with reduction factor 3)."""


def trial_rows(truth: Surrogate, params: float, settings: list[dict[str, float]],
               rng: np.random.Generator) -> pd.DataFrame:
    """`settings` trained to their full budget D = 20·N: trial-table rows (diverged ones NaN)."""
    tokens = TOKENS_PER_PARAM * params
    rows = []
    for number, setting in enumerate(settings):
        loss = truth.loss(params, tokens, setting, tokens, rng)
        rows.append({"variant": "default", "scale": f"{params:.0e}", "params": params, "tokens": tokens,
                     "tokens_seen": tokens, **setting, "loss": loss, "trial_number": number,
                     "status": "diverged" if math.isnan(loss) else "complete"})
    return pd.DataFrame(rows)


def searched_ladder(truth: Surrogate, seed: int) -> pd.DataFrame:
    """`TRIALS` random full-budget trials at each scale of `SMALLER`."""
    rng = np.random.default_rng(seed)
    return pd.concat([trial_rows(truth, params, [sample_full_space(SPACE, rng) for _ in range(TRIALS)], rng)
                      for params in SMALLER], ignore_index=True)


def plan_next(history: pd.DataFrame, seed: int, *, law_broken: bool = False,
              transfer: ScaleAware = TRANSFER, cost_ratio: float = DESIGN) -> ScalePlan:
    return plan_scale(history, scale="16M", params=NEXT, tokens=TOKENS_PER_PARAM * NEXT, space=SPACE,
                      trials=TRIALS, settings=transfer, seed=seed, law_broken=law_broken,
                      cost_ratio=cost_ratio)


def first_scales(scales_measured: int) -> pd.DataFrame:
    """The trials of the first `scales_measured` smaller scales (0 or 1: before any law exists)."""
    history = searched_ladder(Surrogate(), 0)
    return history[history["params"].isin(SMALLER[:scales_measured])]


def run_plan(truth: Surrogate, plan: ScalePlan, seed: int) -> pd.DataFrame:
    """Every setting the plan lists trained to its full budget, the rest drawn at random from its space."""
    rng = np.random.default_rng(seed + 1000)
    settings = [plan.first, *plan.design, *plan.explore, *plan.probes]
    settings += [sample_full_space(plan.space, rng) for _ in range(plan.trials - len(settings))]
    return trial_rows(truth, NEXT, settings, rng)


def run_check(truth: Surrogate, plan: ScalePlan, seed: int) -> pd.DataFrame:
    """A check scale as the runner trains it: the prediction to its full budget, then each probe judged at
    D/27, D/9 and D/3 by Optuna's successive halving (the prediction's losses in its rungs), stopped there
    unless it is among the best third of the trials that reached the rung (the best one of the first two)."""
    rng = np.random.default_rng(seed + 1000)
    tokens = TOKENS_PER_PARAM * NEXT
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(pruner=pruner)
    rows = []
    for number, (setting, protected) in enumerate([(plan.first, True), *((p, False) for p in plan.probes)]):
        trial, status, seen, loss = study.ask(), "complete", tokens, math.nan
        for step in RUNGS:
            seen = tokens * step / RUNGS[-1]
            loss = truth.loss(NEXT, tokens, setting, seen, rng)
            if math.isnan(loss):
                status = "diverged"
                break
            trial.report(loss, step)
            if step < RUNGS[-1] and trial.should_prune() and not protected:
                status = "pruned"
                break
        if status == "complete":
            study.tell(trial, loss)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        rows.append({"variant": "default", "scale": "16M", "params": NEXT, "tokens": tokens,
                     "tokens_seen": seen, **setting, "loss": loss, "trial_number": number, "status": status})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("cost_ratio", [DESIGN, CHECK], ids=["design", "check"])
@pytest.mark.parametrize("seed", range(4))
def test_narrowed_space_contains_the_true_optimum_at_the_next_scale(seed: int, cost_ratio: float) -> None:
    truth = Surrogate()
    plan = plan_next(searched_ladder(truth, seed), seed, cost_ratio=cost_ratio)

    best, _ = truth.optimum(NEXT, TOKENS_PER_PARAM * NEXT, SPACE)  # batch: the best power of two

    assert plan.transferred
    assert plan.space.lr.low <= best["lr"] <= plan.space.lr.high
    assert best["batch_size"] in plan.space.batch_size.choices
    assert plan.space.lr.high / plan.space.lr.low < SPACE.lr.high / SPACE.lr.low
    assert plan.first is not None and plan.space.lr.low <= plan.first["lr"] <= plan.space.lr.high


def test_cheap_scale_runs_the_prediction_and_a_full_budget_design_of_the_narrowed_space() -> None:
    """One ×4 step below the largest scale a trial costs 1/16 of one there: `design_cost` (1.5) buys a
    design of 24 trials, a quarter of them over the full space, the rest a Latin hypercube of the narrowed
    space."""
    plan = plan_next(searched_ladder(Surrogate(), 0), 0)

    n = math.floor(TRANSFER.design_cost / DESIGN)
    assert plan.trials == 1 + n and len(plan.design) + len(plan.explore) == n and plan.probes == ()
    assert len(plan.explore) == math.ceil(TRANSFER.explore_share * n)
    assert all(plan.space.lr.low <= s["lr"] <= plan.space.lr.high for s in plan.design)
    assert all(s["batch_size"] in plan.space.batch_size.choices for s in plan.design)
    assert any(not plan.space.lr.low <= s["lr"] <= plan.space.lr.high for s in plan.explore), \
        "with the lr band a small part of the full range, some exploring trial falls outside it"


def test_largest_scale_checks_the_law_with_the_prediction_and_probes_across_its_band_and_beyond() -> None:
    """The probes differ from the prediction in lr alone, one per stratum of equal log width of the band
    widened once more by the safety factor (the prediction stands for its own stratum): some inside the
    band, where they measure the law, the outermost beyond it, where they show a broken one."""
    plan = plan_next(searched_ladder(Surrogate(), 0), 0, cost_ratio=CHECK)

    assert plan.transferred and plan.design == () and plan.explore == ()
    assert plan.trials == max(TRANSFER.min_trials, math.ceil(TRANSFER.trials_share * TRIALS)) < TRIALS
    assert len(plan.probes) == plan.trials - 1
    assert plan.first is not None
    assert all({**probe, "lr": plan.first["lr"]} == plan.first for probe in plan.probes)
    band, factor = plan.space.lr, TRANSFER.safety_factor
    low, high = max(SPACE.lr.low, band.low / factor), min(SPACE.lr.high, band.high * factor)
    logs = sorted(math.log(lr) for lr in [plan.first["lr"], *(p["lr"] for p in plan.probes)])
    steps = np.diff([math.log(p["lr"]) for p in sorted(plan.probes, key=lambda p: p["lr"])])
    assert all(low <= math.exp(x) <= high for x in logs)
    assert steps.min() > 0 and len(set(np.round(steps, 9))) <= 2, "evenly spaced but for the prediction's gap"
    assert any(band.low <= p["lr"] <= band.high for p in plan.probes)
    assert any(not band.low <= p["lr"] <= band.high for p in plan.probes)


def test_check_judges_probes_from_where_the_smaller_scales_rungs_agree_with_their_ends() -> None:
    """Without curves a check's probes are judged from the scheduler's first rung; with them, from the first
    share of the budget whose rank correlation with the final losses (on the largest smaller scale) stays at
    or above `rank_agreement`, or never (1) when no rung reaches it; either way, beyond `probe_margin` of a
    rung's best loss only."""
    history = searched_ladder(Surrogate(), 0)
    history = history.assign(trial_number=range(len(history)))
    finals = history.set_index("trial_number")["loss"]

    def curves(early: float, late: float = 1e-4) -> pd.DataFrame:
        """Each trial's loss at D/27, D/9 and D/3: its final loss times 1 + noise (relative), `early` before
        D/3 and `late` there."""
        rng = np.random.default_rng(0)
        rows = [{"scale": history.loc[number, "scale"], "trial_number": number,
                 "tokens_seen": history.loc[number, "tokens"] * step / 27,
                 "loss": loss * (1 + (early if step < 9 else late) * rng.standard_normal())}
                for number, loss in finals.items() for step in (1, 3, 9)]
        return pd.DataFrame(rows)

    def check(transfer: ScaleAware, curve_table: pd.DataFrame | None) -> ScalePlan:
        return plan_scale(history, scale="16M", params=NEXT, tokens=TOKENS_PER_PARAM * NEXT, space=SPACE,
                          trials=TRIALS, settings=transfer, seed=0, cost_ratio=CHECK, curves=curve_table)

    assert check(TRANSFER, None).judge_from is None
    assert check(TRANSFER, None).probe_margin == TRANSFER.probe_margin > 0
    assert "more than 1% behind a rung's best" in check(TRANSFER, None).reason
    assert check(replace(TRANSFER, probe_margin=0.0), None).probe_margin == 0.0
    assert check(TRANSFER, curves(0.5)).judge_from == pytest.approx(1 / 3, abs=1e-3)
    assert check(TRANSFER, curves(1e-4)).judge_from == pytest.approx(1 / 27, abs=1e-3)
    assert check(TRANSFER, curves(0.5, 0.5)).judge_from == 1.0


def test_design_is_as_large_as_design_cost_affords_and_below_its_minimum_the_scale_only_checks() -> None:
    """lr, batch size and weight decay searched: a quadratic of 10 coefficients, so a design needs 20
    trials."""
    minimum = DESIGN_TRIALS_PER_COEFFICIENT * 10

    assert design_size(SPACE, TRIALS, TRANSFER, 1 / 256) == math.ceil(TRANSFER.first_scales_factor * TRIALS)
    assert design_size(SPACE, TRIALS, TRANSFER, 1 / 16) == math.floor(TRANSFER.design_cost * 16) >= minimum
    assert design_size(SPACE, TRIALS, TRANSFER, 1.0) == 0
    assert design_size(SPACE, TRIALS, replace(TRANSFER, design_cost=(minimum - 1) / 16), 1 / 16) == 0
    assert design_size(SearchSpace(LogRange(1e-4, 3e-2), 32, 0.0), 3, TRANSFER, 1 / 256) == 9, \
        "lr alone: a quadratic of 3 coefficients, 6 trials suffice"


@pytest.mark.parametrize("cost_ratio", [DESIGN, CHECK], ids=["design", "check"])
def test_planted_break_in_the_lr_law_is_detected_in_most_seeds(cost_ratio: float) -> None:
    """lr* jumps ×10 at the planned scale, far outside the narrowed band. At a
    design scale the break shows when an exploring trial beats the band's best
    or the design's fitted optimum leaves the band (or presses on its edge); at
    a check scale, when a probe near the new optimum outruns the prediction at
    every rung of early stopping and ends best."""
    truth = Surrogate().with_lr_break(NEXT, 10.0)
    detected = []
    for seed in range(10):
        plan = plan_next(searched_ladder(truth, seed), seed, cost_ratio=cost_ratio)
        assert plan.transferred and not plan.space.lr.low <= truth.optimal_lr(NEXT) <= plan.space.lr.high
        rows = run_plan(truth, plan, seed) if cost_ratio == DESIGN else run_check(truth, plan, seed)
        detected.append(check_law(plan, rows, seed=seed).broken)

    assert sum(detected) >= 8, detected


@pytest.mark.parametrize("cost_ratio", [DESIGN, CHECK], ids=["design", "check"])
def test_law_that_holds_is_not_called_broken(cost_ratio: float) -> None:
    truth = Surrogate()
    plan = plan_next(searched_ladder(truth, 0), 0, cost_ratio=cost_ratio)
    rows = run_plan(truth, plan, 0) if cost_ratio == DESIGN else run_check(truth, plan, 0)

    assert not check_law(plan, rows, seed=0).broken


def test_probes_of_a_law_that_holds_are_stopped_early() -> None:
    """While the law holds, the prediction outruns every probe at some rung: the check costs about one full
    trial, and its cell holds one complete trial, the prediction. It locates no batch size or weight decay
    (one value of each was tried) and its lr is the law's own prediction."""
    truth = Surrogate()
    complete = []
    for seed in range(4):
        plan = plan_next(searched_ladder(truth, seed), seed, cost_ratio=CHECK)
        rows = run_check(truth, plan, seed)
        complete.append(int((rows["status"] == "complete").sum()))
        optimum = find_optimum(normalize_trials(rows), n_bootstrap=0)
        assert optimum.searched == ("lr",) and optimum.lr.value == pytest.approx(plan.first["lr"])

    assert complete == [1, 1, 1, 1]


def test_with_first_scales_factor_1_the_first_two_scales_are_ordinary_full_searches() -> None:
    for scales_measured in (0, 1):
        ordinary = replace(TRANSFER, first_scales_factor=1.0)
        plan = plan_next(first_scales(scales_measured), 0, transfer=ordinary)

        assert not plan.transferred and plan.space == SPACE and plan.trials == TRIALS
        assert plan.first is None and plan.design == plan.explore == plan.probes == ()


@pytest.mark.parametrize("cost_ratio", [DESIGN, CHECK], ids=["design", "check"])
def test_after_a_broken_law_the_next_scale_searches_the_full_space_or_a_wider_band(cost_ratio: float) -> None:
    """Where a design is affordable, a full-space Latin hypercube trained to full budget; else a check of the
    prediction over the band widened by the safety factor squared."""
    history = searched_ladder(Surrogate().with_lr_break(NEXT, 10.0), 0)

    plan = plan_next(history, 0, law_broken=True, cost_ratio=cost_ratio)

    assert plan.explore == ()
    if cost_ratio == DESIGN:
        assert not plan.transferred and plan.space == SPACE and plan.first is None and plan.probes == ()
        assert plan.trials == len(plan.design) == design_size(SPACE, TRIALS, TRANSFER, DESIGN)
    else:
        holds = plan_next(history, 0, cost_ratio=cost_ratio)
        assert plan.transferred and plan.design == () and len(plan.probes) == plan.trials - 1
        assert plan.space.lr.high / plan.space.lr.low > holds.space.lr.high / holds.space.lr.low
        assert "widened" in plan.reason


@pytest.mark.parametrize("cost_ratio", [DESIGN, CHECK], ids=["design", "check"])
def test_plan_survives_a_json_round_trip(cost_ratio: float) -> None:
    plan = plan_next(searched_ladder(Surrogate(), 0), 0, cost_ratio=cost_ratio)

    restored = ScalePlan.from_dict(json.loads(json.dumps(plan.to_dict())))

    assert restored == plan


def test_plan_stored_before_designs_probes_and_margin_reads_back_without_them() -> None:
    stored = plan_next(searched_ladder(Surrogate(), 0), 0, cost_ratio=CHECK).to_dict()
    del stored["design"], stored["probes"], stored["probe_margin"]

    restored = ScalePlan.from_dict(json.loads(json.dumps(stored)))

    assert restored.design == restored.probes == () and restored.first == stored["first"]
    assert restored.probe_margin == 0.0, "a resumed scale planned before the margin keeps ASHA's cut"


@pytest.mark.parametrize("scales_measured", [0, 1])
def test_first_two_scales_run_a_full_space_design_of_more_trials_each_to_its_full_budget(
    scales_measured: int,
) -> None:
    plan = plan_next(first_scales(scales_measured), 0, cost_ratio=CHEAP)

    assert not plan.transferred and plan.space == SPACE and plan.first is None
    assert plan.trials == math.ceil(TRANSFER.first_scales_factor * TRIALS)
    assert len(plan.design) == plan.trials, "every trial is a design one: early stopping spares it"
    assert all(SPACE.lr.low <= s["lr"] <= SPACE.lr.high for s in plan.design)
    assert all(s["batch_size"] in SPACE.batch_size.choices for s in plan.design)
    assert all(SPACE.weight_decay.low <= s["weight_decay"] <= SPACE.weight_decay.high for s in plan.design)


def test_first_scale_design_is_a_latin_hypercube_one_setting_per_stratum() -> None:
    settings = latin_hypercube(SPACE, 40, np.random.default_rng(0))

    log_lr = np.log([s["lr"] for s in settings])
    strata = np.floor((log_lr - math.log(SPACE.lr.low)) / math.log(SPACE.lr.high / SPACE.lr.low) * 40)
    assert sorted(strata) == list(range(40))
    batches = pd.Series([s["batch_size"] for s in settings]).value_counts()
    assert set(batches.index) == set(SPACE.batch_size.choices) and batches.max() - batches.min() <= 1


def test_surrogate_optimum_is_the_lowest_true_loss_in_the_space() -> None:
    truth = Surrogate()
    params, tokens = 4e6, 8e7
    best, loss = truth.optimum(params, tokens, SPACE)
    rng = np.random.default_rng(0)

    others = [truth.true_loss(params, tokens, sample_full_space(SPACE, rng)) for _ in range(200)]

    assert loss <= min(others)
    assert truth.regret_pct(params, tokens, best, SPACE) == 0.0
    assert best["batch_size"] in SPACE.batch_size.choices


def test_weight_decay_law_not_resolved_from_zero_is_shrunk_towards_a_constant() -> None:
    """wd*(N) = 0.04·N^0.04 is too flat for 40 trials a scale to resolve its
    exponent: the recommendation's law shrinks it most of the way to 0 instead
    of extrapolating noise, while the resolved lr and batch-size laws keep
    nearly all of theirs; the search's laws (shrink=False) are the fitted ones."""
    truth, rng = Surrogate(), np.random.default_rng(0)
    history = pd.concat([trial_rows(truth, params, [sample_full_space(SPACE, rng) for _ in range(40)], rng)
                         for params in (2.5e5, 1e6, 4e6)], ignore_index=True)

    trials = normalize_trials(history)
    shrunk = fit_scaling(trials, n_bootstrap=50, seed=0).variants["default"]
    fitted = fit_scaling(trials, n_bootstrap=50, seed=0, shrink=False).variants["default"]

    assert abs(shrunk.laws["weight_decay"].b) < 0.5 * abs(fitted.laws["weight_decay"].b)
    for name in ("lr", "batch_size"):
        assert shrunk.laws[name].b == pytest.approx(fitted.laws[name].b, rel=0.1)
    assert any("weight_decay: no exponent resolved from 0; shrunk" in note for note in shrunk.notes)


def test_cell_whose_optimum_is_its_best_trial_has_the_near_best_trials_spread() -> None:
    """Six trials are too few for a surface: the best trial stands for the optimum,
    and its interval spans the near-best trials instead of being a point."""
    rng = np.random.default_rng(0)
    rows = trial_rows(Surrogate(), 1e6, [sample_full_space(SPACE, rng) for _ in range(6)], rng)

    optimum = find_optimum(normalize_trials(rows), n_bootstrap=50, seed=0)

    assert not optimum.surface_fitted
    assert optimum.lr.low < optimum.lr.value < optimum.lr.high


@pytest.mark.parametrize("scales_measured", [0, 1])
def test_first_scales_design_costs_at_most_design_cost_largest_scale_trials(scales_measured: int) -> None:
    """At 1/16 of the largest scale's trial cost, 1.5 largest-scale trials buy 24 of the 72 wanted; where
    they buy fewer than the scale's trials, the first scale is an ordinary search and the second checks the
    first scale's optimum with as many trials as it affords (at least a check's)."""
    history = first_scales(scales_measured)

    capped = plan_next(history, 0, cost_ratio=DESIGN)
    dear = plan_next(history, 0, cost_ratio=4 / 16)

    assert capped.trials == len(capped.design) == math.floor(TRANSFER.design_cost * 16) == TRIALS
    if scales_measured == 0:
        assert dear.trials == TRIALS and dear.design == () and dear.space == SPACE
    else:
        assert dear.transferred and dear.design == () and dear.first is not None
        assert dear.trials == max(math.floor(TRANSFER.design_cost * 4), 10) == 1 + len(dear.probes)
        assert "one scale measured" in dear.reason


def test_cheap_first_scale_runs_at_least_the_trials_a_bowl_needs() -> None:
    """Three searched hyperparameters make a quadratic of 10 coefficients; the analysis fits a bowl to 3 per
    coefficient, so a cheap first scale runs 30 trials even for T = 6 (3·T = 18)."""
    plan = plan_scale(first_scales(0), scale="250K", params=2.5e5, tokens=5e6, space=SPACE, trials=6,
                      settings=TRANSFER, seed=0, cost_ratio=CHEAP)

    assert plan.trials == len(plan.design) == BOWL_TRIALS_PER_COEFFICIENT * 10 == 30
