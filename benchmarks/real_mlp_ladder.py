"""The real `mlp` ladder as a ground truth for search methods: each evaluation a real `models.training` run.

`RealMLPLadder` answers the questions `benchmarks/search_efficiency.py` asks
its truth (`hpo.evaluation.surrogate.Surrogate`'s interface), from real training of the
``mlp`` teacher-student family (`models.mlp`) instead of a formula:

* ``loss(N, D, setting, t, rng)``: the eval loss (mean squared error on the
  family's fixed validation set) after t of the run's D examples, from one
  real run of that trial. A trial is trained once per point beyond what it
  already has: it stops (report callback) at the first evaluation at or
  after t, and a later, larger t retrains it from the start to its full
  budget D; the run is deterministic given its seed, and the learning-rate
  schedule depends on D only, so a stopped run is the prefix of the full
  one. The seed of a trial is drawn from `rng` the first time its
  (N, D, setting) is asked: a per-trial seed, so evaluation noise is real
  (initialisation and data order). A point the run did not reach because it
  diverged (``models.training`` status ``diverged``) is NaN.
* ``regret_pct(N_T, D_T, setting, space)``: 100·(L(setting) / L* − 1), where
  L(setting) is the final eval loss at the target averaged over the seeds
  `EVAL_SEEDS`, and L* the lowest such average over the dense grid
  `grid_settings` (lr × batch size × weight decay) at the target, on the
  same seeds (common random numbers: a setting and the grid differ by their
  hyperparameters, not their seeds). A setting that diverges on any seed
  has infinite regret. Every final run of the grid or of a recommended
  setting is cached as one JSON file under `cache_dir`, so reruns and the
  grid are paid once.
* ``optimal_loss(N, t)``: used by the benchmark only to size the penalty
  told to the sampler for a diverged trial; the real optimum below the
  target is not known, so this is the loss of the zero predictor,
  E[y²] = 1 + σ² (the targets have unit variance plus noise σ), which no
  trained run should exceed.

The ladder (`SCALES`, `TARGET_SCALE`), the budget (`TOKENS` examples at every
scale, the family's natural budget rather than a fixed tokens-per-param,
which would make the target unaffordable on a CPU), the search space `SPACE`
and the grid are module constants. Compute is the family's
``train_flops = 6·N·D`` (N = all parameters of the student, D examples).

Run on its own, ``python benchmarks/real_mlp_ladder.py [--scales w8,...] [--jobs 2]``
computes (or reads from the cache) the grid at each scale and prints the
per-scale optimum: whether the best lr moves with width, the loss falls with
scale, and the target's optimum lies inside the space.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import models
from hpo.study.spec import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from models import Progress, TrainConfig

FAMILY = "mlp"
SCALES = ("w8", "w16", "w32", "w64")
"""Student widths searched, smallest first."""
TARGET_SCALE = "w256"
TOKENS = 27 * 384
"""Examples per run at every scale (10,368): D/27 = 384 is a multiple of every batch size of `SPACE`,
so the benchmark's rungs D/27, D/9, D/3, D fall exactly on evaluations."""
EVALUATIONS = 27
"""Evaluations per run, every D/27 examples: the benchmark's smallest rung."""
SPACE = SearchSpace(lr=LogRange(1e-3, 1e-1), batch_size=PowerOfTwoRange(8, 128),
                    weight_decay=WeightDecayRange(1e-3, 1e-1, zero=True))
GRID_LR = tuple(float(x) for x in np.geomspace(1e-3, 1e-1, 9))
"""Learning rates of the grid: 9 points over the space's range, a factor 10^¼ ≈ 1.78 apart; around the
best one the grid is refined to half that step (`grid_optimum`)."""
GRID_WEIGHT_DECAY = (0.0, 1e-2, 1e-1)
EVAL_SEEDS = (0, 1)
"""Seeds every final run at a grid point or of a recommended setting is averaged over."""
CACHE_DIR = Path("/tmp/hpo_real_mlp_ladder")
CACHE_VERSION = 1
"""Part of every cache key: bump it when the training settings change."""

Setting = dict[str, float]
"""``lr``, ``batch_size`` (examples per step) and ``weight_decay``."""


def grid_settings(weight_decays: tuple[float, ...] = GRID_WEIGHT_DECAY,
                  batch_sizes: tuple[int, ...] = SPACE.batch_size.choices) -> list[Setting]:
    """The dense grid: `GRID_LR` × `batch_sizes` (every one of `SPACE`) × `weight_decays`."""
    return [{"lr": lr, "batch_size": batch, "weight_decay": wd}
            for lr, batch, wd in itertools.product(GRID_LR, batch_sizes, weight_decays)]


