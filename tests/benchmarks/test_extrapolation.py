"""`benchmarks/extrapolation.py` reads how far the local-surface and nearest-run regrets can agree."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import extrapolation


def _bowl(lucky: float = 0.0) -> pd.DataFrame:
    """A 7 × 5 grid on a quadratic bowl in octaves, minimum at lr 8, batch 4; the run at lr 16 `lucky`
    lower."""
    lr, batch = (a.ravel() for a in np.meshgrid(2.0 ** np.arange(7), 2.0 ** np.arange(5)))
    loss = 1.0 + 0.01 * ((np.log2(lr) - 3) ** 2 + (np.log2(batch) - 2) ** 2)
    loss[(lr == 16) & (batch == 4)] -= lucky
    return pd.DataFrame({"lr": lr, "batch_size": batch, "loss": loss, "status": "complete"})


def test_on_a_smooth_cell_every_setting_right_on_the_local_surface_is_right_on_the_nearest_run() -> None:
    share, median = extrapolation.readings_agreement(_bowl())

    assert share == 1.0
    assert median < 0.01


def test_a_lucky_best_run_leaves_the_local_optimum_far_above_it_on_the_nearest_reading() -> None:
    share, median = extrapolation.readings_agreement(_bowl(lucky=0.013))

    assert share < 0.5
    assert median > extrapolation.NEAREST_TARGET_PCT



@pytest.mark.filterwarnings("error")
def test_a_cell_whose_grid_of_settings_holds_none_that_close_reads_nan_without_a_warning() -> None:
    steep = _bowl()
    steep["loss"] = 1.0 + 100.0 * (steep["loss"] - 1.0)

    share, median = extrapolation.readings_agreement(steep)

    assert np.isnan(share) and np.isnan(median)


def test_re_reading_a_cell_without_noise_reads_the_same_regret_every_time() -> None:
    settings = {"optimum": (8.0, 4.0), "one octave of lr off": (16.0, 4.0)}

    spread = extrapolation.reading_spread(_bowl(), settings, noise=0.0, rereadings=5)

    for name, (lr, batch_size) in settings.items():
        assert np.allclose(spread[name], extrapolation.regret_pct(_bowl(), lr, batch_size))


def test_re_reading_with_loss_noise_moves_the_reading_but_keeps_a_clear_margin_in_order() -> None:
    settings = {"half an octave of lr off": (8.0 * 2**0.5, 4.0), "one octave off": (16.0, 4.0)}

    spread = extrapolation.reading_spread(_bowl(), settings, noise=0.001, rereadings=30)

    assert spread["half an octave of lr off"].std() > 0.001
    assert np.all(spread["half an octave of lr off"] < spread["one octave off"])
