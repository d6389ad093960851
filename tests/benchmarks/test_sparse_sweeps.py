"""`benchmarks/sparse_sweeps.py` thins the sizes fitted and judges on the whole held-out grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sparse_sweeps


def _grid(sizes: tuple[float, ...], runs: int) -> pd.DataFrame:
    return pd.DataFrame({"params": np.repeat(sizes, runs), "lr": np.tile(np.arange(1, runs + 1), len(sizes))})


def test_the_sizes_fitted_are_thinned_the_held_out_size_kept_whole_and_larger_sizes_dropped() -> None:
    trials = _grid((1.0, 2.0, 3.0, 4.0), 100)
    thinned = sparse_sweeps.sparse_table(trials, held_out=3.0, fraction=0.3, seed=0)

    assert sorted(thinned["params"].unique()) == [1.0, 2.0, 3.0]
    assert (thinned["params"] == 3.0).sum() == 100
    assert (thinned["params"] < 3.0).sum() == 60
    assert thinned.equals(sparse_sweeps.sparse_table(trials, held_out=3.0, fraction=0.3, seed=0))
    assert not thinned.equals(sparse_sweeps.sparse_table(trials, held_out=3.0, fraction=0.3, seed=1))
