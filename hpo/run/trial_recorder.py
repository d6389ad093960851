"""`TrialRecorder`: Ray Tune's trial events, for one (variant, scale), turned into tracker records.

A Ray Tune callback in the driver. When a trial starts it opens the trial's
record (`hpo.store.tracker.Tracker.start_trial`) and writes the record's id
to the Optuna trial as user attribute ``run_id`` while the trial is still
RUNNING (Optuna forbids changing finished trials), so the trial table links
both stores. It gathers the curve each result carries and hands it to
`Tracker.end_trial` when the trial ends. A trial that Ray Tune runs again
after an error (the study's ``retries``) keeps its one record: the retry count
goes to the tracker and to the Optuna trial's user attribute ``retries``,
and its curve, like Optuna's, keeps the first point at each step (a retry
trains from scratch and reports the steps it already reported).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import optuna
from ray.tune import Callback
from ray.tune.experiment import Trial

from hpo.run.trainable import curve_points, trial_status
from hpo.store.tracker import CurvePoint, ScaleRecord, Tracker, TrialEnd, TrialStart
from hpo.vocab import FAILED, FinalStatus

__all__ = ["TrialRecorder", "error_line"]

logger = logging.getLogger(__name__)


class TrialRecorder(Callback):
    """Records the trials of `scale` (Optuna study `study_name` in `storage`) with `tracker`."""

    def __init__(self, tracker: Tracker, scale: ScaleRecord, storage: optuna.storages.BaseStorage,
                 study_name: str) -> None:
        self.tracker, self.scale = tracker, scale
        self.storage, self.study_name = storage, study_name
        self._records: dict[str, str] = {}
        self.errors: dict[int, str] = {}
        """The error line of each trial that failed in this run, by trial number."""
        self._curves: dict[str, list[CurvePoint]] = {}

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Open the trial's record and link it to its Optuna trial (a retry keeps its record)."""
        if trial.trial_id in self._records:
            return
        config = trial.config
        number = int(config["trial_number"])
        record = self.tracker.start_trial(self.scale, TrialStart(
            number, float(config["lr"]), int(config["batch_size"]), float(config["weight_decay"])))
        self._records[trial.trial_id] = record
        self._curves[trial.trial_id] = []
        self._set_trial_attr(number, "run_id", record)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: Mapping[str, Any],
                        **info: Any) -> None:
        """Keep the curve points the result carries (not a diverged trial's penalty, not a step seen)."""
        curve = self._curves.get(trial.trial_id)
        if curve is None:
            return
        for point in curve_points(result):
            if not curve or int(point["tokens"]) > int(curve[-1]["tokens"]):
                curve.append(point)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Count a retry of a trial that errored, in its record and its Optuna trial."""
        record = self._records.get(trial.trial_id)
        if record is None:
            return
        number, retries = int(trial.config["trial_number"]), trial.run_metadata.num_failures
        logger.warning("%s: trial %d errored (%s); retry %d of %d", self.study_name, number,
                       trial.error_file or "no error file", retries, trial.max_failures)
        self.tracker.retry_trial(record, retries)
        self._set_trial_attr(number, "retries", retries)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial, trial_status(trial.last_result, self.scale.budget_tokens))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Close the record of a trial that errored on its last attempt, with its error's last line
        (kept in `errors` too: Optuna was told the trial failed before this callback runs)."""
        error = error_line(_error_text(trial))
        if error is not None:
            self.errors[int(trial.config["trial_number"])] = error
        self._end(trial, FAILED, error)

    def flush(self) -> None:
        """Wait until the records of the trials that ended are written."""
        self.tracker.flush()

    def _end(self, trial: Trial, status: FinalStatus, error: str | None = None) -> None:
        record = self._records.pop(trial.trial_id, None)
        if record is None:
            return
        tokens_seen = (trial.last_result or {}).get("tokens")
        self.tracker.end_trial(record, TrialEnd(status, None if tokens_seen is None else int(tokens_seen),
                                                self._curves.pop(trial.trial_id), error))

    def _set_trial_attr(self, number: int, key: str, value: object) -> None:
        study_id = self.storage.get_study_id_from_name(self.study_name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(trial_id, key, value)


def _error_text(trial: Trial) -> str | None:
    """The traceback Ray Tune wrote for the trial's last error (its error file), if any."""
    path = trial.error_file
    if path is None or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def error_line(traceback: str | None) -> str | None:
    """The line of a traceback text that names the error (``ValueError: ...``): its last line that
    does not start with a space, without Ray's wrapping; None without a traceback."""
    if not traceback:
        return None
    lines = [line.strip() for line in traceback.splitlines() if line.strip() and not line[0].isspace()]
    named = [line for line in lines if ":" in line and not line.startswith(("Failure #", "Traceback"))]
    return (named or lines)[-1]
