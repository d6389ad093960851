"""`load_curves`: every evaluation of the trials `load_trials` reads, from the Optuna store."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.store.trial_table import CURVE_COLUMNS, load_curves, load_trials
from hpo.study.spec import parse_spec
from hpo.vocab import INTERRUPTED


def test_curves_hold_each_read_trials_evaluations_at_their_tokens(tmp_path: Path) -> None:
    """Three trials of w8 report at 100, 300 and 900 tokens; the third was interrupted by a killed driver
    (run again on resume), so neither table holds it; w32's trial is not asked for."""
    spec = parse_spec({
        "name": "curves", "family": "mlp", "scales": ["w8", "w32"], "target": 1_000_000,
        "budget": {"tokens": 900}, "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": 32,
                                            "weight_decay": 0.0},
        "output": str(tmp_path / "out"),
    })
    spec.output_dir.mkdir(parents=True)
    storage = optuna_storage(spec.storage.optuna)
    for scale, trials in (("w8", 3), ("w32", 1)):
        study = optuna.create_study(study_name=optuna_study_name("curves", "default", scale), storage=storage)
        for number in range(trials):
            trial = study.ask()
            for key, value in {"lr": 1e-2 * (number + 1), "batch_size": 32, "weight_decay": 0.0,
                               "status": INTERRUPTED if number == 2 else "complete",
                               "tokens_seen": 900}.items():
                trial.set_user_attr(key, value)
            for step in (100, 300, 900):
                trial.report(2.0 + number - step / 1000, step)
            study.tell(trial, 2.0 + number - 0.9, state=TrialState.COMPLETE)

    curves = load_curves(spec, scales=["w8"], storage=storage)
    trials = load_trials(spec, scales=["w8"], storage=storage)

    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert sorted(set(curves["trial_number"])) == sorted(trials["trial_number"]) == [0, 1]
    assert set(curves["scale"]) == {"w8"}
    assert curves.loc[curves["trial_number"] == 1, "tokens_seen"].tolist() == [100.0, 300.0, 900.0]
    assert curves.loc[curves["trial_number"] == 1, "loss"].tolist() == [2.9, 2.7, 2.1]
    assert load_curves(spec, scales=[], storage=storage).empty
