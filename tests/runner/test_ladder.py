"""One Tuner for a whole run: every (variant, scale) shares the trial actors, in ladder order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_runner import optuna_trials, small_ladder

from hpo.run.runner import StudyOutcome, run_study
from hpo.study.spec import StudySpec


@dataclass
class Ran:
    spec: StudySpec
    outcome: StudyOutcome
    results: list[dict[str, object]]  # the last result of each trial, from Ray Tune's result.json


@pytest.fixture(scope="module")
def ran(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """Two variants × two scales, scale-aware, three trials each, two at a time."""
    spec = small_ladder(tmp_path_factory.mktemp("ladder"), variants={"a": {}, "b": {"weight_decay": 0}},
                        search={"mode": "scale_aware", "first_scales_factor": 1}, max_concurrent=2)
    outcome = run_study(spec)
    results = [json.loads(path.read_text().splitlines()[-1])
               for path in Path(spec.output_dir, "ray").glob("*/*/result.json")]
    return Ran(spec, outcome, results)


def test_every_cell_runs_its_planned_trials(ran: Ran) -> None:
    assert [(o.variant, o.scale, o.planned, o.finished, o.ran) for o in ran.outcome.scales] == [
        ("a", "w8", 3, 3, 3), ("a", "w32", 3, 3, 3), ("b", "w8", 3, 3, 3), ("b", "w32", 3, 3, 3)]
    assert len(ran.results) == 12


def test_one_tuner_runs_every_cell(ran: Ran) -> None:
    assert len(list(Path(ran.spec.output_dir, "ray").iterdir())) == 1


def test_trial_processes_are_reused_across_cells(ran: Ran) -> None:
    """Two trials at a time: Ray started two trial actors for the twelve trials of four cells."""
    assert len({result["pid"] for result in ran.results}) <= 2


def test_a_scale_starts_after_every_trial_of_its_smaller_scale_ended(ran: Ran) -> None:
    """Scale-aware search plans w32 from w8's trials; the other variant fills the gap."""
    for variant in ("a", "b"):
        smaller_ended = max(t.datetime_complete for t in optuna_trials(ran.spec, "w8", variant))
        larger_started = min(t.datetime_start for t in optuna_trials(ran.spec, "w32", variant))
        assert larger_started >= smaller_ended
