"""The trial table: defaults, validation, pruned and diverged trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpo.analysis import TRIAL_COLUMNS, normalize_trials, read_trials
from hpo.analysis.trials import scale_name, varies_tokens_independently


def minimal_table(**overrides: list) -> pd.DataFrame:
    columns = {
        "params": [1e8, 1e8, 1e8],
        "tokens": [2e9, 2e9, 2e9],
        "lr": [1e-3, 2e-3, 4e-3],
        "batch_size": [64, 64, 64],
        "loss": [3.0, 2.9, 3.1],
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def test_minimal_columns_suffice_and_the_rest_defaults() -> None:
    trials = normalize_trials(minimal_table())
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    first = trials.iloc[0]
    assert first["variant"] == "default"
    assert first["status"] == "complete"
    assert first["weight_decay"] == 0
    assert first["tokens_seen"] == first["tokens"]
    assert first["scale"] == "100M"
    assert list(trials["trial_number"]) == [0, 1, 2]


def test_extra_columns_are_ignored() -> None:
    trials = normalize_trials(minimal_table(notes=["a", "b", "c"]))
    assert "notes" not in trials.columns


@pytest.mark.parametrize("column", ["params", "tokens", "lr", "batch_size", "loss"])
def test_missing_required_column_names_the_field(column: str) -> None:
    with pytest.raises(ValueError, match=f"missing required column '{column}'"):
        normalize_trials(minimal_table().drop(columns=[column]))


def test_empty_table_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_trials(minimal_table().iloc[:0])


def test_non_positive_learning_rate_is_rejected_naming_the_row_and_value() -> None:
    with pytest.raises(
        ValueError, match=r"column 'lr' must be a positive finite number in 1 of 3 rows \(row 1: 0.0\)"
    ):
        normalize_trials(minimal_table(lr=[1e-3, 0.0, 1e-3]))


def test_unknown_status_is_rejected_naming_the_rows() -> None:
    with pytest.raises(
        ValueError, match=r"column 'status' is not a known status .*row 1: 'done'.*use one of"
    ):
        normalize_trials(minimal_table(status=["complete", "done", "complete"]))


@pytest.mark.parametrize("losses", [[0.0, 0.0, 0.0], [-3.0, -2.9, -3.1], [3.0, 0.0, 3.1]])
def test_a_loss_at_or_below_zero_is_rejected(losses: list[float]) -> None:
    """All-zero or negative losses (a reward, an accuracy, a log-likelihood) never reach a fit."""
    with pytest.raises(ValueError, match=r"column 'loss' must be > 0 .*row \d: .*pass the loss itself"):
        normalize_trials(minimal_table(loss=losses))


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_a_missing_loss_of_a_complete_trial_is_an_error_not_divergence(loss: float) -> None:
    with pytest.raises(
        ValueError,
        match=r"column 'loss' is missing or infinite where status is 'complete'.*"
        r"row 1: (nan|inf)\); set their status to 'diverged'",
    ):
        normalize_trials(minimal_table(loss=[3.0, loss, 2.9]))


def test_a_missing_loss_is_divergence_only_when_the_status_says_so() -> None:
    trials = normalize_trials(
        minimal_table(loss=[3.0, math.nan, math.nan], status=["complete", "diverged", "failed"])
    )
    assert list(trials["status"]) == ["complete", "diverged", "failed"]


def test_an_exploding_loss_above_the_best_learning_rate_is_diverged() -> None:
    trials = normalize_trials(minimal_table(loss=[3.0, 2.9, 7.5]))
    assert list(trials["status"]) == ["complete", "complete", "diverged"]


@pytest.mark.parametrize(
    "column", ["params", "tokens", "lr", "batch_size", "loss", "tokens_seen", "weight_decay"]
)
def test_text_in_a_numeric_column_is_rejected_naming_column_row_and_text(column: str) -> None:
    values: list[object] = list(minimal_table()[column]) if column in minimal_table() else [0.0, 0.0, 0.0]
    values[2] = "n/a"
    with pytest.raises(
        ValueError, match=rf"column '{column}' holds text, not a number, in 1 of 3 rows \(row 2: 'n/a'\)"
    ):
        normalize_trials(minimal_table(**{column: values}))


def test_numbers_written_as_text_are_read_and_empty_optional_cells_default() -> None:
    trials = normalize_trials(minimal_table(lr=["1e-3", "2e-3", "4e-3"], weight_decay=[0.1, None, ""]))
    assert list(trials["lr"]) == [1e-3, 2e-3, 4e-3]
    assert list(trials["weight_decay"]) == [0.1, 0.0, 0.0]


def test_an_error_names_the_first_rows_and_counts_the_rest() -> None:
    table = pd.concat([minimal_table()] * 4, ignore_index=True).assign(loss=-1.0)
    with pytest.raises(ValueError, match=r"in 12 of 12 rows \(row 0: -1.0, .*row 4: -1.0, and 7 more\)"):
        normalize_trials(table)


def test_read_trials_names_the_lines_of_the_csv(tmp_path) -> None:
    path = tmp_path / "sweep.csv"
    minimal_table(loss=[3.0, "diverged", 3.1]).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match=r"column 'loss' holds text, not a number, in 1 of 3 rows \(line 3: 'diverged'\)"
    ):
        read_trials(path)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00 not text", b'a,b\n1,"2\n'])
def test_read_trials_says_a_file_that_is_not_a_csv_table_is_not_one(tmp_path, content: bytes) -> None:
    path = tmp_path / "sweep.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"sweep.csv: not a CSV table of trials \(.+\); pass a UTF-8 CSV"):
        read_trials(path)


def test_read_trials_names_a_path_it_cannot_read(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"missing.csv: cannot read the trials file \(No such file"):
        read_trials(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"cannot read the trials file \(Is a directory\); check the path"):
        read_trials(tmp_path)


def test_a_bad_loss_below_the_best_learning_rate_is_slow_learning_not_divergence() -> None:
    trials = normalize_trials(minimal_table(lr=[1e-5, 2e-3, 4e-3], loss=[7.5, 2.9, 7.5]))
    assert list(trials["status"]) == ["complete", "complete", "diverged"]


def test_trial_stopped_before_its_budget_is_pruned() -> None:
    trials = normalize_trials(minimal_table(tokens_seen=[2e9, 5e8, 2e9]))
    assert list(trials["status"]) == ["complete", "pruned", "complete"]


def test_divergence_is_judged_within_each_cell() -> None:
    table = minimal_table(params=[1e7, 1e7, 1e9], loss=[4.5, 4.4, 2.5])
    assert (normalize_trials(table)["status"] == "complete").all()


def test_read_trials_renames_a_foreign_sweep(tmp_path) -> None:
    path = tmp_path / "sweep.csv"
    minimal_table().rename(columns={"params": "N", "batch_size": "bs"}).assign(loss_raw=1.0).to_csv(path)
    trials = read_trials(path, rename={"N": "params", "bs": "batch_size"})
    assert trials["params"].iloc[0] == 1e8
    assert trials["batch_size"].iloc[0] == 64


def test_scale_names_are_short() -> None:
    assert scale_name(214_663_680) == "215M"
    assert scale_name(1.3e9) == "1.3B"
    assert scale_name(5e5) == "500K"


def test_tokens_vary_independently_only_when_a_size_has_several_budgets() -> None:
    params = np.array([1e7, 1e8, 1e9])
    assert not varies_tokens_independently(params, 20 * params)
    assert varies_tokens_independently(np.append(params, 1e9), np.append(20 * params, 4e10))
