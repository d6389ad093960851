"""The real `gpt` ladder as a table: a grid of learning curves at four scales, trained once and committed.

Makes ``benchmarks/data/gpt_ladder.csv.gz``, the ladder table (schema in
`tabular_ladder` and ``benchmarks/data/README.md``) that
``benchmarks/search_efficiency.py --real gpt`` replays. The runs are
``models.train`` of the ``gpt`` family (`models.gpt_family`: byte-level GPT on
the Python standard library's sources, ``seq_len`` 128) with the default
`TrainConfig` (AdamW with weight decay on matrices only, cosine schedule to
10% with 5% warmup, gradient clipping at 1), one torch thread:

* scales `SCALES` (13k, 100k, 336k, 793k non-embedding parameters; the last
  is the target, the others the ladder), each with its own budget `TOKENS`
  (D, tokens): it grows with N, but far more slowly than 20·N, so that the
  793k grid is affordable on 2 CPU cores; every D is a multiple of
  27 · 32 · 128 tokens, so that D/27 is a whole number of steps of every batch
  size and the rungs D/27, D/9, D/3, D of search_efficiency are evaluations;
* at every scale the grid `LR_STEPS` (lr = 10^(k/4), at least 7 values a
  factor 10^¼ ≈ 1.78 apart, around that scale's optimum) × `BATCH_SIZES`
  (sequences of 128 tokens) × `WEIGHT_DECAYS` × `SEEDS` (initialisation and
  data order), each run evaluated every D/27 tokens on the family's fixed
  validation set (32 windows: 4,096 tokens).

Every run is cached as one JSON file under ``--cache`` as soon as it ends
(`tabular_ladder.cached_result`), so a killed grid resumes where it stopped;
the table is written from the cache. Usage, from the repository root::

    python benchmarks/real_gpt_ladder.py throughput      # tokens/s of each scale, 1 thread
    python benchmarks/real_gpt_ladder.py coarse          # lr every ×10^½ at batch 16, wd 0, seed 0
    python benchmarks/real_gpt_ladder.py grid            # the grid, then the table and its optima

``grid --scales 13k,100k`` trains only those scales (the table is written
when every scale's runs are in the cache). Run it with ``nice -n 19``; it
trains one run at a time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
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

FAMILY = "gpt"
SEQ_LEN = 128
SCALES = ("13k", "100k", "336k", "793k")
"""Every scale of the table, smallest first; the last, 793k, is the target."""
TOKENS = {"13k": 221_184, "100k": 331_776, "336k": 442_368, "793k": 552_960}
"""D of every run at each scale, tokens: 2, 3, 4 and 5 × 27·32·128 (110,592)."""
EVALUATIONS = 27
"""Evaluations per run, every D/27 tokens: search_efficiency's smallest rung."""
BATCH_SIZES = (4, 8, 16)
"""Sequences of `SEQ_LEN` tokens per step. At these budgets training is limited by its number of steps:
the smallest batch is best at every scale (a side check at 13k: batch 1 and 2 better still, 32 and 64
worse), so the grid stops at 16."""
WEIGHT_DECAYS = (0.0, 0.1)
SEEDS = (0, 1)
LR_STEPS = {"13k": (-13, -5), "100k": (-13, -5), "336k": (-13, -7), "793k": (-13, -7)}
"""The grid's lr at each scale: 10^(k/4) for k from the first to the second number, inclusive: 5.6e-4 to
5.6e-2 at the two cheap scales, 5.6e-4 to 1.8e-2 at the two dear ones (their coarse optima lie near 2e-3
at batch 16, and a smaller batch's higher, about 5e-3 at batch 4)."""
COARSE_STEPS = (-14, -12, -10, -8, -6, -4)
"""lr = 10^(k/4) of the coarse pass (×10^½ apart, 3.2e-4 to 0.1), every one a point of the fine lattice."""
CACHE_DIR = cache_dir() / "real_gpt_ladder"
CACHE_VERSION = 1
"""Part of every cache key: bump it when the training settings change."""
TABLE = TABLES["gpt"]


