"""`Ladder`: every (variant, scale) of a run searched by one Ray Tune `Tuner`.

One Tuner for the whole run keeps its trial actors (a Python process that
imports torch and Ray Tune, seconds each) alive from the first trial of the
first scale to the last trial of the last: a Tuner per (variant, scale) paid
that start-up once per scale. The ladder hands Tune three routers, each
sending a trial to its `hpo.run.cell.Cell` by the ``cell`` key of its config:

* `LadderSearch` (a Tune `Searcher`) suggests the next trial of the first
  open cell with trials left, opening cells in order (variant by variant,
  smallest scale first) as earlier ones have handed out all their trials. In
  ``scale_aware`` search a cell opens only after every smaller scale of its
  variant has closed, since its plan is made from their trials; meanwhile
  another variant's cells keep the workers busy. It closes each cell whose
  trials have all ended, and says FINISHED when no cell has trials left.
* `LadderScheduler` runs each cell's own `ProtectedASHA` (token budgets differ by scale).
* `LadderCallback` calls each cell's callbacks (MLflow child runs, progress).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from hpo.run.cell import Cell
from hpo.run.trainable import CELL

__all__ = ["Ladder", "LadderCallback", "LadderScheduler", "LadderSearch"]

class Ladder:
    """The cells of one run, in run order, and the walk over them.

    `after_smaller`: a cell opens only once every smaller scale of its variant
    has closed (``scale_aware`` search plans a scale from the ones before it).
    """

    def __init__(self, cells: Sequence[Cell], *, after_smaller: bool) -> None:
        self.cells = list(cells)
        self.after_smaller = after_smaller
        self._by_name = {cell.name: cell for cell in self.cells}
        self._live: dict[str, int] = {cell.name: 0 for cell in self.cells}
        self._cell_of_trial: dict[str, Cell] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its configuration into the experiment folder for its own
        # restore, which hpo does not use (a run resumes from the Optuna and MLflow stores).
        return {"cells": [], "after_smaller": self.after_smaller, "_by_name": {}, "_live": {},
                "_cell_of_trial": {}}

    def cell(self, name: str) -> Cell:
        return self._by_name[name]

    def advance(self) -> bool:
        """Close the open cells whose trials have all ended, open the cells that
        may start (a cell without trials left closes at once); True while a
        cell has trials left to suggest or may still open."""
        for cell in self.cells:
            if cell.outcome is not None:
                continue
            if not cell.is_open and self._may_open(cell):
                cell.open()
            if cell.is_open and self._live[cell.name] == 0 and cell.is_done():
                cell.close()
        return any(cell.outcome is None and (not cell.is_open or cell.to_suggest > 0) for cell in self.cells)

    def close_finished(self) -> None:
        """Close the open cells whose trials have all ended (after the Tuner returns)."""
        for cell in self.cells:
            if cell.outcome is None and cell.is_open and cell.is_done():
                cell.close()

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next trial's config with its ``cell``; `Searcher.FINISHED` when no
        cell has trials left; None while the next cells wait for smaller scales."""
        if not self.advance():
            return Searcher.FINISHED
        for cell in self.cells:
            if cell.outcome is None and cell.is_open and cell.to_suggest > 0:
                config = cell.suggest(trial_id)
                if config is not None:
                    self._cell_of_trial[trial_id] = cell
                    self._live[cell.name] += 1
                    return {**config, CELL: cell.name}
        return None

    def cell_of_trial(self, trial_id: str) -> Cell:
        return self._cell_of_trial[trial_id]

    def trial_ended(self, trial_id: str) -> None:
        self._live[self._cell_of_trial[trial_id].name] -= 1

    def _may_open(self, cell: Cell) -> bool:
        """Whether `cell` may open now: no open cell still has trials to hand
        out, and (`after_smaller`) every smaller scale of its variant has closed."""
        if any(other.is_open and other.outcome is None and other.to_suggest > 0 for other in self.cells):
            return False
        if not self.after_smaller:
            return True
        index = self.cells.index(cell)
        return all(other.outcome is not None for other in self.cells[:index] if other.variant == cell.variant)


class LadderSearch(Searcher):
    """Ray Tune searcher over a `Ladder`: each trial's results go to its cell's `TokenOptunaSearch`."""

    def __init__(self, ladder: Ladder) -> None:
        super().__init__(metric="loss", mode="min")
        self.ladder = ladder

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True  # every cell's searcher minimises ``loss`` already

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # pyright: ignore[reportIncompatibleMethodOverride]
        # Ray's annotation leaves out the `Searcher.FINISHED` string that its docs and its loop accept.
        return self.ladder.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._searcher(trial_id).on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self._searcher(trial_id).on_trial_complete(trial_id, result=result, error=error)
        self.ladder.trial_ended(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a run resumes from the Optuna store, not from Tune's checkpoint."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""

    def _searcher(self, trial_id: str) -> Searcher:
        searcher = self.ladder.cell_of_trial(trial_id).searcher
        assert searcher is not None
        return searcher


class LadderScheduler(FIFOScheduler):
    """Ray Tune scheduler over a `Ladder`: each trial is judged by its cell's
    `ProtectedASHA`; trials start in the order they were suggested."""

    def __init__(self, ladder: Ladder) -> None:
        super().__init__()
        self.ladder = ladder
        self._order: dict[str, int] = {}  # trial id -> the order Tune added it in

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """FIFO's choice (the first trial added that is PENDING, else the first PAUSED), looked for
        among the live trials only: `FIFOScheduler` scans every trial of the run, twice when none
        waits, at each step of Tune's loop, a cost per step that grew with the run's trials."""
        live = tune_controller.get_live_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [trial for trial in live if trial.status == status]
            if waiting:
                return min(waiting, key=lambda trial: self._order.get(trial.trial_id, math.inf))
        return None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # every cell's ASHA is on ``loss`` (min) over ``tokens`` already

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._order.setdefault(trial.trial_id, len(self._order))
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._asha(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "ASHA on tokens, one per (variant, scale)."

    def _asha(self, trial: Trial) -> TrialScheduler:
        scheduler = self.ladder.cell(trial.config[CELL]).scheduler
        assert scheduler is not None
        return scheduler


class LadderCallback(Callback):
    """Ray Tune callback over a `Ladder`: calls the callbacks of each trial's cell."""

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        for callback in self._callbacks(trial):
            callback.on_trial_start(iteration, trials, trial, **info)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any],
                        **info: Any) -> None:
        for callback in self._callbacks(trial):
            callback.on_trial_result(iteration, trials, trial, result, **info)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        for callback in self._callbacks(trial):
            callback.on_trial_recover(iteration, trials, trial, **info)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        for callback in self._callbacks(trial):
            callback.on_trial_complete(iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        for callback in self._callbacks(trial):
            callback.on_trial_error(iteration, trials, trial, **info)

    def _callbacks(self, trial: Trial) -> list[Callback]:
        return self.ladder.cell(trial.config[CELL]).callbacks