@dataclass(frozen=True)
class Run:
    """One real run, or its prefix: eval loss at each evaluation (examples seen → MSE) and how it ended."""

    status: str
    curve: dict[int, float]
    tokens_seen: int

    def loss_at(self, tokens_seen: float) -> float:
        """Eval loss at the first evaluation at or after `tokens_seen` examples; NaN if the run diverged
        before it."""
        for seen, loss in self.curve.items():
            if seen >= tokens_seen:
                return loss
        if self.status == "diverged":
            return math.nan
        raise ValueError(f"run stopped at {self.tokens_seen} examples, before {tokens_seen:.0f}")


def train_run(scale: str, tokens: int, setting: Setting, seed: int, until: float | None = None) -> Run:
    """Train `setting` at `scale` for a budget of `tokens` examples, stopping at the first evaluation at or
    after `until` examples (None: the full budget). One torch thread."""
    torch.set_num_threads(1)
    config = TrainConfig(lr=float(setting["lr"]), batch_size=int(setting["batch_size"]), tokens=tokens,
                         weight_decay=float(setting["weight_decay"]),
                         eval_every_tokens=max(1, tokens // EVALUATIONS), seed=seed)

    def stop(progress: Progress) -> bool:
        return until is not None and progress.tokens_seen >= until

    result = models.train(models.get_family(FAMILY), scale, config, report=stop)
    curve = {p.tokens_seen: p.eval_loss for p in result.curve}
    return Run(result.status, curve, result.tokens_seen)


def final_loss(scale: str, setting: Setting, seed: int, cache_dir: Path, tokens: int = TOKENS) -> float:
    """Final eval loss of a full run of `setting` at `scale` with `seed` for `tokens` examples (NaN if it
    diverged), read from or written to `cache_dir` (one JSON file per run, written atomically)."""
    key = json.dumps([CACHE_VERSION, FAMILY, scale, tokens, float(setting["lr"]), int(setting["batch_size"]),
                      float(setting["weight_decay"]), seed])
    path = cache_dir / scale / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        return float(json.loads(path.read_text())["loss"])
    run = train_run(scale, tokens, setting, seed)
    loss = run.loss_at(tokens) if run.status == "complete" else math.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"key": json.loads(key), "status": run.status, "loss": loss}))
    partial.replace(path)
    return loss


def _final_loss_job(job: tuple[str, Setting, int, Path]) -> float:
    return final_loss(*job)


def mean_losses(scale: str, settings: list[Setting], cache_dir: Path, jobs: int = 1,
                seeds: tuple[int, ...] = EVAL_SEEDS) -> list[float]:
    """Final eval loss of each setting at `scale`, averaged over `seeds` (NaN if any seed diverged);
    runs missing from the cache are trained by `jobs` processes."""
    work = [(scale, setting, seed, cache_dir) for setting in settings for seed in seeds]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            losses = pool.map(_final_loss_job, work, chunksize=1)
    else:
        losses = [_final_loss_job(job) for job in work]
    per_setting = np.array(losses).reshape(len(settings), len(seeds))
    return [float(np.mean(row)) for row in per_setting]


def grid_optimum(scale: str, cache_dir: Path, jobs: int = 1,
                 weight_decays: tuple[float, ...] = GRID_WEIGHT_DECAY,
                 batch_sizes: tuple[int, ...] = SPACE.batch_size.choices, seeds: tuple[int, ...] = EVAL_SEEDS
                 ) -> tuple[Setting, float, list[tuple[Setting, float]]]:
    """The best setting of the grid at `scale`, its seed-averaged loss, and every point's loss.

    The grid is `grid_settings(weight_decays, batch_sizes)`, then refined in lr
    at the best point's batch size and weight decay: lr·10^(±⅛), half the grid's step.
    """
    settings = grid_settings(weight_decays, batch_sizes)
    table = list(zip(settings, mean_losses(scale, settings, cache_dir, jobs, seeds), strict=True))
    best = min((pair for pair in table if math.isfinite(pair[1])), key=lambda pair: pair[1])[0]
    refined = [{**best, "lr": best["lr"] * 10**step} for step in (-0.125, 0.125)]
    table += zip(refined, mean_losses(scale, refined, cache_dir, jobs, seeds), strict=True)
    best, loss = min((pair for pair in table if math.isfinite(pair[1])), key=lambda pair: pair[1])
    return best, loss, table


