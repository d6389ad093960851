"""Tuning compute against one target run (`hpo.study.compute`), on a small trial table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hpo.study.compute import study_compute, target_flops


def test_compute_sums_trials_per_scale_and_compares_with_one_target_run() -> None:
    trials = pd.DataFrame({
        "variant": ["a", "a", "a", "b"],
        "scale": ["s1", "s1", "s2", "s1"],
        "flops": [6e9, 3e9, 6e10, 6e9],
        "seconds": [2.0, 1.0, math.nan, 2.0],
    })
    compute = study_compute(trials, devices_per_trial=2, target=target_flops(1e6, 2e7))

    assert [(s.variant, s.scale, s.trials) for s in compute.scales] == [("a", "s1", 2), ("a", "s2", 1),
                                                                        ("b", "s1", 1)]
    assert compute.scales[0].flops == 9e9 and compute.scales[0].device_seconds == 6.0
    assert compute.flops == pytest.approx(7.5e10)
    assert compute.device_seconds == 10.0  # a trial without seconds counts 0
    assert compute.target_flops == 1.2e14
    assert compute.fraction_of_target == pytest.approx(7.5e10 / 1.2e14)
    assert "0.0625% of one target run" in compute.summary()
