"""The real `mlp` ladder's ground truth (benchmarks/real_mlp_ladder.py) reads what real training gives.

A few tiny runs of the smallest student (w8, 27 steps of 128 examples): a few seconds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_mlp_ladder as real

SCALE = "w8"
TOKENS = 27 * 128
"""Examples per run: one step of batch 128 between evaluations (few, cheap evaluations)."""
SETTING = {"lr": 1e-2, "batch_size": 128, "weight_decay": 0.0}


def test_learning_curve_is_a_direct_run_read_at_each_rung(tmp_path: Path) -> None:
    truth = real.RealMLPLadder(tmp_path)
    params = truth.params(SCALE)
    rungs = [TOKENS / 27 * k for k in (1, 3, 9, 27)]
    # Rung by rung, as the benchmark asks: the first stops the run early, the next ones train it to the end.
    losses = [truth.loss(params, TOKENS, SETTING, seen, np.random.default_rng(0)) for seen in rungs]
    seed = int(np.random.default_rng(0).integers(2**31))
    direct = models.train(models.get_family("mlp"), SCALE, models.TrainConfig(
        lr=SETTING["lr"], batch_size=SETTING["batch_size"], tokens=TOKENS, eval_every_tokens=TOKENS // 27,
        seed=seed))
    curve = {p.tokens_seen: p.eval_loss for p in direct.curve}
    assert direct.status == "complete"
    assert losses == [curve[int(seen)] for seen in rungs]
    # The same setting in another study is another trial, with its own seed: real noise, not a replay.
    other = real.RealMLPLadder(tmp_path).loss(params, TOKENS, SETTING, TOKENS, np.random.default_rng(1))
    assert math.isfinite(other) and other != losses[-1]


def test_diverged_runs_read_as_nan(tmp_path: Path) -> None:
    truth = real.RealMLPLadder(tmp_path)
    exploding = {"lr": 30.0, "batch_size": 128, "weight_decay": 0.0}
    assert math.isnan(truth.loss(truth.params(SCALE), TOKENS, exploding, TOKENS, np.random.default_rng(0)))
    run = real.train_run(SCALE, TOKENS, exploding, seed=0)
    assert run.status == "diverged"
    assert math.isnan(run.loss_at(TOKENS))


def test_final_runs_are_cached(tmp_path: Path) -> None:
    first = real.final_loss(SCALE, SETTING, 0, tmp_path, tokens=TOKENS)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and math.isfinite(first)
    assert real.final_loss(SCALE, SETTING, 0, tmp_path, tokens=TOKENS) == first
    assert list(tmp_path.rglob("*.json")) == files
