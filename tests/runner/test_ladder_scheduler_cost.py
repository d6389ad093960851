"""`LadderScheduler.choose_trial_to_run` makes FIFO's choice from the live trials alone.

Ray's `FIFOScheduler` scans every trial of the run at each step of Tune's loop; with one Tuner for
a whole study of thousands of trials that made the driver's cost per trial grow with the trials run
so far (benchmarks/scale.py).
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from hpo.run.ladder import LadderScheduler

STATUSES = (Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR)


class FakeTrial:
    """What the scheduler reads of a trial (hashable by identity, as Tune's are)."""

    def __init__(self, trial_id: str, status: str) -> None:
        self.trial_id, self.status, self.config = trial_id, status, {"cell": "c"}


class Controller:
    """What a scheduler sees of Tune's controller: every trial in the order added, the live ones."""

    def __init__(self, trials: list[Any]) -> None:
        self.trials = trials
        self.scans = 0

    def get_trials(self) -> list[Any]:
        self.scans += 1
        return self.trials

    def get_live_trials(self) -> set[Any]:
        return {trial for trial in self.trials if trial.status != Trial.TERMINATED}


def test_the_choice_is_fifos_without_scanning_every_trial() -> None:
    cell = SimpleNamespace(scheduler=FIFOScheduler())
    ladder: Any = SimpleNamespace(cell=lambda name: cell)
    draw = random.Random(0)
    for _ in range(200):
        trials: list[Any] = [FakeTrial(f"t{number}", draw.choice(STATUSES))
                             for number in range(draw.randint(0, 40))]
        scheduler = LadderScheduler(ladder)
        controller = Controller(trials)
        for trial in trials:
            scheduler.on_trial_add(controller, trial)
        chosen = scheduler.choose_trial_to_run(controller)
        assert controller.scans == 0
        assert chosen is FIFOScheduler().choose_trial_to_run(controller)  # type: ignore[arg-type]
