"""Which locator, at which noise σ: the same scale-aware searches, re-analysed every way.

Each repetition runs ``scale_aware`` once on a ladder (`search_efficiency.search_ladder`: the surrogate,
or a committed real table replayed, ``--real mlp|gpt``, ``--target SCALE`` as there), then recommends
the target's setting from that one history with each locator of `hpo.analysis.fit_scaling`:
``auto`` (the default), ``surface``, and ``near_best`` at the σ the trials give (`pooled_noise`) and at
fixed σ of 0.1%, 0.3%, 1% and 3% of the loss. The searches are the same for every row, so the rows
differ only by the analysis (the search itself reads the ``auto`` laws while it plans, as it does in
`search_efficiency.py`). Regret as there: the recommended setting's loss at the target over the best.

Beside it, the σ the trials give, against the σ of the loss itself: the surrogate's noise, or on a table
the spread of its two seeds' final losses (1.4826·MAD of their ratio / √2) over the grid points within
3% of their scale's best mean.

Usage: ``python benchmarks/locators.py [--quick] [--real mlp|gpt [--target SCALE]] [--trials T]
[--seeds S] [--jobs 2]`` from the repository root. Ends with ``RESULT`` lines: the ``auto`` median
regret, the best fixed-σ row's σ and median regret, and the σ read against the loss's own.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_efficiency as se
from tabular_ladder import TABLES, TabularLadder

from hpo.analysis import fit_scaling, normalize_trials
from hpo.analysis.optimum import pooled_noise
from hpo.analysis.recommendation import recommend
from hpo.analysis.trials import iter_cells
from hpo.vocab import COMPLETE

FIXED_SIGMAS = (0.001, 0.003, 0.01, 0.03)
"""The fixed σ (a fraction of the loss) the ``near_best`` rows are re-analysed with."""
LOCATORS: tuple[tuple[str, float | None], ...] = (
    ("auto", None), ("surface", None), ("near_best", None), *(("near_best", s) for s in FIXED_SIGMAS)
)
"""Each row's `fit_scaling` method and σ (None: as the trials give it)."""
ROWS = tuple(f"{method}, σ {'read' if noise is None else f'{100 * noise:g}%'}" if method == "near_best"
             else method for method, noise in LOCATORS)

_TRUTH: se.Truth | None = None
_LADDER: se.Ladder | None = None


def read_sigma(history: pd.DataFrame) -> float | None:
    """The σ the analysis reads from one search's trials (`pooled_noise` over its cells)."""
    trials = normalize_trials(history)
    cells = [rows for _, _, _, rows in iter_cells(trials) if (rows["status"] == COMPLETE).any()]
    return pooled_noise(cells)


def table_sigma(final: pd.DataFrame) -> float:
    """The loss's own σ on a table, from its final losses (`TabularLadder.final_losses`: one row per scale,
    setting and seed): the two seeds' losses near each scale's best (module docstring)."""
    setting = ["scale", *se.SETTING]
    by_seed = final.pivot_table(index=setting, columns="seed", values="loss").dropna()
    mean = by_seed.mean(axis=1)
    near = mean / mean.groupby(level="scale").transform("min") - 1.0 <= 0.03
    ratio = np.log(by_seed[near].iloc[:, 0] / by_seed[near].iloc[:, 1])
    return float(1.4826 * np.median(np.abs(ratio - np.median(ratio))) / math.sqrt(2.0))


def repetition(job: tuple[int, int]) -> tuple[list[float], float]:
    """One search (`trials` per scale, `seed`), its regret under every one of `LOCATORS`, and σ read."""
    trials, seed = job
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("hpo").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    assert _TRUTH is not None and _LADDER is not None
    truth, ladder = _TRUTH, _LADDER
    history, _ = se.search_ladder(truth, se.OURS, trials, seed, ladder)
    history = history.drop(columns="flops")
    read = read_sigma(history)
    regrets = [se.target_regret(truth, lambda m=method, s=noise: recommended(history, m, s, seed, ladder),
                                ladder) for method, noise in LOCATORS]
    return regrets, math.nan if read is None else read


