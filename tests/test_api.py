"""The Python API a notebook uses: load a study, run it, read its trials, analyze them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from small_studies import write_mlp_study

import hpo
from hpo.analysis import TRIAL_COLUMNS


def test_a_notebook_runs_a_study_reads_its_trials_and_analyzes_it(ray_runtime: None, tmp_path: Path) -> None:
    path = write_mlp_study(tmp_path, "notebook", scales=["w8", "w16", "w32"], trials_per_scale=4,
                           search="independent", budget={"tokens": 4_000},
                           space={"lr": {"low": 1e-3, "high": 0.1}, "batch_size": 32})
    spec = hpo.load_spec(path)

    outcome = hpo.run_study(spec)
    table = hpo.load_trials(spec)
    recommendation = hpo.analyze(spec)

    assert outcome.ran == 12 and len(table) == 12 and list(table.columns) == list(TRIAL_COLUMNS)
    assert recommendation.target_params == spec.target_params and recommendation.lr.value > 0
    from_file = hpo.extrapolate(path)  # a study file is a trial table with its searched ranges
    assert from_file.lr.value == pytest.approx(recommendation.lr.value)
    csv = tmp_path / "trials.csv"
    table.to_csv(csv, index=False)
    assert hpo.extrapolate(csv, target_params=spec.target_params).lr.value == pytest.approx(
        hpo.extrapolate(pd.read_csv(csv), target_params=spec.target_params).lr.value)


def test_a_trial_table_needs_its_target_size() -> None:
    with pytest.raises(ValueError, match="target_params is required"):
        hpo.extrapolate(pd.DataFrame(columns=list(TRIAL_COLUMNS)))