class RealMLPLadder:
    """Ground truth from real `models.training` runs of the ``mlp`` family (see the module docstring).

    Args:
        cache_dir: where final runs (grid and recommended settings) are cached as JSON files.
        jobs: processes that train the target grid when it is not cached yet.
    """

    def __init__(self, cache_dir: Path = CACHE_DIR, jobs: int = 1) -> None:
        self.cache_dir = cache_dir
        self.jobs = jobs
        family = models.get_family(FAMILY)
        self._scales = {float(family.param_count(s).total): s for s in family.scales}
        self._noise = family.noise
        self._seeds: dict[tuple[float, float, float, int, float], int] = {}
        self._runs: dict[tuple[float, float, float, int, float, int], Run] = {}
        self._target_best: dict[str, float] = {}

    def params(self, scale: str) -> float:
        """Parameters N of the student at `scale`."""
        return next(n for n, name in self._scales.items() if name == scale)

    def scale(self, params: float) -> str:
        """The scale whose student has `params` parameters."""
        return self._scales[float(params)]

    def loss(self, params: float, tokens: float, setting: Setting, tokens_seen: float,
             rng: np.random.Generator) -> float:
        """Real eval loss after `tokens_seen` of the trial's `tokens` examples (NaN once it diverged)."""
        trial = (float(params), float(tokens), float(setting["lr"]), int(setting["batch_size"]),
                 float(setting["weight_decay"]))
        if trial not in self._seeds:
            self._seeds[trial] = int(rng.integers(2**31))
        key = (*trial, self._seeds[trial])
        run = self._runs.get(key)
        if run is None or (run.status == "stopped" and run.tokens_seen < tokens_seen):
            until = None if run is not None else tokens_seen
            run = train_run(self.scale(params), int(tokens), setting, key[-1], until)
            self._runs[key] = run
        return run.loss_at(tokens_seen)

    def optimal_loss(self, params: float, tokens: float) -> float:
        """E[y²] = 1 + σ²: the zero predictor's loss, an upper bound on any trained run's (see the module
        docstring: only the divergence penalty uses it)."""
        return 1.0 + self._noise**2

    def regret_pct(self, params: float, tokens: float, setting: Setting, space: SearchSpace) -> float:
        """100·(seed-averaged final loss of `setting` at the target / the grid optimum's − 1); inf if it
        diverges on a seed. `space` is the benchmark's, whose grid is `grid_settings`."""
        scale = self.scale(params)
        if scale not in self._target_best:
            self._target_best[scale] = grid_optimum(scale, self.cache_dir, self.jobs)[1]
        (loss,) = mean_losses(scale, [setting], self.cache_dir)
        return 100.0 * (loss / self._target_best[scale] - 1.0) if math.isfinite(loss) else math.inf


# ---------------------------------------------------------------- the ground truth, checked


def _edge(setting: Setting) -> str:
    """Which hyperparameters of `setting` lie on an edge of `SPACE` (lr at a bound, batch the smallest or
    largest power of two), or ``"interior"``."""
    edges = [name for name, on_edge in (
        ("lr", not SPACE.lr.low * 10**0.2 < setting["lr"] < SPACE.lr.high / 10**0.2),
        ("batch", setting["batch_size"] in (SPACE.batch_size.low, SPACE.batch_size.high))) if on_edge]
    return ", ".join(f"{name} on the edge" for name in edges) or "interior"


def main() -> int:
    parser = argparse.ArgumentParser(description="Grid optimum of the real mlp ladder at each scale.")
    parser.add_argument("--scales", default=",".join(SCALES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batches", default="8,16,32",
                        help="batch sizes of the check at every scale (the target's grid has all of SPACE)")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    truth = RealMLPLadder(args.cache)
    started = time.perf_counter()
    best, loss, _ = grid_optimum(TARGET_SCALE, args.cache, args.jobs)
    print(f"target {TARGET_SCALE} (N = {truth.params(TARGET_SCALE):.0f}), D = {TOKENS} examples: "
          f"lr {len(GRID_LR)} points {GRID_LR[0]:g}..{GRID_LR[-1]:g} × batch {SPACE.batch_size.choices} × "
          f"wd {GRID_WEIGHT_DECAY}, mean of seeds {EVAL_SEEDS}, refined in lr around the best "
          f"({time.perf_counter() - started:.0f} s)")
    print(f"  optimum lr {best['lr']:.3g}, batch {best['batch_size']}, wd {best['weight_decay']:g}: "
          f"loss {loss:.4f} ({_edge(best)})\n")
    print(f"every scale, weight decay 0, seed {EVAL_SEEDS[0]}: lowest loss over batch sizes {batches} at "
          "each lr (refined around the best)")
    print("scale  params  " + " ".join(f"{lr:>7.2g}" for lr in GRID_LR) + "   best lr  batch  loss")
    for scale in (*args.scales.split(","), TARGET_SCALE):
        best, loss, table = grid_optimum(scale, args.cache, args.jobs, weight_decays=(0.0,),
                                         batch_sizes=batches, seeds=EVAL_SEEDS[:1])
        per_lr = [min(mean for s, mean in table if s["lr"] == lr) for lr in GRID_LR]
        print(f"{scale:<6} {truth.params(scale):>7.0f} " + " ".join(f"{mean:7.4f}" for mean in per_lr)
              + f"   {best['lr']:.3g}  {best['batch_size']:>5}  {loss:.4f}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
