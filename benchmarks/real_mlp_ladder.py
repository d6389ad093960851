"""The real `mlp` ladder as a table: a grid of learning curves at five widths, trained once and committed.

Makes ``benchmarks/data/mlp_ladder.csv.gz``, the ladder table (schema in
`tabular_ladder` and ``benchmarks/data/README.md``) that
``benchmarks/search_efficiency.py --real mlp`` replays. The runs are
``models.train`` of the ``mlp`` teacher-student family (`models.mlp`: a
student of width w regresses a fixed random teacher's outputs, eval loss the
mean squared error on a fixed validation set) with the default `TrainConfig`
(AdamW, cosine, 5% warmup, clip 1), one torch thread:

* scales `SCALES`: students w8, w16, w32, w64 (the ladder, 217 to 5,313
  parameters) and w256 (the target, 70,401); N is every parameter (the family
  has no embedding);
* D = `TOKENS` = 10,368 examples at every scale (27·384: D/27 is a whole number
  of steps of every batch size, so the rungs D/27, D/9, D/3, D are
  evaluations; a fixed tokens-per-param would make the target unaffordable);
* at every scale the grid lr 1e-3..1e-1 (9 values, ×10^¼ apart) × batch size
  8..128 × weight decay {0, 0.01, 0.1} × seeds {0, 1}, each run evaluated every
  D/27 examples. This is the grid `search_efficiency --real` measured its
  regret against at w256 since issue 5 (without the two lr points ×10^±⅛
  around the best that it added there: a table is a full product), now at
  every scale and with every evaluation.

Every run is cached as one JSON file under ``--cache`` as soon as it ends, so
a killed grid resumes where it stopped. Usage, from the repository root::

    python benchmarks/real_mlp_ladder.py [--scales w8,w16] [--cache DIR] [--table PATH]

trains what the cache lacks (one run at a time; run it with ``nice -n 19``),
then, once every scale is cached, writes the table and prints each scale's
optimum.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tabular_ladder import (
    TABLES,
    Result,
    Run,
    TabularLadder,
    cached_results,
    curve_rows,
    lattice_lr,
    optima_lines,
    train_all,
    write_table,
)

import models
from models import TrainConfig
from models.data import cache_dir

FAMILY = "mlp"
SCALES = ("w8", "w16", "w32", "w64", "w256")
"""Every scale of the table, smallest first; the last, w256, is the target."""
TOKENS = 27 * 384
"""Examples per run at every scale (10,368)."""
EVALUATIONS = 27
"""Evaluations per run, every D/27 examples: search_efficiency's smallest rung."""
LR_STEPS = (-12, -4)
"""The grid's lr: 10^(k/4) for k from -12 to -4 (1e-3 to 0.1), at every scale."""
BATCH_SIZES = (8, 16, 32, 64, 128)
"""Examples per step."""
WEIGHT_DECAYS = (0.0, 0.01, 0.1)
SEEDS = (0, 1)
CACHE_DIR = cache_dir() / "real_mlp_ladder"
CACHE_VERSION = 1
"""Part of every cache key: bump it when the training settings change."""
TABLE = TABLES["mlp"]


def run_of(scale: str, lr: float, batch_size: int, weight_decay: float, seed: int,
           tokens: int = TOKENS) -> Run:
    """One run at `scale` for `tokens` examples, evaluated every `tokens` / 27."""
    params = models.get_family(FAMILY).param_count(scale).total
    return Run(FAMILY, scale, params, tokens, tokens // EVALUATIONS, lr, batch_size, weight_decay, seed)


def grid_runs(scale: str) -> list[Run]:
    """Every run of the grid at `scale`, lr outermost."""
    low, high = LR_STEPS
    return [run_of(scale, lattice_lr(k), b, wd, seed) for k in range(low, high + 1) for b in BATCH_SIZES
            for wd in WEIGHT_DECAYS for seed in SEEDS]


def train(run: Run) -> Result:
    """Train `run` with `models.train` on one torch thread; its curve of (examples seen, eval loss, train
    loss) at every evaluation."""
    torch.set_num_threads(1)
    config = TrainConfig(lr=run.lr, batch_size=run.batch_size, tokens=run.tokens,
                         weight_decay=run.weight_decay, eval_every_tokens=run.eval_every, seed=run.seed)
    result = models.train(models.get_family(FAMILY), run.scale, config)
    if result.status not in ("complete", "diverged"):
        raise RuntimeError(f"{run} ended {result.status}")
    curve = [(p.tokens_seen, p.eval_loss, p.train_loss) for p in result.curve]
    return Result(result.status, curve, result.seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default=",".join(SCALES))
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    parser.add_argument("--table", type=Path, default=TABLE)
    args = parser.parse_args()
    started = time.perf_counter()
    for scale in args.scales.split(","):
        runs = grid_runs(scale)
        results = train_all(runs, train, args.cache, CACHE_VERSION)
        print(f"{scale}: {len(runs)} runs, {sum(r.seconds for r in results):.0f} s of training "
              f"(their loops' time; {time.perf_counter() - started:.0f} s so far)", flush=True)
    if set(args.scales.split(",")) != set(SCALES):
        return 0
    runs = [run for scale in SCALES for run in grid_runs(scale)]
    rows = [row for run, result in zip(runs, cached_results(runs, args.cache, CACHE_VERSION), strict=True)
            for row in curve_rows(run, result)]
    write_table(rows, args.table)
    print(f"wrote {args.table} ({args.table.stat().st_size:,} bytes)\n")
    print("best mean final loss over seeds at each lr (any batch size and weight decay):")
    print("\n".join(optima_lines(TabularLadder.from_csv(args.table))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
