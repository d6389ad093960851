"""Fixtures of the analysis tests: the shared real sweeps and synthetic trial tables from known laws."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from hpo.analysis import read_trials
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_grid_sweep, make_synthetic_trials

STEPLAW_COLUMNS = {"N": "params", "D": "tokens", "bs": "batch_size", "smooth loss": "loss"}
"""Step Law columns onto the trial contract; the smoothed final loss is the loss compared."""

LADDER = (1e7, 3e7, 1e8, 3e8, 1e9)
"""Model sizes N of the synthetic ladders: two decades, as a cheap tuning ladder would span."""


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real sweeps measured by others (../shared/data, or $HPO_SHARED_DATA)."""
    folder = Path(
        os.environ.get("HPO_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")
    )
    if not (folder / "steplaw_dense_lr_bs_loss_dev.csv").is_file():
        pytest.skip(f"shared data not found at {folder}; set HPO_SHARED_DATA to the folder of real sweeps")
    return folder


@pytest.fixture(scope="session")
def steplaw_trials(shared_data: Path) -> pd.DataFrame:
    """The Step Law lr × batch-size grids as a normalised trial table."""
    return read_trials(shared_data / "steplaw_dense_lr_bs_loss_dev.csv", rename=STEPLAW_COLUMNS)


@pytest.fixture(scope="session")
def known_variant() -> Landscape:
    """lr* = 30·N^-0.5, batch* = 0.5·N^0.3, L* = 1.8 + 400·N^-0.34."""
    return Landscape()


@pytest.fixture(scope="session")
def synthetic_trials(known_variant: Landscape) -> pd.DataFrame:
    """One synthetic ladder of 5 sizes, 40 trials each, 0.2% loss noise, diverged and pruned trials."""
    return make_synthetic_trials([known_variant], LADDER, seed=7)


@pytest.fixture(scope="session")
def noisy_synthetic_trials(known_variant: Landscape) -> pd.DataFrame:
    """The ladder of `synthetic_trials` with 1% loss noise: ten times the tolerance."""
    return make_synthetic_trials([replace(known_variant, noise=0.01)], LADDER, seed=7)


GRID_VARIANT = Landscape(
    lr_a=2.0, lr_b=-0.7, lr_c=0.3, batch_a=0.002, batch_b=0.0, batch_c=0.5, high_lr_steepness=3.0, noise=0.001
)
"""lr* = 2·N^-0.7·D^0.3 (4e-3 at N = 1e8, D = 5e9), batch* = 0.002·D^0.5 sequences (141 at 5e9); the loss
3x steeper above lr* than below, 0.1% noise."""
GRID_CELLS = tuple((n, d) for n in (1e8, 2e8, 4e8) for d in (n * 20, n * 60, n * 180))
"""Three sizes, each at 20, 60 and 180 tokens per parameter."""
GRID_LRS = tuple(2.44e-4 * 2 ** (k / 2) for k in range(13))
GRID_BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048)


@pytest.fixture(scope="session")
def grid_variant() -> Landscape:
    return GRID_VARIANT


@pytest.fixture(scope="session")
def grid_sweep() -> pd.DataFrame:
    """A Step-Law-like sweep: 3 sizes x 3 budgets, each a 13 lr x 8 batch grid, 0.1% noise."""
    return make_grid_sweep(GRID_VARIANT, GRID_CELLS, lrs=GRID_LRS, batch_sizes=GRID_BATCHES, seed=3)


@pytest.fixture(scope="session")
def grid_sweep_steeper_below() -> pd.DataFrame:
    """The sweep of `grid_sweep` with the loss 3x steeper below lr* than above."""
    variant = replace(GRID_VARIANT, high_lr_steepness=1 / 3)
    return make_grid_sweep(variant, GRID_CELLS, lrs=GRID_LRS, batch_sizes=GRID_BATCHES, seed=3)
