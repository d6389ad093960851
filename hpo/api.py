"""The Python API: the calls a notebook makes, over a study file or a spec built in code.

    >>> import hpo
    >>> spec = hpo.load_spec("studies/quickstart.yaml")   # or hpo.parse_spec({...}) from a dict
    >>> outcome = hpo.run_study(spec)           # a local Ray runtime; address="ray://..." for a cluster
    >>> table = hpo.load_trials(spec)           # the trial table, a pandas DataFrame
    >>> rec = hpo.analyze(spec)                 # the recommendation at the study's target
    >>> rec.lr.value, rec.batch_size_power_of_two, rec.warnings    # doctest: +SKIP

`hpo.extrapolate` takes a trial table (a DataFrame or CSV, anyone's sweep)
or a study file. Each call takes a `StudySpec` or the path of a study file.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hpo.analysis import Recommendation
from hpo.analysis import extrapolate as extrapolate_trials
from hpo.study.spec import StudySpec, load_spec

if TYPE_CHECKING:
    from hpo.run.runner import StudyOutcome

__all__ = ["analyze", "extrapolate", "load_trials", "run_study"]

StudyLike = StudySpec | str | PathLike[str]
"""A validated spec, or the path of a study file."""

_STUDY_SUFFIXES = (".yaml", ".yml")


def run_study(study: StudyLike, *, address: str | None = None, scales: Sequence[str] | None = None,
              variants: Sequence[str] | None = None, wait: bool = False) -> StudyOutcome:
    """Run (or resume) `study` on Ray (`hpo.run.runner.run_study`): a local runtime, or the cluster at
    `address`; only `scales` and `variants` when given; `wait` for another driver running some of
    the same scales instead of raising `hpo.store.lease.LeaseHeld`. Returns its `StudyOutcome`."""
    from hpo.run import runner

    return runner.run_study(_spec(study), address=address, scales=scales, variants=variants, wait=wait)


def load_trials(study: StudyLike, *, compute: bool = False) -> pd.DataFrame:
    """The study's trial table, one row per finished trial (`hpo.store.trial_table.load_trials`),
    read from its Optuna store without writing to it; with the FLOPs and seconds columns when `compute`."""
    from hpo.store.optuna_store import optuna_storage
    from hpo.store.trial_table import load_trials as read

    spec = _spec(study)
    return read(spec, compute=compute, storage=optuna_storage(spec.storage.optuna, read_only=True))


def analyze(study: StudyLike, *, target_params: float | None = None, target_tokens: float | None = None,
            **options: Any) -> Recommendation:
    """The recommendation for `study`'s target (or `target_params` N, `target_tokens` D) from its
    trials, each extrapolation checked against the ranges its variants searched; `options` go to
    `hpo.analysis.extrapolate`."""
    spec = _spec(study)
    return extrapolate_trials(load_trials(spec), target_params=target_params or spec.target_params,
                              target_tokens=target_tokens, searched=spec.searched_ranges(), **options)


def extrapolate(trials_or_study: pd.DataFrame | str | PathLike[str], *, target_params: float | None = None,
                **options: Any) -> Recommendation:
    """`hpo.analysis.extrapolate` of a trial table (a DataFrame, or a CSV file), or `analyze` of a
    study file (``.yaml``); `target_params` defaults to the study's target and is required otherwise."""
    if isinstance(trials_or_study, str | PathLike) and Path(trials_or_study).suffix in _STUDY_SUFFIXES:
        return analyze(trials_or_study, target_params=target_params, **options)
    if target_params is None:
        raise ValueError("target_params is required for a trial table: give N, the large run's size")
    return extrapolate_trials(trials_or_study, target_params=target_params, **options)


def _spec(study: StudyLike) -> StudySpec:
    return study if isinstance(study, StudySpec) else load_spec(study)
