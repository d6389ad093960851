"""`load_trials` of some (variant, scale)s reads the trials of those only.

A driver loads the trial table of a (variant, scale) when it opens and when it closes; reading every
trial of every study in the store there (Optuna's study summaries) made its cost grow with the
whole store (benchmarks/scale.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.store.trial_table import load_trials
from hpo.study.spec import parse_spec


def test_a_table_of_one_cell_reads_no_other_studys_trials(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec({
        "name": "cost", "family": "mlp", "scales": ["w8", "w32"], "target": 1_000_000,
        "budget": {"tokens": 1_000}, "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": 32,
                                              "weight_decay": 0.0},
        "variants": {"a": {}, "b": {}}, "output": str(tmp_path / "out"),
    })
    spec.output_dir.mkdir(parents=True)
    storage = optuna_storage(spec.storage.optuna)
    ids = {}
    for variant in ("a", "b"):
        for scale in ("w8", "w32"):
            study = optuna.create_study(study_name=optuna_study_name("cost", variant, scale), storage=storage)
            ids[variant, scale] = study._study_id
            for number in range(5):
                trial = study.ask()
                for key, value in {"lr": 1e-2 * (number + 1), "batch_size": 32, "weight_decay": 0.0,
                                   "status": "complete", "tokens_seen": 1_000}.items():
                    trial.set_user_attr(key, value)
                study.tell(trial, 1.0 / (number + 1), state=TrialState.COMPLETE)
    read_from: list[int] = []
    original = optuna.storages.RDBStorage._get_trials

    def counting(self: optuna.storages.RDBStorage, study_id: int, *args: Any, **kwargs: Any) -> Any:
        read_from.append(study_id)
        return original(self, study_id, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "_get_trials", counting)
    table = load_trials(spec, variants=["b"], scales=["w32"], storage=storage)
    assert len(table) == 5 and set(table["variant"]) == {"b"} and set(table["scale"]) == {"w32"}
    assert set(read_from) == {ids["b", "w32"]}
    read_from.clear()
    assert load_trials(spec, variants=["a"], scales=[], storage=storage).empty
    assert read_from == []
