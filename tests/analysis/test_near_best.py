"""Near-best bands: membership from the noise, the centre, grid detection, noise from the trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import find_optimum, normalize_trials
from hpo.analysis.near_best import is_grid, membership, near_best_band, space_shares
from hpo.analysis.noise import estimate_noise
from hpo.analysis.trials import iter_cells

BEST_LR, BEST_BATCH = 3e-3, 128.0


def bowl_grid(noise: float, *, high_lr_steepness: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """One cell: 13 learning rates x 7 batch sizes around (3e-3, 128), loss 2.5 at the best."""
    lrs, batches = np.meshgrid(BEST_LR * 2.0 ** np.arange(-3, 3.5, 0.5), BEST_BATCH * 2.0 ** np.arange(-3, 4))
    lrs, batches = lrs.ravel(), batches.ravel()
    offset = np.log(lrs / BEST_LR)
    bowl = (
        1
        + 0.01 * np.where(offset > 0, high_lr_steepness, 1.0) * offset**2
        + 0.004 * np.log(batches / 128) ** 2
    )
    loss = 2.5 * bowl * (1 + noise * np.random.default_rng(seed).standard_normal(lrs.size))
    return normalize_trials(
        pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs, "batch_size": batches, "loss": loss})
    )


def settings_and_losses(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return rows[["lr", "batch_size", "weight_decay"]].to_numpy(), rows["loss"].to_numpy()


def test_membership_is_one_half_at_the_tolerance_and_falls_with_the_noise_as_scale() -> None:
    losses = np.array([2.0, 2.0 * 1.001, 2.0 * 1.004])
    weights = membership(losses, tolerance=0.001, noise=0.001)
    assert weights[1] == pytest.approx(0.5)
    assert weights[0] > 0.7 and weights[2] < 0.02


def test_the_band_of_a_symmetric_bowl_is_centred_on_its_optimum() -> None:
    settings, losses = settings_and_losses(bowl_grid(0.0005))
    band = near_best_band(settings, losses, ("lr", "batch_size"), noise=0.0005)
    assert band.center[0] == pytest.approx(BEST_LR, rel=0.1)
    assert band.center[1] == pytest.approx(BEST_BATCH, rel=0.15)
    assert band.effective_trials > 2


def test_a_bowl_steeper_above_the_best_lr_shifts_the_band_below_it() -> None:
    settings, losses = settings_and_losses(bowl_grid(0.0, high_lr_steepness=4.0))
    band = near_best_band(settings, losses, ("lr", "batch_size"), tolerance=0.005, noise=0.0005)
    assert band.center[0] < BEST_LR


def test_noise_is_estimated_from_the_residuals_of_a_smooth_surface() -> None:
    rows = bowl_grid(0.002, seed=4)
    settings, losses = settings_and_losses(rows)
    assert estimate_noise([(np.log(settings[:, :2]), losses)]) == pytest.approx(0.002, rel=0.35)
    assert estimate_noise([(np.log(settings[:5, :2]), losses[:5])]) is None, "too few trials to tell"


def test_noise_half_as_large_as_the_window_is_not_read_low_from_the_trials_it_favoured() -> None:
    """Trials chosen by their own noisy losses are those that drew favourable noise: at σ = 1% (half the
    2% window) that read about 0.65 σ; chosen where the surface places them, σ itself."""
    cells = []
    for seed in range(4):
        settings, losses = settings_and_losses(bowl_grid(0.01, seed=seed))
        cells.append((np.log(settings[:, :2]), losses))
    assert estimate_noise(cells) == pytest.approx(0.01, rel=0.2)


def test_a_grid_is_told_from_a_random_search(synthetic_trials: pd.DataFrame) -> None:
    assert is_grid(bowl_grid(0.001))
    assert not any(is_grid(rows) for *_, rows in iter_cells(synthetic_trials))


def test_near_best_optimum_has_the_band_as_interval_and_a_centre_error() -> None:
    optimum = find_optimum(bowl_grid(0.001), method="near_best")
    assert optimum.method == "near_best" and optimum.replicates.size == 0
    assert optimum.lr.low < BEST_LR < optimum.lr.high
    assert 0 < optimum.center_error["lr"] < np.log(optimum.lr.high / optimum.lr.low)


def test_a_band_reaching_the_end_of_the_range_tried_says_widen() -> None:
    rows = bowl_grid(0.0005)
    optimum = find_optimum(rows[rows["lr"] <= BEST_LR], method="near_best", noise=0.0005)
    assert optimum.at_edge == {"lr": "high"}


def test_each_trial_counts_for_the_share_of_the_space_it_stands_for() -> None:
    even = np.column_stack([np.repeat([1e-3, 2e-3, 4e-3], 2), np.tile([64.0, 128.0], 3), np.zeros(6)])
    assert space_shares(even, ("lr", "batch_size")) == pytest.approx(np.full(6, 1 / 6))
    uneven = np.column_stack([[1e-3, 2e-3, 2.2e-3, 2.4e-3, 8e-3], np.full(5, 64.0), np.zeros(5)])
    shares = space_shares(uneven, ("lr",))
    assert shares[0] > 4 * shares[2] and shares[4] > shares[0], "crowded values count less"
    repeated = space_shares(np.vstack([even, even[:1]]), ("lr", "batch_size"))
    assert repeated[0] == repeated[-1] < repeated[3], "a setting tried twice counts about once"


def test_a_sampler_crowding_one_side_of_the_band_does_not_pull_its_centre() -> None:
    """The grid of a symmetric bowl, plus 40 more trials crowded between the best lr and 1.4x above it."""
    rows = bowl_grid(0.0)
    rng = np.random.default_rng(1)
    crowd = pd.DataFrame(
        {"lr": BEST_LR * np.exp(rng.uniform(0.0, 0.35, 40)), "batch_size": BEST_BATCH, "weight_decay": 0.0}
    )
    crowd["loss"] = 2.5 * (1 + 0.01 * np.log(crowd["lr"] / BEST_LR) ** 2)
    settings = np.vstack([settings_and_losses(rows)[0], crowd[["lr", "batch_size", "weight_decay"]]])
    losses = np.concatenate([settings_and_losses(rows)[1], crowd["loss"]])
    band = near_best_band(settings, losses, ("lr", "batch_size"), tolerance=0.003, noise=0.0005)
    unweighted = np.exp(np.average(np.log(settings[:, 0]), weights=band.membership))
    assert abs(np.log(band.center[0] / BEST_LR)) < 0.5 * abs(np.log(unweighted / BEST_LR))


def test_the_band_takes_the_zero_weight_decay_branch_where_its_trials_are_better() -> None:
    """Random searches of 60 trials, half at wd = 0, which costs 0.3% less than any wd > 0 (0.1% noise):
    the trials at 0 are the better branch, though the band's weights, which its lr and batch size
    decide, could not say so."""
    rng = np.random.default_rng(0)
    for _ in range(10):
        lrs = BEST_LR * np.exp(rng.uniform(-2.3, 2.3, 60))
        batches = BEST_BATCH * 2.0 ** rng.integers(-2, 3, 60)
        positive = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), 60))
        weight_decays = np.where(np.arange(60) % 2 == 0, 0.0, positive)
        bowl = 1 + 0.05 * np.log(lrs / BEST_LR) ** 2 + 0.01 * np.log2(batches / BEST_BATCH) ** 2
        loss = 2.5 * (bowl + 0.003 * (weight_decays > 0)) * (1 + 0.001 * rng.standard_normal(60))
        rows = normalize_trials(pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs, "batch_size": batches,
                                              "weight_decay": weight_decays, "loss": loss}))
        assert find_optimum(rows, method="near_best", noise=0.001).weight_decay.value == 0.0
