"""Fixtures of the analysis tests: the shared real sweeps and synthetic trial tables from known laws."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from hpo.analysis import read_trials
from hpo.evaluation.synthetic import SyntheticVariant, make_synthetic_trials

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
def known_variant() -> SyntheticVariant:
    """lr* = 30·N^-0.5, batch* = 0.5·N^0.3, L* = 1.8 + 400·N^-0.34."""
    return SyntheticVariant()


@pytest.fixture(scope="session")
def synthetic_trials(known_variant: SyntheticVariant) -> pd.DataFrame:
    """One synthetic ladder of 5 sizes, 40 trials each, 0.2% loss noise, diverged and pruned trials."""
    return make_synthetic_trials([known_variant], LADDER, seed=7)
