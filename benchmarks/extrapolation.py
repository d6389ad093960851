"""How well `hpo.analysis` extrapolates: real sweeps measured by others, and synthetic ground truth.

1. Step Law grids, leave-largest-out: fit on the smaller model sizes, predict
   lr and batch size at the largest, report the loss regret (%) of the
   prediction against the best measured there, next to reusing the largest
   fitted size's best setting and the authors' published law.
2. Chinchilla and Porian et al. points: loss laws fitted below the largest
   compute budgets, error on the held-out largest budgets.
3. Synthetic ladders from known laws: how often the 90% intervals at a 10x
   target cover the truth, and how often crossovers get the right verdict.

Usage: ``python benchmarks/extrapolation.py [--quick]`` from the repository
root; the real sweeps are read from ../shared/data (or $HPO_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.analysis import Estimate, extrapolate, fit_compute_loss_law, fit_loss_law, read_trials
from hpo.evaluation.backtest import PREDICTED, REUSE_BEST, HeldOutCell, leave_largest_out
from hpo.evaluation.synthetic import SyntheticVariant, crossing_variants, make_synthetic_trials

STEPLAW_COLUMNS = {"N": "params", "D": "tokens", "bs": "batch_size", "smooth loss": "loss"}
PUBLISHED_LAW = "published_law"
SEQUENCE_LENGTH = 2048
LADDER = (1e7, 3e7, 1e8, 3e8, 1e9)
TARGET = 1e10
CHINCHILLA_HELD_OUT_FLOP = 1e21
PORIAN_HELD_OUT_BUDGETS = 2
PORIAN_NEAR_OPTIMUM = 1.1
"""Porian points are kept when within 10% of their budget's lowest loss: the far tails of an isoFLOP
curve (e.g. a 900M model on 2e7 tokens) are outside what L(N, D) describes."""


def published_steplaw(params: float, tokens: float) -> tuple[float, float]:
    """Li et al. (2025): lr* = 1.79·N^-0.713·D^0.307; batch* = 0.58·D^0.571 tokens (2048 per sequence)."""
    return 1.79 * params**-0.713 * tokens**0.307, 0.58 * tokens**0.571 / SEQUENCE_LENGTH


def shared_data_folder() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("HPO_SHARED_DATA", default))


def steplaw_backtest(trials: pd.DataFrame, n_bootstrap: int) -> list[HeldOutCell]:
    cells = leave_largest_out(trials, baselines={PUBLISHED_LAW: published_steplaw}, n_bootstrap=n_bootstrap)
    print_table(
        f"Step Law, fit on N < {cells[0].params:.3g}, held out N = {cells[0].params:.3g} "
        "(regret % vs best measured; local surface | nearest run)",
        [
            "D",
            "predicted lr [90%]",
            "predicted batch [90%]",
            "predicted",
            "reuse best",
            "published law",
            "pred. loss / best",
        ],
        [
            [
                f"{cell.tokens:.3g}",
                with_interval(cell.predicted_lr, ".3g"),
                with_interval(cell.predicted_batch_size, ".0f"),
                *(
                    f"{cell.regret_local_pct[m]:+.3f} | {cell.regret_nearest_pct[m]:+.3f}"
                    for m in (PREDICTED, REUSE_BEST, PUBLISHED_LAW)
                ),
                f"{cell.predicted_loss.value:.4f} / {cell.best_loss:.4f}",
            ]
            for cell in cells
        ]
        + [
            [
                "mean",
                "",
                "",
                *(
                    f"{mean_regret(cells, m, 'local'):+.3f} | {mean_regret(cells, m, 'nearest'):+.3f}"
                    for m in (PREDICTED, REUSE_BEST, PUBLISHED_LAW)
                ),
                "",
            ]
        ],
    )
    return cells


def with_interval(estimate: Estimate, spec: str) -> str:
    return f"{estimate.value:{spec}} [{estimate.low:{spec}}, {estimate.high:{spec}}]"


def mean_regret(cells: list[HeldOutCell], method: str, reading: str) -> float:
    regrets = [
        cell.regret_local_pct[method] if reading == "local" else cell.regret_nearest_pct[method]
        for cell in cells
    ]
    return float(np.mean(regrets))


def chinchilla_heldout(folder: Path, n_bootstrap: int) -> None:
    points = pd.read_csv(folder / "chinchilla_fig4_points.csv")
    params = points["Model Size"].to_numpy()
    compute = points["Training FLOP"].to_numpy()
    tokens, loss = compute / (6 * params), points["loss"].to_numpy()
    fitted = compute < CHINCHILLA_HELD_OUT_FLOP
    law = fit_loss_law(params[fitted], loss[fitted], tokens=tokens[fitted], n_bootstrap=n_bootstrap)
    error = 100 * np.abs(law.predict(params[~fitted], tokens[~fitted]) / loss[~fitted] - 1)
    quantiles = np.percentile(law.replicates, [5, 95], axis=0)
    names = ["E", "A", "alpha", "B", "beta"]
    values = [law.E, law.A, law.alpha, law.B, law.beta]
    print_table(
        f"Chinchilla (Besiroglu et al. points): L(N, D) fitted on C < {CHINCHILLA_HELD_OUT_FLOP:.0e} "
        f"({fitted.sum()} points), held out C >= {CHINCHILLA_HELD_OUT_FLOP:.0e} ({(~fitted).sum()} points)",
        ["parameter", "fit", "90% bootstrap", "Besiroglu et al."],
        [
            [name, f"{value:.4g}", f"[{low:.4g}, {high:.4g}]", reference]
            for name, value, low, high, reference in zip(
                names,
                values,
                quantiles[0],
                quantiles[1],
                ["1.82", "482", "0.348", "2085", "0.366"],
                strict=True,
            )
        ]
        + [["held-out |error| %", f"median {np.median(error):.2f}", f"mean {np.mean(error):.2f}", ""]],
    )


def porian_heldout(folder: Path) -> None:
    points = pd.read_csv(folder / "porian_isoflop_points.csv")
    setup = ["dataset", "hparams", "warmup", "decay", "param_count", "val"]
    rows = []
    for key, group in points.groupby(setup):
        near = group[group["loss"] <= PORIAN_NEAR_OPTIMUM * group.groupby("flops")["loss"].transform("min")]
        budgets = np.sort(group["flops"].unique())
        held_out = near["flops"] >= budgets[-PORIAN_HELD_OUT_BUDGETS]
        fitted, test = near[~held_out], near[held_out]
        law = fit_loss_law(
            fitted["params"].to_numpy(),
            fitted["loss"].to_numpy(),
            tokens=fitted["tokens"].to_numpy(),
            n_bootstrap=2,
        )
        predicted = law.predict(test["params"].to_numpy(), test["tokens"].to_numpy())
        pointwise = 100 * np.abs(predicted / test["loss"].to_numpy() - 1)
        minima = group.groupby("flops")["loss"].min()
        fitted_minima, held_minima = (
            minima.iloc[:-PORIAN_HELD_OUT_BUDGETS],
            minima.iloc[-PORIAN_HELD_OUT_BUDGETS:],
        )
        frontier = fit_compute_loss_law(
            fitted_minima.index.to_numpy(), fitted_minima.to_numpy(), n_bootstrap=2
        )
        frontier_error = 100 * np.abs(
            frontier.predict(held_minima.index.to_numpy()) / held_minima.to_numpy() - 1
        )
        rows.append(
            [
                "/".join(key),
                f"{len(fitted)}/{len(test)}",
                f"{law.alpha:.3f}",
                f"{law.beta:.3f}",
                f"{np.mean(pointwise):.2f}",
                f"{frontier.alpha:.3f}",
                f"{np.mean(frontier_error):.2f}",
            ]
        )
    means = [f"{np.mean([float(row[i]) for row in rows]):.2f}" for i in (4, 6)]
    rows.append(["mean", "", "", "", means[0], "", means[1]])
    print_table(
        f"Porian et al. isoFLOP points within {100 * (PORIAN_NEAR_OPTIMUM - 1):.0f}% of their budget's best: "
        f"laws fitted below the {PORIAN_HELD_OUT_BUDGETS} largest budgets (1.28e19, 2.56e19 FLOPs), "
        "error on them",
        [
            "setup",
            "points fit/held",
            "alpha",
            "beta",
            "L(N,D) |err| %",
            "L(C) exponent",
            "L(C) minima |err| %",
        ],
        rows,
    )


def synthetic_coverage(draws: int, n_bootstrap: int) -> float:
    truth = SyntheticVariant()
    tokens = 20 * TARGET
    covered = {"lr": [], "batch_size": [], "loss": []}
    for seed in range(draws):
        trials = make_synthetic_trials([truth], LADDER, seed=10_000 + seed)
        rec = extrapolate(trials, target_params=TARGET, n_bootstrap=n_bootstrap, seed=seed)
        covered["lr"].append(rec.lr.covers(truth.optimal_lr(TARGET, tokens)))
        covered["batch_size"].append(rec.batch_size.covers(truth.optimal_batch_size(TARGET, tokens)))
        covered["loss"].append(rec.loss.covers(truth.optimal_loss(TARGET, tokens)))
    overall = float(np.mean([v for values in covered.values() for v in values]))
    print_table(
        f"Synthetic ladders (N = 1e7..1e9, 40 trials per size, 0.2% noise), target N = {TARGET:.0e}: "
        f"coverage of 90% intervals over {draws} draws",
        ["quantity", "coverage"],
        [[name, f"{np.mean(values):.3f}"] for name, values in covered.items()] + [["all", f"{overall:.3f}"]],
    )
    return overall


def synthetic_crossovers(draws: int, n_bootstrap: int) -> None:
    rows = []
    for crossing, expected in ((1e8, "crossed"), (3e9, "ahead"), (1e12, "none")):
        verdicts = []
        for seed in range(draws):
            trials = make_synthetic_trials(
                crossing_variants(crossing), LADDER, trials_per_cell=30, seed=20_000 + seed
            )
            (crossover,) = extrapolate(
                trials, target_params=TARGET, n_bootstrap=n_bootstrap, seed=seed
            ).crossovers
            verdicts.append(crossover.verdict)
        rows.append([f"{crossing:.0e}", expected, f"{np.mean([v == expected for v in verdicts]):.2f}"])
    print_table(
        f"Synthetic crossovers (measured to 1e9, target {TARGET:.0e}), {draws} draws each",
        ["true crossing N", "expected verdict", "share correct"],
        rows,
    )


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bootstrap replicates and synthetic draws")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    folder = shared_data_folder()
    if not (folder / "steplaw_dense_lr_bs_loss_dev.csv").is_file():
        print(f"real sweeps not found in {folder}; set HPO_SHARED_DATA", file=sys.stderr)
        return 2
    n_bootstrap, draws, crossover_draws = (30, 15, 3) if args.quick else (100, 60, 10)
    started = time.perf_counter()
    trials = read_trials(folder / "steplaw_dense_lr_bs_loss_dev.csv", rename=STEPLAW_COLUMNS)
    cells = steplaw_backtest(trials, n_bootstrap)
    steplaw_backtest(trials[trials["params"] < trials["params"].max()], n_bootstrap)
    chinchilla_heldout(folder, n_bootstrap)
    porian_heldout(folder)
    coverage = synthetic_coverage(draws, n_bootstrap)
    synthetic_crossovers(crossover_draws, n_bootstrap)
    print(f"\nran in {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'})\n")
    print(f"RESULT heldout_regret_pct={mean_regret(cells, PREDICTED, 'local'):.4f}")
    print(f"RESULT reuse_best_regret_pct={mean_regret(cells, REUSE_BEST, 'local'):.4f}")
    print(f"RESULT published_law_regret_pct={mean_regret(cells, PUBLISHED_LAW, 'local'):.4f}")
    print(f"RESULT interval_coverage={coverage:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