def run_of(scale: str, lr: float, batch_size: int, weight_decay: float, seed: int) -> Run:
    family = models.get_family(FAMILY, seq_len=SEQ_LEN)
    return Run(FAMILY, scale, family.param_count(scale).non_embedding, TOKENS[scale],
               TOKENS[scale] // EVALUATIONS, lr, batch_size, weight_decay, seed)


def grid_runs(scale: str) -> list[Run]:
    """Every run of the grid at `scale`, lr outermost."""
    low, high = LR_STEPS[scale]
    return [run_of(scale, lattice_lr(k), b, wd, seed) for k in range(low, high + 1) for b in BATCH_SIZES
            for wd in WEIGHT_DECAYS for seed in SEEDS]


def train(run: Run) -> Result:
    """Train `run` with `models.train` on one torch thread; its curve of (tokens seen, eval loss, train
    loss) at every evaluation."""
    torch.set_num_threads(1)
    config = TrainConfig(lr=run.lr, batch_size=run.batch_size, tokens=run.tokens,
                         weight_decay=run.weight_decay, eval_every_tokens=run.eval_every, seed=run.seed)
    result = models.train(models.get_family(FAMILY, seq_len=SEQ_LEN), run.scale, config)
    if result.status not in ("complete", "diverged"):
        raise RuntimeError(f"{run} ended {result.status}")
    curve = [(p.tokens_seen, p.eval_loss, p.train_loss) for p in result.curve]
    return Result(result.status, curve, result.seconds)


def train_grid(runs: list[Run], cache: Path, label: str) -> list[Result]:
    """Results of `runs`, trained one at a time where the cache lacks them, with a progress line for each."""
    started = time.perf_counter()

    def report(i: int, run: Run, result: Result) -> None:
        final = result.curve[-1][1] if result.curve else math.nan
        print(f"  {label} {i + 1}/{len(runs)} {run.scale} lr {run.lr:g} batch {run.batch_size} "
              f"wd {run.weight_decay:g} seed {run.seed}: {result.status} loss {final:.4f} "
              f"in {result.seconds:.1f} s ({time.perf_counter() - started:.0f} s so far)", flush=True)

    return train_all(runs, train, cache, CACHE_VERSION, report)


# ---------------------------------------------------------------- commands


def throughput(scales: list[str], steps: int) -> None:
    """Tokens/s of `models.train` at each scale and batch size, 1 thread (one evaluation, at the end)."""
    torch.set_num_threads(1)
    family = models.get_family(FAMILY, seq_len=SEQ_LEN)
    warm = TrainConfig(lr=1e-3, batch_size=8, tokens=8 * SEQ_LEN * 2)
    models.train(family, scales[0], warm)  # imports torch._dynamo at the first AdamW, outside the clock
    print("scale  N (non-emb.)  batch  tokens/s")
    for scale in scales:
        for batch in BATCH_SIZES:
            tokens = batch * SEQ_LEN * steps
            config = TrainConfig(lr=1e-3, batch_size=batch, tokens=tokens, eval_every_tokens=tokens)
            result = models.train(family, scale, config)
            print(f"{scale:<6} {family.param_count(scale).non_embedding:>12,} {batch:>6} "
                  f"{tokens / result.seconds:>9,.0f}", flush=True)


def coarse(scales: list[str], cache: Path) -> None:
    """lr every ×10^½ (`COARSE_STEPS`) at batch 16, wd 0, seed 0: where each scale's optimum lies."""
    lrs = [lattice_lr(k) for k in COARSE_STEPS]
    print(f"coarse pass: final eval loss at batch 16, wd 0, seed 0; lr {lrs}")
    for scale in scales:
        runs = [run_of(scale, lattice_lr(k), 16, 0.0, 0) for k in COARSE_STEPS]
        results = train_grid(runs, cache, "coarse")
        losses = [r.curve[-1][1] if r.status == "complete" else math.nan for r in results]
        best = int(np.nanargmin(losses))
        points = "  ".join(f"{run.lr:g} {loss:.4f}" for run, loss in zip(runs, losses, strict=True))
        print(f"{scale}: {points}  -> best lr {runs[best].lr:g}", flush=True)


def grid(scales: list[str], cache: Path, table: Path) -> None:
    """Train the grid of `scales` (cached); once every scale is cached, write `table` and print its optima."""
    started = time.perf_counter()
    for scale in scales:
        runs = grid_runs(scale)
        results = train_grid(runs, cache, "grid")
        seconds = sum(r.seconds for r in results)
        print(f"{scale}: {len(runs)} runs, {seconds:.0f} s of training (their loops' time)", flush=True)
    print(f"{time.perf_counter() - started:.0f} s this invocation")
    if set(scales) != set(SCALES):
        return
    runs = [run for scale in SCALES for run in grid_runs(scale)]
    rows = [row for run, result in zip(runs, cached_results(runs, cache, CACHE_VERSION), strict=True)
            for row in curve_rows(run, result)]
    write_table(rows, table)
    print(f"wrote {table} ({table.stat().st_size:,} bytes)\n")
    print("best mean final loss over seeds at each lr (any batch size and weight decay):")
    print("\n".join(optima_lines(TabularLadder.from_csv(table))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("throughput", "coarse", "grid"))
    parser.add_argument("--scales", default=",".join(SCALES))
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--steps", type=int, default=40, help="throughput: steps per measurement")
    args = parser.parse_args()
    scales = args.scales.split(",")
    if args.command == "throughput":
        throughput(scales, args.steps)
    elif args.command == "coarse":
        coarse(scales, args.cache)
    else:
        grid(scales, args.cache, args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
