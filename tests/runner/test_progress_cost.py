"""The progress report after each trial reads that trial only, and says what the stores hold.

Reading every trial of the cell after each trial's end (Optuna's cache also reads every running
trial again from the database each time) made the driver's cost per trial grow with the trials of
the cell (benchmarks/scale.py); the report must still count exactly what Optuna holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.run.cell import Cell
from hpo.run.runner import ScaleProgress, run_study
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.spec import parse_spec

TRIALS = 6


def test_each_trial_end_reports_from_that_trial_alone(ray_runtime: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec({
        "name": "progress_cost", "family": "mlp", "family_options": {"val_examples": 256}, "scales": ["w8"],
        "target": 1_000_000, "budget": {"tokens": 3_000}, "trials_per_scale": TRIALS, "search": "independent",
        "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": 32, "weight_decay": 0.0},
        "fidelity": {"grace_tokens": 750, "reduction_factor": 2, "eval_every_tokens": 375},
        "max_concurrent": 2, "output": str(tmp_path / "out"),
    })
    inside, bulk_reads = [False], [0]
    read_trials = optuna.storages.RDBStorage._get_trials
    trial_ended = Cell.trial_ended

    def counting_read(self: optuna.storages.RDBStorage, *args: Any, **kwargs: Any) -> Any:
        bulk_reads[0] += inside[0]
        return read_trials(self, *args, **kwargs)

    def watched(self: Cell, number: int) -> None:
        inside[0] = True
        try:
            trial_ended(self, number)
        finally:
            inside[0] = False

    monkeypatch.setattr(optuna.storages.RDBStorage, "_get_trials", counting_read)
    monkeypatch.setattr(Cell, "trial_ended", watched)
    updates: list[ScaleProgress] = []
    run_study(spec, progress=updates.append)

    assert bulk_reads[0] == 0
    counts = [update.finished for update in updates]
    assert counts[0] == 0 and counts[-1] == TRIALS
    assert list(range(1, TRIALS + 1)) == sorted(set(counts) - {0})  # one more after each trial's end
    trials = optuna.load_study(study_name=optuna_study_name(spec.name, "default", "w8"),
                               storage=optuna_storage(spec.storage.optuna)).get_trials()
    complete = [t.value for t in trials if t.value is not None
                and t.state == TrialState.COMPLETE and t.user_attrs["status"] == "complete"]
    assert complete and updates[-1].best_loss == min(complete)
    best_so_far = [update.best_loss for update in updates if update.best_loss is not None]
    assert best_so_far == sorted(best_so_far, reverse=True)
