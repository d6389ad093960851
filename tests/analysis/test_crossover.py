"""Crossovers between variants (where tuned loss curves intersect) and of hyperparameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpo.analysis import extrapolate, read_trials
from hpo.analysis.crossover import measured_rise
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import crossing_variants, make_synthetic_trials

LADDER = (1e7, 3e7, 1e8, 3e8, 1e9)
TARGET = 1e10


def verdict_for(crossing_params: float, seed: int = 0):
    baseline, challenger = crossing_variants(crossing_params)
    trials = make_synthetic_trials([baseline, challenger], LADDER, seed=seed)
    recommendation = extrapolate(trials, target_params=TARGET, n_bootstrap=40, seed=seed)
    (crossover,) = recommendation.crossovers
    return crossover, recommendation


def test_crossover_between_largest_measured_and_target_is_ahead() -> None:
    crossover, recommendation = verdict_for(3e9)
    assert crossover.verdict == "ahead"
    assert crossover.params.value == pytest.approx(3e9, rel=0.5)
    assert crossover.leader_at_largest == "challenger" and crossover.leader_at_target == "baseline"
    assert crossover.p_flip > 0.8
    assert recommendation.variant == "baseline"
    assert any("overtake" in warning for warning in recommendation.warnings)


def test_crossover_inside_the_measured_range_is_crossed() -> None:
    crossover, _ = verdict_for(1e8)
    assert crossover.verdict == "crossed"
    assert crossover.params.value == pytest.approx(1e8, rel=0.5)
    assert crossover.leader_at_largest == crossover.leader_at_target == "baseline"
    assert crossover.p_flip < 0.2


def test_crossover_beyond_the_target_is_none() -> None:
    crossover, recommendation = verdict_for(1e12)
    assert crossover.verdict == "none"
    assert recommendation.variant == "challenger"


def test_shifting_optimum_flags_a_hyperparameter_crossover() -> None:
    shifting = make_synthetic_trials([Landscape()], LADDER, seed=1)
    recommendation = extrapolate(shifting, target_params=TARGET, n_bootstrap=40)
    flags = {h.hyperparameter: h for h in recommendation.hyperparameter_crossovers}
    assert flags["lr"].flagged and flags["lr"].penalty_pct > 1.0
    assert flags["lr"].small_scale_value > flags["lr"].target_optimum.high


def test_scale_free_optimum_raises_no_hyperparameter_crossover() -> None:
    constant = Landscape(lr_a=3e-3, lr_b=0.0, batch_a=128.0, batch_b=0.0)
    trials = make_synthetic_trials([constant], LADDER, seed=2)
    recommendation = extrapolate(trials, target_params=TARGET, n_bootstrap=40)
    assert not any(h.flagged for h in recommendation.hyperparameter_crossovers)


def test_a_penalty_is_the_least_rise_measured_at_least_as_far_off_on_its_side() -> None:
    rises = np.array([[-1.0, 0.30], [-0.2, 0.01], [0.0, 0.0], [0.5, 0.04], [1.5, 0.20], [2.0, 0.12]])
    assert measured_rise(rises, 1.0) == (0.12, False)
    assert measured_rise(rises, -0.5) == (0.30, False)
    assert measured_rise(rises, 3.0) == (0.12, True)
    assert measured_rise(rises[rises[:, 0] >= 0], -0.5)[0] == np.inf


def test_a_small_scale_lr_far_off_the_target_costs_what_the_largest_cell_measured() -> None:
    """The lr-width study (docs/findings): `constant`'s 13k lr is 40x its predicted optimum at the target,
    farther than any 793k trial lies from that cell's optimum (15x, 25% worse). The near-best quadratic,
    carried that far, claimed 242%."""
    study = Path(__file__).resolve().parents[2] / "docs" / "findings" / "lr_width_crossover"
    recommendation = extrapolate(read_trials(study / "trials.csv"), target_params=9.85e7, n_bootstrap=40)
    (constant,) = [h for h in recommendation.hyperparameter_crossovers if h.variant == "constant"]
    largest = max(recommendation.fit.variants["constant"].optima, key=lambda o: o.params)
    assert constant.flagged and constant.penalty_beyond_measured
    assert recommendation.settings[-1].variant == "constant"
    penalty_nats = constant.penalty_pct / 100 * recommendation.settings[-1].loss.value
    assert penalty_nats <= largest.rises["lr"][:, 1].max() * largest.loss.value + 1e-9
    assert any("at least" in w and "constant" in w for w in recommendation.warnings)
