"""The trial table of a study, read from its Optuna storage: the input of `hpo.analysis`.

`load_trials` reads every (variant, scale)'s Optuna study
(`hpo.store.optuna_store`) into one row per finished trial of every (variant, scale) of the study, with the
columns of the trial-record contract (`TRIAL_COLUMNS`): ``params`` is the
scale's non-embedding parameter count N, ``tokens`` its token budget D,
``tokens_seen`` how far the trial got, ``lr``/``batch_size``/``weight_decay``
what it trained with, ``loss`` its last eval loss (NaN if it never reported
one), ``status`` complete / pruned / diverged / failed, ``run_id`` its MLflow
child run ("" if none). Trials interrupted by a killed driver (run again on
resume), and trials not finished yet, are left out. `load_curves` reads the
same trials' eval-loss curves, one row per evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from hpo.analysis.trials import TRIAL_COLUMNS
from hpo.search.sampling import trial_params
from hpo.store.optuna_store import FINISHED_STATES, finished_status, optuna_storage, optuna_study_name
from hpo.study.spec import StudySpec, load_spec
from hpo.vocab import COMPLETE, INTERRUPTED

__all__ = ["COMPUTE_COLUMNS", "CURVE_COLUMNS", "load_curves", "load_trials"]

COMPUTE_COLUMNS = ("flops", "seconds")
"""Extra columns of `load_trials(..., compute=True)`: training FLOPs (the
family's `train_flops` of the tokens seen) and seconds in the training loop."""
CURVE_COLUMNS = ("variant", "scale", "trial_number", "tokens_seen", "loss")
"""Columns of `load_curves`: one row per evaluation of a trial."""



def load_trials(study: StudySpec | str | Path, *, variants: Sequence[str] | None = None,
                scales: Sequence[str] | None = None, compute: bool = False,
                storage: optuna.storages.BaseStorage | None = None) -> pd.DataFrame:
    """Every finished trial of `study` (a spec, or the path of its study file),
    one row each; only of `variants` and `scales` when given; with the
    `COMPUTE_COLUMNS` when `compute`. `storage` is the study's Optuna storage
    when the caller holds it open already (opening one costs tens of milliseconds)."""
    spec = study if isinstance(study, StudySpec) else load_spec(study)
    family = spec.load_family() if compute else None
    rows = []
    for variant, scale, trial in _finished_trials(spec, variants, scales, storage):
        extra = {} if family is None else {
            "flops": family.train_flops(scale, int(trial.user_attrs.get("tokens_seen", 0))),
            "seconds": float(trial.user_attrs.get("seconds", math.nan))}
        rows.append({
            "study": spec.name, "variant": variant, "scale": scale,
            "params": spec.params(scale), "tokens": spec.tokens(scale),
            "tokens_seen": int(trial.user_attrs.get("tokens_seen", 0)),
            **trial_params(trial), "seed": int(trial.user_attrs.get("seed", spec.seed)),
            "loss": _loss(trial),
            "status": finished_status(trial),
            "trial_number": trial.number, "run_id": trial.user_attrs.get("run_id", ""), **extra,
        })
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS) + (list(COMPUTE_COLUMNS) if compute else []))


def load_curves(spec: StudySpec, *, variants: Sequence[str] | None = None,
                scales: Sequence[str] | None = None,
                storage: optuna.storages.BaseStorage | None = None) -> pd.DataFrame:
    """The eval-loss curves of the trials `load_trials` reads: one row per evaluation, columns
    `CURVE_COLUMNS` (``tokens_seen`` the tokens trained on before it, ``loss`` its eval loss), as Optuna
    holds them (intermediate values at step = tokens; `hpo.search.searcher`)."""
    rows = [{"variant": variant, "scale": scale, "trial_number": trial.number, "tokens_seen": float(step),
             "loss": float(loss)}
            for variant, scale, trial in _finished_trials(spec, variants, scales, storage)
            for step, loss in sorted(trial.intermediate_values.items())]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _finished_trials(spec: StudySpec, variants: Sequence[str] | None, scales: Sequence[str] | None,
                     storage: optuna.storages.BaseStorage | None) -> Iterator[tuple[str, str, FrozenTrial]]:
    """(variant, scale, trial) of every finished trial of `spec` not interrupted by a killed driver, only
    of `variants` and `scales` when given."""
    storage = storage or optuna_storage(spec.storage.optuna)
    # The names only: Optuna's study summaries read every trial of every study in the store (a driver
    # loads a table when each (variant, scale) opens and closes: its cost grew with the whole store).
    existing = {frozen.study_name for frozen in storage.get_all_studies()}
    for variant in spec.variants:
        if variants is not None and variant.name not in variants:
            continue
        for scale in spec.scales if scales is None else [s for s in spec.scales if s in scales]:
            name = optuna_study_name(spec.name, variant.name, scale)
            if name not in existing:
                continue
            optuna_study = optuna.load_study(study_name=name, storage=storage)
            for trial in optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES):
                if trial.user_attrs.get("status") != INTERRUPTED:
                    yield variant.name, scale, trial


def _loss(trial: FrozenTrial) -> float:
    """The last eval loss: the told value of a complete trial, else its last
    intermediate value (a diverged trial's penalty is not an eval loss)."""
    if trial.value is not None and trial.user_attrs.get("status", COMPLETE) == COMPLETE:
        return float(trial.value)
    if trial.last_step is not None:
        return float(trial.intermediate_values[trial.last_step])
    return math.nan
