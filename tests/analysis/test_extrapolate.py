"""`extrapolate` on trial tables generated from known laws: recovery, interval coverage, warnings, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import Estimate, Recommendation, extrapolate, read_trials
from hpo.analysis.report import format_recommendation
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_synthetic_trials
from hpo.vocab import nearest_power_of_two

LADDER = (1e7, 3e7, 1e8, 3e8, 1e9)
TARGET = 1e10
TARGET_TOKENS = 20 * TARGET


@pytest.fixture(scope="module")
def recommendation(synthetic_trials: pd.DataFrame) -> Recommendation:
    return extrapolate(synthetic_trials, target_params=TARGET, n_bootstrap=60)


def test_the_batch_size_to_run_is_the_power_of_two_nearest_in_log_space(
    recommendation: Recommendation,
) -> None:
    assert recommendation.batch_size_power_of_two == nearest_power_of_two(recommendation.batch_size.value)
    assert [nearest_power_of_two(b) for b in (96.1, 90.0, 300.0, 1.0)] == [128, 64, 256, 1]


def test_fits_recover_the_exponents(recommendation: Recommendation, known_variant: Landscape) -> None:
    """Tolerances: lr and batch exponents ±0.05 and ±0.1, loss exponent α ±0.03 (ladder of 2 decades)."""
    variant_fit = recommendation.fit.variants["default"]
    assert variant_fit.laws["lr"].b == pytest.approx(known_variant.lr_b, abs=0.05)
    assert variant_fit.laws["batch_size"].b == pytest.approx(known_variant.batch_b, abs=0.1)
    assert variant_fit.loss_law is not None
    assert variant_fit.loss_law.alpha == pytest.approx(known_variant.alpha, abs=0.03)
    assert abs(variant_fit.loss_law.E - known_variant.E) < 0.1


def test_recommendation_is_close_to_the_true_optimum_at_the_target(
    recommendation: Recommendation, known_variant: Landscape
) -> None:
    assert recommendation.lr.value == pytest.approx(known_variant.optimal_lr(TARGET, TARGET_TOKENS), rel=0.2)
    true_batch = known_variant.optimal_batch_size(TARGET, TARGET_TOKENS)
    assert recommendation.batch_size.value == pytest.approx(true_batch, rel=0.35)
    assert recommendation.batch_size_power_of_two in (256, 512)
    assert recommendation.loss.value == pytest.approx(
        known_variant.optimal_loss(TARGET, TARGET_TOKENS), rel=0.01
    )
    assert recommendation.weight_decay.value == 0.0


def test_ninety_percent_intervals_cover_the_truth_in_about_ninety_percent_of_draws(
    known_variant: Landscape,
) -> None:
    """20 independent ladders (fixed seeds); lr, batch size and loss at a target 10x beyond the ladder."""
    covered, widths = [], []
    for seed in range(20):
        trials = make_synthetic_trials([known_variant], LADDER, seed=1000 + seed)
        rec = extrapolate(trials, target_params=TARGET, n_bootstrap=40, seed=seed)
        covered += [
            rec.lr.covers(known_variant.optimal_lr(TARGET, TARGET_TOKENS)),
            rec.batch_size.covers(known_variant.optimal_batch_size(TARGET, TARGET_TOKENS)),
            rec.loss.covers(known_variant.optimal_loss(TARGET, TARGET_TOKENS)),
        ]
        widths.append(np.log(rec.lr.high / rec.lr.low))
    assert 0.8 <= np.mean(covered) <= 0.99
    assert np.median(widths) < np.log(2.0), "intervals so wide that coverage says nothing"


def test_only_the_five_required_columns_suffice(synthetic_trials: pd.DataFrame) -> None:
    minimal = synthetic_trials.loc[
        synthetic_trials["status"] == "complete", ["params", "tokens", "lr", "batch_size", "loss"]
    ]
    recommendation = extrapolate(minimal, target_params=TARGET, n_bootstrap=10)
    assert recommendation.variant == "default"
    assert recommendation.lr.low < recommendation.lr.value < recommendation.lr.high


def test_far_target_and_short_ladder_are_warned_about(synthetic_trials: pd.DataFrame) -> None:
    recommendation = extrapolate(synthetic_trials, target_params=1e13, n_bootstrap=10)
    assert any("beyond the 100x span" in warning for warning in recommendation.warnings)
    short = synthetic_trials[synthetic_trials["params"] <= 3e7]
    short_recommendation = extrapolate(short, target_params=TARGET, n_bootstrap=10)
    assert any("only 2 model sizes" in warning for warning in short_recommendation.warnings)
    assert np.isnan(short_recommendation.loss.value)


def test_optimum_at_a_range_edge_is_warned_about(
    synthetic_trials: pd.DataFrame, known_variant: Landscape
) -> None:
    largest = synthetic_trials["params"] == LADDER[-1]
    too_low = synthetic_trials["lr"] < 0.7 * known_variant.optimal_lr(LADDER[-1], 20 * LADDER[-1])
    recommendation = extrapolate(synthetic_trials[~largest | too_low], target_params=TARGET, n_bootstrap=10)
    assert any("lr optimum is at the high edge" in warning for warning in recommendation.warnings)


def test_laws_in_params_and_tokens_assume_the_largest_cell_ratio_without_target_tokens() -> None:
    variant = Landscape(lr_b=-0.7, lr_c=0.3, lr_a=2.0)
    tokens = [[10 * n, 40 * n] for n in LADDER]
    trials = make_synthetic_trials([variant], LADDER, tokens=tokens, trials_per_cell=30, seed=3)
    recommendation = extrapolate(trials, target_params=TARGET, n_bootstrap=10)
    assert recommendation.target_tokens == pytest.approx(40 * TARGET)
    assert any("target_tokens not given" in warning for warning in recommendation.warnings)
    law = recommendation.fit.variants["default"].laws["lr"]
    assert (law.b, law.c) == (pytest.approx(-0.7, abs=0.1), pytest.approx(0.3, abs=0.1))


@pytest.mark.parametrize("target", [0.0, -1e9, float("nan")])
def test_target_must_be_positive(synthetic_trials: pd.DataFrame, target: float) -> None:
    with pytest.raises(ValueError, match="target_params must be a positive number"):
        extrapolate(synthetic_trials, target_params=target)


def test_one_model_size_cannot_be_extrapolated(synthetic_trials: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="one model size"):
        extrapolate(synthetic_trials[synthetic_trials["params"] == 1e8], target_params=TARGET)


def test_a_batch_size_searched_at_one_size_only_is_that_cells_optimum_with_its_interval(
    synthetic_trials: pd.DataFrame,
) -> None:
    """A scale-aware search varies batch size at its first scale and lr alone at its checks, which run
    batch 512 as the plan said: the checks measure nothing about batch size, so the recommendation is
    the first cell's optimum and interval, not the median of the values the plan carried."""
    sizes = sorted(synthetic_trials["params"].unique())
    first = synthetic_trials[synthetic_trials["params"] == sizes[0]]
    checks = synthetic_trials[synthetic_trials["params"] != sizes[0]].assign(batch_size=512)
    trials = pd.concat([first, checks], ignore_index=True)

    recommendation = extrapolate(trials, target_params=TARGET, n_bootstrap=30)

    (optimum,) = [o for o in recommendation.fit.variants["default"].optima if "batch_size" in o.searched]
    assert recommendation.batch_size == optimum.batch_size
    assert recommendation.batch_size.low < recommendation.batch_size.value < recommendation.batch_size.high


