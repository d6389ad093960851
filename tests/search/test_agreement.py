"""`hpo.search.agreement`: from which share of the budget a rung ranks trials as their final losses do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from hpo.search.agreement import CONFIDENCE, MIN_TRIALS, judge_from, lower_bound, rung_agreement

SHARES = (1 / 27, 1 / 9, 1 / 3)


def ladder(sizes: dict[str, int], noise: dict[float, float], seed: int = 0
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials of scales named by their number of complete trials, N growing in that order; their losses at
    each share of the budget are the final loss times 1 + `noise[share]` · a standard normal draw."""
    rng = np.random.default_rng(seed)
    rows, curves = [], []
    for index, (scale, complete) in enumerate(sizes.items()):
        for number in range(complete + 2):
            loss, status = 3.0 + rng.uniform(), "complete" if number < complete else "pruned"
            rows.append({"scale": scale, "params": 10.0**(index + 3), "tokens": 2700, "trial_number": number,
                         "loss": loss, "status": status})
            curves += [{"scale": scale, "trial_number": number, "tokens_seen": 2700 * share,
                        "loss": loss * (1 + noise[share] * rng.standard_normal())} for share in SHARES]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def test_no_curves_or_too_few_complete_trials_measure_nothing() -> None:
    history, curves = ladder({"a": MIN_TRIALS - 1}, dict.fromkeys(SHARES, 0.0))

    assert rung_agreement(history, None) == ("", {})
    assert rung_agreement(history, curves) == ("", {})
    assert judge_from({}, 0.8) is None


def test_agreement_is_read_on_the_largest_scale_with_enough_complete_trials() -> None:
    """The largest scale has too few complete trials (its pruned ones do not count); the next one is read,
    its losses at D/27 reshuffled, at D/9 and D/3 nearly the final ones."""
    history, curves = ladder({"small": 12, "middle": 12, "large": MIN_TRIALS - 1},
                             {SHARES[0]: 1.0, SHARES[1]: 1e-4, SHARES[2]: 1e-4})

    scale, agreement = rung_agreement(history, curves)

    assert scale == "middle"
    assert sorted(agreement) == pytest.approx(SHARES, abs=1e-3)
    low, high = agreement[min(agreement)], min(agreement[s] for s in agreement if s > 0.05)
    assert low < 0.8 <= high
    assert judge_from(agreement, 0.8) == pytest.approx(1 / 9, abs=1e-3)


@pytest.mark.parametrize(("agreement", "start"), [
    ({0.037: 0.95, 0.111: 0.97, 0.333: 0.99}, 0.037),
    ({0.037: 0.95, 0.111: 0.70, 0.333: 0.90}, 0.333),
    ({0.037: 0.95, 0.111: 0.90, 0.333: 0.70}, 1.0),
])
def test_probes_are_judged_from_the_first_share_after_which_every_share_agrees(
    agreement: dict[float, float], start: float
) -> None:
    assert judge_from(agreement, 0.8) == start


def test_a_rung_that_clears_the_threshold_by_its_point_estimate_alone_is_not_trusted() -> None:
    """On the 36 trials of a first scale's design, ρ = 0.85 reads above 0.8 but its lower bound does not;
    ρ = 0.93 clears it; the bound closes on ρ as the trials grow, and a perfect (or reversed) ranking
    stays finite."""
    assert lower_bound(0.85, 36) < 0.8 < lower_bound(0.93, 36)
    assert lower_bound(0.85, 36) < lower_bound(0.85, 400) < 0.85
    assert judge_from({1 / 9: lower_bound(0.85, 36), 1 / 3: lower_bound(0.99, 36)}, 0.8) == 1 / 3
    assert 0.9 < lower_bound(1.0, MIN_TRIALS) < 1.0
    assert lower_bound(-1.0, MIN_TRIALS) == pytest.approx(-1.0)


