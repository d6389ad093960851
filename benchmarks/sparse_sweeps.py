"""How the analysis holds up on sweeps sparser than the shared Step Law grids.

The shared grids hold about 120 runs per cell (N, D); a public grid the
project does not hold, or a user's random search, may hold a few dozen. Each
draw keeps a random `--fraction` of the runs of the sizes fitted (0.3 by
default: about 35 a cell, scattered over the grid, so no cell is a grid any
more and ``auto`` takes ``surface`` or ``near_best``) and every run of the
size held out, so that the held-out cells are judged on the whole grid, as
`hpo.evaluation.backtest` judges them: the two leave-largest-out folds (fit
215M-429M, predict 537M; fit 215M-268M, predict 429M), every method of
`fit_scaling`, against reusing the largest fitted size's best run.

Usage: ``python benchmarks/sparse_sweeps.py [--quick] [--fraction F]`` from
the repository root; the Step Law table is read from ../shared/data (or
$HPO_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from extrapolation import STEPLAW_COLUMNS, print_table, shared_data_folder

from hpo.analysis import read_trials
from hpo.analysis.near_best import DEFAULT_TOLERANCE
from hpo.analysis.scaling_fit import METHODS
from hpo.evaluation.backtest import PREDICTED, REUSE_BEST, BacktestReport, run_backtest


def sparse_table(trials: pd.DataFrame, held_out: float, fraction: float, seed: int) -> pd.DataFrame:
    """The sizes below `held_out` thinned to a random `fraction` of their runs (each size's, each cell's
    share drawn at random), `held_out` whole, the sizes above it dropped."""
    fitted = trials[trials["params"] < held_out].sample(frac=fraction, random_state=seed)
    return pd.concat([fitted, trials[trials["params"] == held_out]])


def held_out_folds(trials: pd.DataFrame, method: str, fraction: float, draws: int, n_bootstrap: int
                   ) -> BacktestReport:
    """Both leave-largest-out folds (the two largest sizes held out in turn), over `draws` thinned tables
    each, judged on the whole held-out grid: one report of all their folds."""
    sizes = sorted(trials["params"].unique())
    folds = [fold
             for held_out in sizes[-2:]
             for seed in range(draws)
             for fold in run_backtest(sparse_table(trials, held_out, fraction, seed), method=method,
                                      n_bootstrap=n_bootstrap, seed=seed, largest_only=True).folds]
    return BacktestReport(method=method, tolerance=DEFAULT_TOLERANCE, folds=tuple(folds))


SUMMARY_COLUMNS = {
    "mean": "mean",
    "worst": "worst",
    "reuse_mean": "reuse-best mean",
    "beats_reuse": "beats reuse",
    "lr_coverage": "lr coverage",
    "coverage": "coverage",
    "lr_ratio": "median lr high/low",
}
"""`summary`'s figures and their column headings."""


def summary(report: BacktestReport) -> dict[str, float]:
    """Mean and worst local regret of the recommendation and mean of reuse-best's (% of the cell's best
    loss), the share of cells where the recommendation is no worse than reuse-best, interval coverage (lr
    alone, and lr and batch size together) and the median lr interval's high/low (`SUMMARY_COLUMNS`)."""
    cells = report.cells()
    predicted = np.array([cell.regret_local_pct[PREDICTED] for cell in cells])
    reuse = np.array([cell.regret_local_pct[REUSE_BEST] for cell in cells])
    return {
        "mean": report.mean_regret_pct(PREDICTED, "local"),
        "worst": report.worst_regret_pct("local", kind=None),
        "reuse_mean": report.mean_regret_pct(REUSE_BEST, "local"),
        "beats_reuse": float(np.mean(predicted <= reuse)),
        "lr_coverage": float(np.mean([cell.lr_covered for cell in cells])),
        "coverage": report.coverage(),
        "lr_ratio": report.median_lr_interval_ratio(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 draws per fold instead of 5")
    parser.add_argument("--fraction", type=float, default=0.3, help="share of the fitted sizes' runs kept")
    args = parser.parse_args()
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    path = shared_data_folder() / "steplaw_dense_lr_bs_loss_dev.csv"
    if not path.is_file():
        print(f"real sweeps not found in {path.parent}; set HPO_SHARED_DATA", file=sys.stderr)
        return 2
    draws, n_bootstrap = (2, 30) if args.quick else (5, 100)
    started = time.perf_counter()
    trials = read_trials(path, rename=STEPLAW_COLUMNS)
    results = {method: summary(held_out_folds(trials, method, args.fraction, draws, n_bootstrap))
               for method in METHODS}
    print_table(
        f"Step Law, the fitted sizes thinned to {args.fraction:.0%} of their runs, {draws} draws per "
        "leave-largest-out fold: local regret % of the held-out cells (judged on their whole grid)",
        ["method", *SUMMARY_COLUMNS.values()],
        [[method, *(f"{r[key]:.3f}" for key in SUMMARY_COLUMNS)] for method, r in results.items()],
    )
    print(f"\nran in {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'})\n")
    default = results["auto"]
    print(f"RESULT sparse_heldout_mean_regret_pct={default['mean']:.4f}")
    print(f"RESULT sparse_heldout_worst_regret_pct={default['worst']:.4f}")
    print(f"RESULT sparse_reuse_best_mean_regret_pct={default['reuse_mean']:.4f}")
    print(f"RESULT sparse_interval_coverage={default['coverage']:.4f}")
    print(f"RESULT sparse_lr_interval_ratio={default['lr_ratio']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
