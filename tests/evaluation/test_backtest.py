"""The backtest of a sweep: its folds, its baselines, what covers, the command line that prints it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import normalize_trials
from hpo.analysis.__main__ import main
from hpo.evaluation.backtest import (
    LEAVE_LARGEST_OUT,
    LEAVE_ONE_OUT,
    PREDICTED,
    REUSE_BEST,
    BacktestReport,
    run_backtest,
)
from hpo.evaluation.backtest_report import format_backtest
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_grid_sweep

VARIANT = Landscape(
    lr_a=2.0, lr_b=-0.7, lr_c=0.3, batch_a=0.002, batch_b=0.0, batch_c=0.5, high_lr_steepness=3.0, noise=0.001
)
SIZES = (1e8, 2e8, 4e8, 8e8)
LRS = tuple(2.44e-4 * 2 ** (k / 2) for k in range(13))
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048)


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    """Four sizes x two budgets (20 and 100 tokens per parameter), 13 x 8 grids, 0.1% loss noise."""
    cells = [(n, n * ratio) for n in SIZES for ratio in (20, 100)]
    return make_grid_sweep(VARIANT, cells, lrs=LRS, batch_sizes=BATCHES, seed=11)


@pytest.fixture(scope="module")
def report(sweep: pd.DataFrame) -> BacktestReport:
    return run_backtest(normalize_trials(sweep), n_bootstrap=5)


def test_folds_hold_out_the_largest_sizes_then_each_size_inside_the_span(report: BacktestReport) -> None:
    plan = [(fold.kind, fold.held_out_params, fold.fitted_params) for fold in report.folds]
    assert plan == [
        (LEAVE_LARGEST_OUT, 8e8, (1e8, 2e8, 4e8)),
        (LEAVE_LARGEST_OUT, 4e8, (1e8, 2e8)),
        (LEAVE_ONE_OUT, 2e8, (1e8, 4e8, 8e8)),
        (LEAVE_ONE_OUT, 4e8, (1e8, 2e8, 8e8)),
    ]
    assert all(len(fold.cells) == 2 and fold.seconds > 0 for fold in report.folds)


def test_largest_only_runs_the_fold_of_the_largest_size_alone_and_judges_it_alike(
    sweep: pd.DataFrame, report: BacktestReport
) -> None:
    largest = run_backtest(normalize_trials(sweep), n_bootstrap=5, largest_only=True)
    assert [(fold.kind, fold.held_out_params) for fold in largest.folds] == [(LEAVE_LARGEST_OUT, 8e8)]
    assert largest.folds[0].cells == report.folds[0].cells


def test_a_law_beats_reusing_the_best_setting_of_a_smaller_size(report: BacktestReport) -> None:
    largest = report.folds[0]
    assert np.mean([c.regret_local_pct[PREDICTED] for c in largest.cells]) < np.mean(
        [c.regret_local_pct[REUSE_BEST] for c in largest.cells]
    )
    assert report.beats_reuse_share() >= 0.5


def test_an_interval_covers_when_it_holds_a_trial_within_the_tolerance_of_the_best(
    sweep: pd.DataFrame, report: BacktestReport
) -> None:
    for cell in report.cells():
        rows = sweep[(sweep["params"] == cell.params) & (sweep["tokens"] == cell.tokens)].dropna(
            subset=["loss"]
        )
        good = rows.loc[rows["loss"] <= rows["loss"].min() * (1 + report.tolerance), "lr"]
        inside = good.between(cell.predicted_lr.low * (1 - 1e-9), cell.predicted_lr.high * (1 + 1e-9))
        assert cell.lr_covered == bool(inside.any())
    assert report.coverage() >= 0.75
    assert 1.0 < report.median_lr_interval_ratio() < 4.0


def test_the_report_shows_every_fold_and_the_summary(report: BacktestReport) -> None:
    text = format_backtest(report)
    assert text.count("leave largest out: ") == 2 and text.count("leave one out: ") == 2
    for figure in (
        "worst regret % (local)",
        "interval coverage",
        "median lr interval high/low",
        "seconds per fit",
    ):
        assert figure in text


def test_the_command_line_backtests_a_foreign_sweep(
    sweep: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sweep.csv"
    sweep.rename(columns={"params": "N", "tokens": "D", "batch_size": "bs"}).to_csv(path, index=False)
    assert (
        main(["--backtest", str(path), "--rename", "N=params,D=tokens,bs=batch_size", "--bootstrap", "5"])
        == 0
    )
    assert "Summary" in capsys.readouterr().out
    assert main(["--backtest", str(path)]) == 2
    assert "missing required column 'params'" in capsys.readouterr().err


def test_a_sweep_of_two_sizes_cannot_be_backtested(sweep: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least 3 model sizes"):
        run_backtest(normalize_trials(sweep[sweep["params"] < 4e8]))


def test_hpo_backtest_prints_the_same_report(sweep: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "sweep.csv"
    sweep.rename(columns={"params": "N", "tokens": "D", "batch_size": "bs"}).to_csv(path, index=False)
    command = [sys.executable, "-m", "hpo.cli", "backtest", str(path), "--rename",
               "N=params,D=tokens,bs=batch_size", "--bootstrap", "5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Summary" in result.stdout and "interval coverage" in result.stdout
    broken = subprocess.run(command[:5], capture_output=True, text=True, timeout=300)
    assert broken.returncode == 2 and "missing required column 'params'" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