def test_resamples_extrapolated_to_a_loss_at_or_below_zero_leave_the_loss_noise_defined() -> None:
    """The weight-decay study's trials (docs/findings): in its `tuned` 13k and 336k cells a few bootstrap
    quadratics extrapolate their minimum to a loss at or below 0. Their log made the cells' loss noise NaN,
    and the loss law's robust scale then fell back to its floor without a word."""
    study = Path(__file__).resolve().parents[2] / "docs" / "findings" / "weight_decay"
    trials = read_trials(study / "trials.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        recommendation = extrapolate(trials, target_params=9.85e7, n_bootstrap=200)
    assert np.isfinite(recommendation.loss.value)


@pytest.fixture(scope="module")
def weight_decay_study() -> Recommendation:
    """The weight-decay study's trials (docs/findings): variants `tuned` (searches weight decay, 0
    included) and `zero`, four `gpt` sizes 13k-793k."""
    study = Path(__file__).resolve().parents[2] / "docs" / "findings" / "weight_decay"
    return extrapolate(read_trials(study / "trials.csv"), target_params=9.85e7, n_bootstrap=60)


def test_a_weight_decay_most_cells_searched_and_found_at_zero_is_recommended_at_zero(
    weight_decay_study: Recommendation,
) -> None:
    """`tuned` located weight decay at exactly 0 at three of its four sizes (0.0016 at 100k). The one
    positive cell set the held value, and with it the recommendation, against the other three."""
    fit = weight_decay_study.fit.variants["tuned"]
    assert sorted(o.value("weight_decay").value == 0 for o in fit.optima) == [False, True, True, True]
    (tuned,) = [s for s in weight_decay_study.settings if s.variant == "tuned"]
    assert tuned.weight_decay == Estimate.exact(0.0)


def test_a_searched_hyperparameter_held_without_a_law_says_why_and_only_an_unsearched_one_reads_fixed(
    weight_decay_study: Recommendation,
) -> None:
    """`tuned` searched weight decay and is held at 0 because most cells found 0; both variants ran one
    batch size. The report printed "fixed" for all three, as if the user had fixed the weight decay."""
    held = {variant: fit.held_because for variant, fit in weight_decay_study.fit.variants.items()}
    assert held["tuned"] == {"batch_size": "not searched", "weight_decay": "0 in most cells"}
    assert held["zero"] == {"batch_size": "not searched", "weight_decay": "not searched"}
    lines = format_recommendation(weight_decay_study).splitlines()
    assert weight_decay_study.variant == "tuned"
    assert next(line for line in lines if line.startswith("weight_decay ")).endswith("held: 0 in most cells")
    assert next(line for line in lines if line.startswith("batch_size ")).endswith("fixed")


def test_an_irreducible_loss_fitted_at_its_bound_is_exactly_zero(weight_decay_study: Recommendation) -> None:
    """`tuned`'s best losses put the loss law's E at its bound 0; the law holds 0, not the fit's floor
    1e-300, which reports printed as E = 1e-300."""
    law = weight_decay_study.fit.variants["tuned"].loss_law
    assert law is not None and law.E == 0.0


def test_a_weight_decay_no_cell_located_is_held_at_a_value_the_cells_chose() -> None:
    """A grid sweep's weight decay {0, 0.01, 0.1} (too few positive values to locate an optimum in): two
    cells chose 0.01, two chose 0. Their median, 0.005, was recommended, a setting no run tried; the
    largest cell's choice breaks the tie."""
    rows = []
    for k, params in enumerate((1e6, 3e6, 1e7, 3e7)):
        best_wd = 0.01 if k % 2 == 0 else 0.0
        for lr in np.geomspace(1e-3, 1e-1, 9):
            for wd in (0.0, 0.01, 0.1):
                loss = 3.0 * params**-0.05 + 0.02 * np.log(lr / (0.3 * params**-0.3)) ** 2
                rows.append({"params": params, "tokens": 20 * params, "lr": lr, "batch_size": 32,
                             "weight_decay": wd, "loss": loss + (0.0 if wd == best_wd else 0.003)})
    recommendation = extrapolate(pd.DataFrame(rows), target_params=1e8, n_bootstrap=20)
    assert [o.weight_decay.value for o in recommendation.fit.variants["default"].optima] == [0.01, 0, 0.01, 0]
    assert recommendation.weight_decay.value == 0.0


def test_a_law_through_cells_that_all_found_one_value_reports_no_shrink() -> None:
    """Every cell's best batch size is the smallest tried (4): the law is flat with an exponent of 0 ±
    1e-16, and "no exponent resolved from 0; shrunk towards a constant" said nothing but noise."""
    rows = [
        {"params": params, "tokens": 20 * params, "lr": lr, "batch_size": batch, "weight_decay": 0.0,
         "loss": 3.0 * params**-0.05 + 0.02 * np.log(lr / (0.3 * params**-0.3)) ** 2 + 0.01 * np.log(batch)}
        for params in (1e6, 3e6, 1e7, 3e7)
        for lr in np.geomspace(1e-3, 1e-1, 9)
        for batch in (4, 8, 16)
    ]
    recommendation = extrapolate(pd.DataFrame(rows), target_params=1e8, n_bootstrap=20)
    assert recommendation.batch_size_power_of_two == 4
    assert not any("batch_size: no exponent resolved" in warning for warning in recommendation.warnings)


def test_a_batch_size_interval_ends_at_one_sequence() -> None:
    """The batch-size study (docs/findings): a law through three cells extrapolated 293x, its exponent's
    interval spanning 0, printed a 90% interval down to a batch of 0.00174 sequences."""
    study = Path(__file__).resolve().parents[2] / "docs" / "findings" / "batch_size"
    recommendation = extrapolate(read_trials(study / "trials.csv"), target_params=9.85e7, n_bootstrap=60)
    assert "batch_size" in recommendation.fit.variants["default"].laws
    assert recommendation.batch_size.low == 1.0 < recommendation.batch_size.value
