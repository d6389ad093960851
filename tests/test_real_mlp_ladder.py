"""The `mlp` ladder table's runs (benchmarks/real_mlp_ladder.py) are what real training gives, cached once.

A few tiny runs of the smallest student (w8, 27 steps of 128 examples): a few seconds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_mlp_ladder as real
import tabular_ladder as tab

SCALE = "w8"
TOKENS = 27 * 128
"""Examples per run: one step of batch 128 between evaluations (few, cheap evaluations)."""


def test_a_run_is_a_direct_training_run_read_at_every_evaluation() -> None:
    run = real.run_of(SCALE, 1e-2, 128, 0.0, seed=3, tokens=TOKENS)
    result = real.train(run)
    direct = models.train(models.get_family("mlp"), SCALE, models.TrainConfig(
        lr=1e-2, batch_size=128, tokens=TOKENS, eval_every_tokens=TOKENS // 27, seed=3))
    assert result.status == direct.status == "complete"
    assert result.curve == [(p.tokens_seen, p.eval_loss, p.train_loss) for p in direct.curve]
    assert [seen for seen, _, _ in result.curve] == [TOKENS // 27 * k for k in range(1, 28)]
    rows = tab.curve_rows(run, result)
    assert [row["loss"] for row in rows] == [p.eval_loss for p in direct.curve]
    assert {row["params"] for row in rows} == {models.get_family("mlp").param_count(SCALE).total}


def test_a_diverged_run_ends_its_curve_where_it_diverged() -> None:
    result = real.train(real.run_of(SCALE, 30.0, 128, 0.0, seed=0, tokens=TOKENS))
    assert result.status == "diverged"
    assert len(result.curve) < 27


def test_runs_are_cached_and_never_retrained(tmp_path: Path) -> None:
    run = real.run_of(SCALE, 1e-2, 128, 0.01, seed=0, tokens=TOKENS)
    first = tab.cached_result(run, real.train, tmp_path, real.CACHE_VERSION)
    assert len(list(tmp_path.rglob("*.json"))) == 1 and math.isfinite(first.curve[-1][1])

    def refuse(run: tab.Run) -> tab.Result:
        raise AssertionError("trained again")

    assert tab.cached_result(run, refuse, tmp_path, real.CACHE_VERSION) == first
    with pytest.raises(LookupError):
        tab.cached_results([real.run_of(SCALE, 2e-2, 128, 0.01, seed=0, tokens=TOKENS)], tmp_path,
                           real.CACHE_VERSION)


def test_the_grid_is_the_documented_product() -> None:
    runs = real.grid_runs("w64")
    assert len(runs) == 9 * 5 * 3 * 2
    assert sorted({r.lr for r in runs}) == [tab.lattice_lr(k) for k in range(-12, -3)]
    assert {r.tokens for r in runs} == {real.TOKENS} and {r.eval_every for r in runs} == {real.TOKENS // 27}
