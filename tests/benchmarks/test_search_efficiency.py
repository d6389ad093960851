"""`benchmarks/search_efficiency.py` replays every method on the committed ladder tables, honestly.

A few searches of 4 trials per scale on the `mlp` table (the `gpt` table when it is committed): every
method runs by replay, every trained token is counted, and scale-aware search learns from the smaller
scales' curves where its probes may be judged. A few seconds each; no training.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import search_efficiency as se
from tabular_ladder import TABLES, TabularLadder

from hpo.search.plan import ScalePlan
from hpo.search.scale_aware import ScaleAware

TABLE_NAMES = [name for name, path in TABLES.items() if path.exists()]


@pytest.fixture(scope="module", params=TABLE_NAMES)
def truth(request: pytest.FixtureRequest) -> TabularLadder:
    return TabularLadder.from_csv(TABLES[request.param])


@pytest.mark.parametrize("method", se.SEARCHES)
def test_every_method_runs_on_a_committed_table_by_replay(truth: TabularLadder, method: str) -> None:
    ladder = se.table_ladder(truth)

    outcomes = se.repetition(truth, method, 4, 0, ladder)

    expected = {method, "naive_transfer"} if method == "independent" else {method}
    assert {o.method for o in outcomes} == expected
    for outcome in outcomes:
        assert outcome.compute_fraction > 0 and (outcome.regret_pct >= 0 or math.isinf(outcome.regret_pct))


def test_compute_counts_every_token_trained_and_curves_every_rung(truth: TabularLadder) -> None:
    ladder = se.table_ladder(truth)

    history, _ = se.search_ladder(truth, se.OURS, 4, 0, ladder)

    flops = 6.0 * history["params"] * history["tokens_seen"]
    assert history["flops"].to_numpy() == pytest.approx(flops.to_numpy())
    assert (history["tokens_seen"] <= history["tokens"]).all()
    assert set(history.loc[history["status"] == "complete", "tokens_seen"]) <= set(history["tokens"])


def test_probes_are_judged_where_the_tables_rungs_rank_as_the_end_does(
    truth: TabularLadder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The largest ladder scale checks the law; its plan's `judge_from` comes from the smaller scales'
    curves (not None), and a probe is never stopped before it."""
    ladder = se.table_ladder(truth)
    plans: list[ScalePlan] = []
    original = se.plan_scale

    def keep(*args: Any, **kwargs: Any) -> ScalePlan:
        plan = original(*args, **kwargs)
        plans.append(plan)
        return plan

    monkeypatch.setattr(se, "plan_scale", keep)
    history, _ = se.search_ladder(truth, se.OURS, 8, 0, ladder, ScaleAware())
    checks = [plan for plan in plans if plan.probes]
    assert checks and all(plan.judge_from is not None for plan in checks)
    for plan in checks:
        probes = history[(history["scale"] == plan.scale) & (history["trial_number"] > 0)]
        assert (probes["tokens_seen"] >= plan.judge_from * probes["tokens"] - 1e-6).all()


def _summary(curves: dict[str, list[tuple[int, float, float]]]) -> Any:
    """A summary of (T, compute, median regret) per method, one seed each."""
    outcomes = [se.Outcome(method, budget, 0, regret, compute)
                for method, points in curves.items() for budget, compute, regret in points]
    return se.summarize(outcomes, target=1.0)


def test_a_peer_short_of_our_regret_is_swept_on_until_it_spends_enough_to_bound_the_speedup() -> None:
    ours = [(8, 0.5, 3.0), (16, 1.0, 0.4)]
    summary = _summary({
        se.OURS: ours,
        "independent": [(32, 2.0, 0.9), (64, 3.0, 0.3)],          # reaches 0.4% at about 2.8 runs
        "naive_transfer": [(32, 2.0, 5.0), (64, 3.0, 4.0)],       # never, and has spent more than that
        "asha_random": [(32, 1.0, 2.0), (96, 1.5, 1.0)],          # never, at 1.5 runs: swept on
        "tpe_hyperband": [(32, 5.0, 1.0)],                        # never, but beyond what independent needs
        "tpe": [(24, 0.9, 2.0), (48, 1.8, 0.2)],                  # reaches it
    })

    assert se.peers_to_sweep_on(summary, target=1.0, worst=2.0) == {"asha_random": 192}


def test_no_peer_is_swept_past_the_largest_budget_or_the_compute_that_bounds_the_speedup() -> None:
    ours = [(16, 1.0, 0.4)]
    summary = _summary({
        se.OURS: ours,
        "independent": [(32, 2.0, 0.9), (se.MAX_PEER_BUDGET, 3.0, 0.8)],
        "naive_transfer": [(32, 2.0, 5.0), (se.MAX_PEER_BUDGET, 3.0, 4.0)],
        "asha_random": [(32, 1.0, 2.0), (96, se.SPEEDUP_READ_TO, 1.0)],
        "tpe_hyperband": [(32, 5.0, 1.0)],
        "tpe": [(48, 6.0, 2.0)],
    })

    assert se.peers_to_sweep_on(summary, target=1.0, worst=2.0) == {}
