"""Do the Optuna store and the tracker hold the same trials of a (variant, scale)? Checked before a run.

A study's memory is its Optuna store; its tracker mirrors it. When one of
them was emptied, replaced or restored from another day's backup, resuming
would run the study again beside its own records (every trial twice in
MLflow), or leave records that no trial backs. So before a run writes
anything, each (variant, scale) it will run is compared: a tracker record
whose trial number the Optuna study does not hold at all, or a finished
Optuna trial that counts and is linked to a record (user attribute
``run_id``) that the tracker no longer holds, stops the run with `StoresDisagree`, naming both stores and
what to do. Records of trials a killed driver left behind (interrupted, or
told but not closed) are not a disagreement: `hpo.store.tracker.Tracker.reconcile`
mends them when the scale opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from optuna.trial import FrozenTrial

from hpo.store.errors import StoresDisagree
from hpo.study.checks import mask
from hpo.vocab import INTERRUPTED

__all__ = ["check_stores_agree"]


def check_stores_agree(name: str, trials: Sequence[FrozenTrial], recorded: Mapping[int, str], *,
                       optuna_url: str, tracker_uri: str) -> None:
    """Raise `StoresDisagree` when the trials of Optuna study `name` (`trials`) and the tracker's
    records of it (`recorded`: trial number → status) do not describe the same trials."""
    numbers = {trial.number for trial in trials}
    orphans = sorted(set(recorded) - numbers)
    if orphans:
        raise StoresDisagree(
            f"{name}: the tracker at {mask(tracker_uri)} holds {len(orphans)} trial record(s) "
            f"({_numbers(orphans)}) that the Optuna store at {mask(optuna_url)} does not; restore the Optuna "
            "store, or move the study's output (both stores) away to start it afresh")
    lost = sorted(trial.number for trial in trials
                  if trial.state.is_finished() and trial.user_attrs.get("status") != INTERRUPTED
                  and "run_id" in trial.user_attrs and trial.number not in recorded)
    if lost:
        raise StoresDisagree(
            f"{name}: the Optuna store at {mask(optuna_url)} holds {len(lost)} finished trial(s) "
            f"({_numbers(lost)}) whose records the tracker at {mask(tracker_uri)} lost; restore the "
            "tracker's store, or move the study's output (both stores) away to start it afresh")


def _numbers(numbers: Sequence[int], shown: int = 5) -> str:
    listed = ", ".join(str(number) for number in numbers[:shown])
    return f"trials {listed}" + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")
