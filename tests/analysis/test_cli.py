"""``python -m hpo.analysis TRIALS.csv --target N``: the recommendation as a table, plots, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hpo.analysis.__main__ import main
from hpo.evaluation.synthetic import crossing_variants, make_synthetic_trials

LADDER = (1e7, 3e7, 1e8, 3e8, 1e9)


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "trials.csv"
    make_synthetic_trials(crossing_variants(3e9), LADDER, trials_per_cell=30, seed=5).to_csv(
        path, index=False
    )
    return path


def test_prints_the_recommendation_as_a_table(trials_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(trials_csv), "--target", "1e10", "--bootstrap", "20"]) == 0
    output = capsys.readouterr().out
    assert "Recommendation for N = 1e+10 parameters: variant 'baseline'" in output
    for row in ("lr", "batch_size (power of 2)", "predicted loss", "baseline / challenger  ahead"):
        assert row in output
    assert "90% interval" in output


def test_writes_the_plots(trials_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(trials_csv), "--target", "1e10", "--bootstrap", "10", "--plots", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == [
        "loss_vs_lr_baseline.png",
        "loss_vs_lr_challenger.png",
        "loss_vs_scale.png",
        "optimum_vs_scale.png",
    ]
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in written)


def test_invalid_input_exits_with_a_one_line_message(
    trials_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(trials_csv), "--target", "-5"]) == 2
    assert "target_params must be a positive number" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    pd.read_csv(trials_csv).drop(columns=["lr"]).to_csv(broken, index=False)
    assert main([str(broken), "--target", "1e10"]) == 2
    assert "missing required column 'lr'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (0.0, "column 'loss' must be > 0"),
        (-2.5, "column 'loss' must be > 0"),
        (float("nan"), "column 'loss' is missing or infinite where status is 'complete'"),
        ("oops", "column 'loss' holds text, not a number"),
    ],
)
def test_a_bad_loss_column_exits_2_with_one_line_naming_it(
    trials_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], loss: object, message: str
) -> None:
    """All-zero or all-negative losses, NaN losses of complete trials, text: no recommendation, exit 2."""
    bad = tmp_path / "bad.csv"
    table = pd.read_csv(trials_csv).assign(loss=loss, status="complete")
    table.to_csv(bad, index=False)
    assert main([str(bad), "--target", "1e10"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err and "line 2: " in captured.err
