"""A recommendation outside the searched range: warned about, listed, kept unless `clip_to` asks.

Small synthetic ladders (3 sizes, 20 trials each, lr* = 30·N^-0.5, batch* = 0.5·N^0.3): a target
far beyond them puts lr below and batch size above every trial.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from hpo.analysis import OutOfRange, extrapolate
from hpo.analysis.report import format_recommendation
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_synthetic_trials

LADDER = (1e7, 1e8, 1e9)
NEAR = 1e10
"""A target whose lr and batch size fall inside the trials' ranges."""
FAR = 1e12
"""A target whose lr (~3e-5) lies below every trial and batch size (~2e3) above the largest, 1024."""


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    return make_synthetic_trials([Landscape(divergence_ratio=1e3)], LADDER, trials_per_cell=20, seed=3)


def _names(found: tuple[OutOfRange, ...]) -> set[str]:
    return {o.hyperparameter for o in found}


def test_a_target_inside_the_searched_ranges_lists_nothing(trials: pd.DataFrame) -> None:
    recommendation = extrapolate(trials, target_params=NEAR, n_bootstrap=10)
    assert recommendation.out_of_range == ()
    assert not any("searched range" in warning for warning in recommendation.warnings)


def test_a_value_beyond_every_trial_is_warned_about_once_listed_and_kept(
    trials: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo.analysis"):
        recommendation = extrapolate(trials, target_params=FAR, n_bootstrap=10)
    assert _names(recommendation.out_of_range) == {"lr", "batch_size"}
    lr = next(o for o in recommendation.out_of_range if o.hyperparameter == "lr")
    assert lr.value == recommendation.lr.value < lr.low == trials["lr"].min()
    assert lr.high == trials["lr"].max()
    assert lr.clipped is None
    batch = next(o for o in recommendation.out_of_range if o.hyperparameter == "batch_size")
    assert batch.value == recommendation.batch_size.value > batch.high == 1024
    assert recommendation.batch_size_power_of_two > 1024, "not clipped by default"
    warned = [w for w in recommendation.warnings if "searched range" in w]
    assert len(warned) == 2
    below = f"lr {lr.value:.4g} is below the searched range [{lr.low:.4g}, {lr.high:.4g}]"
    assert any(below in w for w in warned)
    assert not caplog.records, "returned, not also logged: an application would show each warning twice"
    assert "Outside the searched range" in format_recommendation(recommendation)


def test_the_study_space_replaces_the_trials_range_when_given(trials: pd.DataFrame) -> None:
    recommendation = extrapolate(
        trials, target_params=NEAR, n_bootstrap=10, searched={"batch_size": (8, 128)}
    )
    assert _names(recommendation.out_of_range) == {"batch_size"}
    assert recommendation.out_of_range[0].high == 128


def test_clip_to_moves_the_value_and_its_interval_into_the_range_and_keeps_the_extrapolated_one(
    trials: pd.DataFrame,
) -> None:
    clip_to = {"lr": (1e-4, 3e-2), "batch_size": (8, 1024), "weight_decay": (0.0, 0.3)}
    recommendation = extrapolate(trials, target_params=FAR, n_bootstrap=10, clip_to=clip_to)
    assert recommendation.lr.value == 1e-4
    assert 1e-4 <= recommendation.lr.low <= recommendation.lr.high <= 3e-2
    assert recommendation.batch_size.value == 1024
    assert recommendation.batch_size_power_of_two == 1024
    found = {o.hyperparameter: o for o in recommendation.out_of_range}
    assert found["lr"].clipped == 1e-4 and found["lr"].value < 1e-4
    assert found["batch_size"].clipped == 1024 and found["batch_size"].value > 1024
    assert any("clipped to 0.0001" in warning for warning in recommendation.warnings)


def test_clip_to_leaves_a_value_inside_its_range_as_it_is(trials: pd.DataFrame) -> None:
    plain = extrapolate(trials, target_params=NEAR, n_bootstrap=10)
    clipped = extrapolate(trials, target_params=NEAR, n_bootstrap=10, clip_to={"lr": (1e-5, 1.0)})
    assert clipped.lr == plain.lr
    assert clipped.batch_size_power_of_two == plain.batch_size_power_of_two


def test_a_clipped_batch_size_rounds_to_a_power_of_two_inside_the_range(trials: pd.DataFrame) -> None:
    recommendation = extrapolate(trials, target_params=FAR, n_bootstrap=10, clip_to={"batch_size": (8, 1000)})
    assert recommendation.batch_size.value == 1000
    assert recommendation.batch_size_power_of_two == 512


def test_clip_to_is_a_hard_limit_even_above_the_stability_cap_and_says_so() -> None:
    """Divergence at 6x the optimum: the cap at the far target (half the predicted edge) lies below
    the range's low end; lr is raised into the range all the same, with a warning."""
    trials = make_synthetic_trials([Landscape()], LADDER, trials_per_cell=20, seed=3)
    recommendation = extrapolate(trials, target_params=FAR, n_bootstrap=10, clip_to={"lr": (1e-3, 1e-2)})
    edge = recommendation.fit.variants["default"].stability_edge
    assert edge is not None and edge.predict(FAR) / 2 < 1e-3
    assert recommendation.lr.value == 1e-3
    (lr,) = [o for o in recommendation.out_of_range if o.hyperparameter == "lr"]
    assert lr.value < lr.clipped == 1e-3
    assert any("above the stability cap" in warning for warning in recommendation.warnings)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [({"momentum": (0.1, 0.9)}, "unknown hyperparameter"), ({"lr": (1e-2, 1e-3)}, "invalid")],
)
def test_ranges_naming_an_unknown_hyperparameter_or_upside_down_are_rejected(
    trials: pd.DataFrame, ranges: dict[str, tuple[float, float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        extrapolate(trials, target_params=NEAR, n_bootstrap=10, clip_to=ranges)
    with pytest.raises(ValueError, match=message):
        extrapolate(trials, target_params=NEAR, n_bootstrap=10, searched=ranges)