def recommended(history: pd.DataFrame, method: str, noise: float | None, seed: int,
                ladder: se.Ladder) -> dict[str, float]:
    """The target's setting from `history`'s laws fitted by `method` at `noise` (None: as the trials
    give it), clipped into the space as `search_efficiency.recommend` does."""
    ranges = ladder.space.ranges()
    fit = fit_scaling(history, method=method, noise=noise, n_bootstrap=se.EXTRAPOLATE_BOOTSTRAP, seed=seed)
    rec = recommend(fit, target_params=ladder.target_params, target_tokens=ladder.target_tokens,
                    searched=ranges, clip_to=ranges)
    return {"lr": rec.lr.value, "batch_size": rec.batch_size_power_of_two,
            "weight_decay": rec.weight_decay.value}


def main() -> int:
    global _TRUTH, _LADDER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 seeds instead of 40")
    parser.add_argument("--real", choices=sorted(TABLES), default=None, help="replay that table's ladder")
    parser.add_argument("--target", default=None, metavar="SCALE", help="with --real: the target scale")
    parser.add_argument("--trials", type=int, default=16, help="trials per scale T")
    parser.add_argument("--seeds", type=int, default=None, help="repetitions")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    seeds = args.seeds or (10 if args.quick else 40)
    if args.real:
        table = TabularLadder.from_csv(TABLES[args.real])
        _TRUTH = table.up_to(args.target) if args.target else table
        _LADDER = se.table_ladder(_TRUTH)
        own_sigma = table_sigma(_TRUTH.final_losses())
        name = f"{args.real}{'_' + args.target if args.target else ''}_T{args.trials}"
    else:
        surrogate = se.Surrogate()
        _TRUTH, _LADDER = surrogate, se.SURROGATE_LADDER
        own_sigma = surrogate.noise
        name = f"surrogate_T{args.trials}"
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        outcomes = pool.map(repetition, [(args.trials, seed) for seed in range(seeds)])
    regrets = np.array([o[0] for o in outcomes])
    read = np.array([o[1] for o in outcomes])
    elapsed = time.perf_counter() - started
    print(f"{name}: {seeds} searches, each re-analysed {len(ROWS)} ways, in {elapsed:.0f} s")
    print("\n| locator | median | mean | worst | share ≤ 1% | share > 5% |\n|---|---|---|---|---|---|")
    for row, column in zip(ROWS, regrets.T, strict=True):
        print(f"| {row} | {np.median(column):.2f} | {column.mean():.2f} | {column.max():.2f} | "
              f"{np.mean(column <= 1):.2f} | {np.mean(column > 5):.2f} |")
    readable = read[np.isfinite(read)]
    percentiles = np.percentile(readable, [10, 50, 90]) * 100 if readable.size else [math.nan] * 3
    print(f"\nσ read from the trials: none in {np.mean(~np.isfinite(read)):.2f} of the searches; where read, "
          f"10/50/90% {percentiles[0]:.2f} / {percentiles[1]:.2f} / {percentiles[2]:.2f}% of the loss; "
          f"the loss's own σ {100 * own_sigma:.2f}%")
    fixed = regrets[:, len(ROWS) - len(FIXED_SIGMAS):]
    best = min(range(len(FIXED_SIGMAS)), key=lambda k: (np.median(fixed[:, k]), fixed[:, k].mean()))
    print(f"\nRESULT {name}_auto_regret_pct={np.median(regrets[:, 0]):.4f}")
    print(f"RESULT {name}_best_fixed_sigma_pct={100 * FIXED_SIGMAS[best]:g}")
    print(f"RESULT {name}_best_fixed_sigma_regret_pct={np.median(fixed[:, best]):.4f}")
    print(f"RESULT {name}_sigma_read_none_share={np.mean(~np.isfinite(read)):.2f}")
    print(f"RESULT {name}_sigma_read_median_pct={percentiles[1]:.3f}")
    print(f"RESULT {name}_sigma_own_pct={100 * own_sigma:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