def test_a_scale_whose_rung_ranks_well_on_too_few_trials_reads_its_lower_bound() -> None:
    """`MIN_TRIALS` complete trials whose D/9 losses swap two pairs of the final ranking (Spearman 0.81,
    above 0.8) and whose D/3 losses rank as the ends: the agreement read at D/9 is the bound (0.49), so the
    probes are judged from D/3, not D/9."""
    finals = np.arange(float(MIN_TRIALS)) + 3.0
    swapped = finals.copy()
    swapped[[0, 2, 5, 7]] = swapped[[2, 0, 7, 5]]
    history = pd.DataFrame({"scale": "small", "params": 1e3, "tokens": 2700,
                            "trial_number": range(MIN_TRIALS), "loss": finals, "status": "complete"})
    curves = pd.DataFrame([{"scale": "small", "trial_number": number, "tokens_seen": 2700 * share,
                            "loss": loss}
                           for share, losses in ((SHARES[1], swapped), (SHARES[2], finals))
                           for number, loss in enumerate(losses)])

    _, agreement = rung_agreement(history, curves)
    at_d9 = agreement[min(agreement)]

    assert float(spearmanr(swapped, finals).statistic) > 0.8 > at_d9
    assert at_d9 == pytest.approx(lower_bound(float(spearmanr(swapped, finals).statistic), MIN_TRIALS))
    assert judge_from(agreement, 0.8) == pytest.approx(1 / 3, abs=1e-3)


def test_a_rung_that_ranks_only_the_far_off_trials_right_is_not_trusted() -> None:
    """72 complete trials (a first scale's wide design): at D/9 the worse half ranks as at the end and the
    better half is shuffled among itself. Over all 72 the rung would clear 0.8 (the far-off settings lift
    the correlation); the agreement is read on the better half, where a check's probes race the prediction,
    so the probes are judged from D/3."""
    n = 72
    finals = np.arange(float(n)) + 3.0
    shuffled = finals.copy()
    shuffled[: n // 2] = np.random.default_rng(1).permutation(finals[: n // 2])
    history = pd.DataFrame({"scale": "small", "params": 1e3, "tokens": 2700, "trial_number": range(n),
                            "loss": finals, "status": "complete"})
    curves = pd.DataFrame([{"scale": "small", "trial_number": number, "tokens_seen": 2700 * share,
                            "loss": loss}
                           for share, losses in ((SHARES[1], shuffled), (SHARES[2], finals))
                           for number, loss in enumerate(losses)])

    _, agreement = rung_agreement(history, curves)

    assert lower_bound(float(spearmanr(shuffled, finals).statistic), n) > 0.8 > agreement[min(agreement)]
    assert agreement[min(agreement)] == pytest.approx(
        lower_bound(float(spearmanr(shuffled[: n // 2], finals[: n // 2]).statistic), n // 2))
    assert judge_from(agreement, 0.8) == pytest.approx(1 / 3, abs=1e-3)


def test_the_lower_bound_holds_the_true_correlation_at_its_confidence() -> None:
    """Gaussian pairs with Pearson r have Spearman ρ = (6/π)·asin(r/2); over 2,000 draws of 20 pairs the
    bound lies at or below ρ in about `CONFIDENCE` of them."""
    rng = np.random.default_rng(0)
    r, n, draws = 0.85, 20, 2000
    true_rho = 6 / np.pi * np.arcsin(r / 2)
    held = 0
    for _ in range(draws):
        x = rng.standard_normal(n)
        y = r * x + np.sqrt(1 - r**2) * rng.standard_normal(n)
        held += lower_bound(float(spearmanr(x, y).statistic), n) <= true_rho
    assert held / draws == pytest.approx(CONFIDENCE, abs=0.03)


def test_evaluations_of_one_scheduled_point_are_read_together_whatever_the_batch_size() -> None:
    """A trial evaluates at the end of the step that passes a scheduled point, so trials of three batch sizes
    report the point D/2 at 1,000, 1,008 and 1,024 tokens: one rung of the eight trials read (the better
    half, at least `MIN_TRIALS`), at the least share, not three rungs of at most three that fall short."""
    finals = np.arange(12.0) + 3.0
    history = pd.DataFrame({"scale": "small", "params": 1e3, "tokens": 2000, "trial_number": range(12),
                            "loss": finals, "status": "complete"})
    overshoot = [0, 8, 24] * 4
    early = {1000: 1.0, 2000: 0.0}
    curves = pd.DataFrame([{"scale": "small", "trial_number": number,
                            "tokens_seen": point + overshoot[number], "loss": loss + early[point]}
                           for point in (1000, 2000) for number, loss in enumerate(finals)])

    scale, agreement = rung_agreement(history, curves)

    assert scale == "small" and list(agreement) == [0.5]
    assert agreement[0.5] == pytest.approx(lower_bound(1.0, 8))
