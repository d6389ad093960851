"""`hpo.search.scheduler`: the rungs a trial reports at are the rungs Ray Tune's ASHA judges at, and a probe
is judged from its plan's `judge_from` on, and stopped only where it trails a rung's best by more than its
plan's `probe_margin`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from hpo.search.scheduler import ProtectedASHA, rung_tokens
from hpo.vocab import PREDICTED, PROBE


@pytest.mark.parametrize(("grace", "budget", "reduction_factor"), [
    (1000, 4000, 2), (37, 1000, 3), (966_399, 966_400, 2), (100, 100, 3), (10, 1_000_000, 4), (1, 27, 3),
    (740_740, 20_000_000, 3),
])
def test_rung_tokens_are_the_rungs_of_ray_tunes_asha(grace: int, budget: int, reduction_factor: int) -> None:
    asha = ASHAScheduler(time_attr="tokens", metric="loss", mode="min", max_t=budget, grace_period=grace,
                         reduction_factor=reduction_factor)
    (bracket,) = asha._brackets  # Ray keeps its rungs private; this test guards against them moving
    assert list(rung_tokens(grace, budget, reduction_factor)) == sorted(
        milestone for milestone, _ in bracket._rungs)


@pytest.mark.parametrize(("judge_from", "decisions"), [
    (None, ["STOP"]),
    (900, ["CONTINUE", "CONTINUE", "STOP"]),
    (2700, ["CONTINUE", "CONTINUE", "CONTINUE"]),
])
def test_a_probe_behind_the_prediction_is_stopped_at_the_first_rung_from_judge_from_on(
    judge_from: int | None, decisions: list[str]
) -> None:
    """Rungs at 100, 300 and 900 tokens; a probe whose loss is twice the prediction's is stopped at the first
    rung it is judged at, and runs on before `judge_from_tokens` (its losses still enter the rungs)."""
    asha = ProtectedASHA(time_attr="tokens", metric="loss", max_t=2700, grace_period=100,
                         reduction_factor=3, judge_from_tokens=judge_from)
    predicted = SimpleNamespace(trial_id="predicted", config={"origin": PREDICTED})
    probe = SimpleNamespace(trial_id="probe", config={"origin": PROBE})
    for trial in (predicted, probe):
        asha.on_trial_add(None, trial)
    seen = []
    for tokens in (100, 300, 900):
        kept = asha.on_trial_result(None, predicted, {"tokens": tokens, "loss": 1.0})
        assert kept == TrialScheduler.CONTINUE
        seen.append(asha.on_trial_result(None, probe, {"tokens": tokens, "loss": 2.0}))
        if seen[-1] == TrialScheduler.STOP:
            break
    assert seen == decisions


@pytest.mark.parametrize(("behind", "decisions"), [
    (0.005, ["CONTINUE", "CONTINUE", "CONTINUE"]),
    (0.05, ["STOP"]),
])
def test_a_probe_within_the_margin_of_a_rungs_best_runs_on_and_one_beyond_it_is_stopped(
    behind: float, decisions: list[str]
) -> None:
    """Rungs at 100, 300 and 900 tokens, margin 1%: a probe 0.5% behind the best loss at each rung (two
    trials ran before it, the prediction and a probe far behind) would be cut by ASHA, which keeps the best
    third, but runs on; one 5% behind is stopped at the first rung."""
    asha = ProtectedASHA(time_attr="tokens", metric="loss", max_t=2700, grace_period=100,
                         reduction_factor=3, probe_margin=0.01)
    predicted = SimpleNamespace(trial_id="predicted", config={"origin": PREDICTED})
    far = SimpleNamespace(trial_id="far", config={"origin": PROBE})
    probe = SimpleNamespace(trial_id="probe", config={"origin": PROBE})
    for trial in (predicted, far, probe):
        asha.on_trial_add(None, trial)
    seen = []
    for tokens in (100, 300, 900):
        asha.on_trial_result(None, predicted, {"tokens": tokens, "loss": 1.0})
        asha.on_trial_result(None, far, {"tokens": tokens, "loss": 1.0 + behind / 2})
        seen.append(asha.on_trial_result(None, probe, {"tokens": tokens + 7, "loss": 1.0 + behind}))
        if seen[-1] == TrialScheduler.STOP:
            break
    assert seen == decisions
