"""The verdict of `hpo verify` on small trial tables: the noise between seeds, settings that diverged."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpo.search.verification import seed_noise, verdict
from hpo.vocab import COMPLETE, DIVERGED

RECOMMENDED = {"lr": 1e-2, "batch_size": 32.0, "weight_decay": 0.0}
LR_TWICE = {**RECOMMENDED, "lr": 2e-2}


def table(rows: list[tuple[dict[str, float], float, str]]) -> pd.DataFrame:
    return pd.DataFrame([{**setting, "loss": loss, "status": status} for setting, loss, status in rows])


def test_the_recommendation_within_the_seed_noise_of_the_best() -> None:
    report = verdict(table([(RECOMMENDED, 1.00, COMPLETE), (RECOMMENDED, 1.02, COMPLETE),
                            (LR_TWICE, 0.99, COMPLETE), (LR_TWICE, 1.01, COMPLETE)]),
                     [RECOMMENDED, LR_TWICE])
    assert report.trained and math.isfinite(report.noise)
    assert report.best.setting == LR_TWICE and report.within_noise
    assert report.to_run is report.recommended


def test_a_diverged_recommendation_is_not_within_noise_of_a_neighbour_that_trained() -> None:
    report = verdict(table([(RECOMMENDED, math.inf, DIVERGED), (RECOMMENDED, 1.0, COMPLETE),
                            (LR_TWICE, 0.99, COMPLETE), (LR_TWICE, 1.01, COMPLETE)]),
                     [RECOMMENDED, LR_TWICE])
    assert report.trained and report.recommended.mean == math.inf and not report.within_noise
    assert report.to_run is not None and report.to_run.setting == LR_TWICE


def test_nothing_trained_when_every_setting_diverged() -> None:
    report = verdict(table([(RECOMMENDED, math.inf, DIVERGED), (RECOMMENDED, math.inf, DIVERGED),
                            (LR_TWICE, math.inf, DIVERGED), (LR_TWICE, math.inf, DIVERGED)]),
                     [RECOMMENDED, LR_TWICE])
    assert not report.trained and not report.within_noise and math.isnan(report.noise)
    assert report.to_run is None


def test_one_setting_with_an_unstable_seed_does_not_make_every_gap_noise() -> None:
    steady = [[2.4585, 2.4568], [2.4900, 2.4854], [2.5401, 2.5252], [2.4382, 2.4417]]
    with_unstable = [*steady, [2.4806, 2.6300]]
    assert seed_noise(with_unstable) < 2 * seed_noise(steady)
    assert seed_noise(with_unstable) < 0.02


def test_seed_noise_of_normal_losses_is_unbiased_on_average() -> None:
    rng = np.random.default_rng(0)
    estimates = [seed_noise(rng.normal(2.0, 0.01, size=(5, 2)).tolist()) for _ in range(2000)]
    assert np.median(estimates) == pytest.approx(0.01, rel=0.1)


def test_a_neighbour_that_beats_the_recommendation_beyond_the_noise_is_the_setting_to_run() -> None:
    report = verdict(table([(RECOMMENDED, 1.10, COMPLETE), (RECOMMENDED, 1.11, COMPLETE),
                            (LR_TWICE, 1.00, COMPLETE), (LR_TWICE, 1.01, COMPLETE)]),
                     [RECOMMENDED, LR_TWICE])
    assert not report.within_noise
    assert report.to_run is not None and report.to_run.setting == LR_TWICE and report.to_run.label == "lr ×2"
