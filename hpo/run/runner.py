"""Run a study: every variant, every scale smallest first, searched by one Ray Tune `Tuner`.

Each (variant, scale) is a `hpo.run.cell.Cell` (its docstring: the Optuna
study, the plan, the repair of what a killed driver left, the tracker's
records). One Tuner runs them all (`hpo.run.ladder.Ladder` routes each trial
to its cell), so its trial actors start once per run, not once per scale.
Trials run in Ray: a local runtime unless `address` (or ``RAY_ADDRESS``)
names a cluster, whose workers must have ``hpo`` and the study's model
family installed.

Resuming is the default: running a study again runs only the trials still
missing; a (variant, scale) whose planned trials all finished is skipped.

A trial whose node or process died, or whose code raised, runs again up to
the study's ``retries`` times (Ray Tune's `FailureConfig`), from scratch, as
the same Optuna trial and tracker record. Several drivers may share one study's
stores (PostgreSQL) when each runs its own variants; two drivers must not run
the same (variant, scale) at once: each would take the other's running trials
for interrupted ones. The Optuna store is opened before Ray starts, so one
that cannot be reached fails at once; the tracker's store opens (a new MLflow
one runs its schema migrations) while Ray starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search import ConcurrencyLimiter

from hpo.run.cell import Cell, ProgressCallback, ScaleOutcome, ScaleProgress
from hpo.run.ladder import Ladder, LadderCallback, LadderScheduler, LadderSearch
from hpo.run.trainable import run_trial
from hpo.store.cross_check import check_stores_agree
from hpo.store.lease import LeaseHeld, Leases
from hpo.store.optuna_store import optuna_storage, optuna_study_name, stored_trials
from hpo.store.tracker import TRACKERS
from hpo.study.spec import StudySpec

__all__ = ["ProgressCallback", "ScaleOutcome", "ScaleProgress", "StudyInterrupted", "StudyOutcome",
           "run_study", "start_ray"]

_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's environment switch of a node's address: the loopback address where it is 0."""


class StudyInterrupted(RuntimeError):
    """The run was stopped (Ctrl+C) before a (variant, scale) had all its
    trials; running the study again resumes it."""


@dataclass(frozen=True)
class StudyOutcome:
    """Every (variant, scale) of a `run_study` call, variant by variant, smallest scale first."""

    study: str
    scales: tuple[ScaleOutcome, ...]

    @property
    def ran(self) -> int:
        """Trials run by this call."""
        return sum(outcome.ran for outcome in self.scales)


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Start Ray unless it is running: connect to `address` (default
    ``$RAY_ADDRESS``), else start a new local runtime with `num_cpus` CPUs
    (default: all), even where another runtime runs on this machine. True
    when this call started it. A local runtime serves this machine only: its
    GCS, raylet and workers listen on 127.0.0.1 (`_loopback_only`), and its
    dashboard, if Ray starts one at all, too.

    A local runtime's workers get the driver's own import path (its folders
    outside the Python installation), so a family named by import path that
    the driver can import, the trials can import too. On a cluster, install
    ``hpo`` and the family on every node instead.
    """
    # Ray's newer console output prints an experiment table even at verbose=0; the classic one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return False
    # "local": a runtime of its own, never one found running on this machine (Ray's default joins that).
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    local = address == "local"
    runtime_env = {"env_vars": {"PYTHONPATH": _driver_path()}} if local else None
    with _loopback_only() if local else contextlib.nullcontext():
        ray.init(address=address, num_cpus=num_cpus, runtime_env=runtime_env, log_to_driver=False,
                 logging_level=logging.getLogger("ray").getEffectiveLevel(),
                 include_dashboard=False, dashboard_host="127.0.0.1")
    return True


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """A Ray runtime started inside takes 127.0.0.1 as its node address, so its processes listen there
    only. By default Ray picks the address other machines reach this one at and listens on every
    interface, guarded by its token alone; it takes the loopback address where
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is 0 (read by this process when it imported Ray, and by the
    runtime's processes from the environment they start with). Both are restored afterwards, so a later
    connection to a cluster is unaffected."""
    from ray._private import ray_constants

    saved = os.environ.get(_CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_SWITCH], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        if saved[0] is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = saved[0]


def _driver_path() -> str:
    """The driver's import path outside the Python installation (``$PYTHONPATH``
    included: Python put it on `sys.path`), as a PYTHONPATH."""
    installed = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    folders = [str(Path(entry or os.getcwd()).absolute()) for entry in sys.path]
    kept = [folder for folder in folders if Path(folder).is_dir() and not folder.startswith(installed)]
    return os.pathsep.join(dict.fromkeys(kept))


def run_study(
    spec: StudySpec,
    *,
    address: str | None = None,
    scales: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    wait: bool = False,
    on_wait: Callable[[LeaseHeld], None] | None = None,
) -> StudyOutcome:
    """Run (or resume) `spec`: every variant, every scale smallest first.

    `scales` and `variants` restrict the run to those names (`ValueError` for
    an unknown one). First takes the lease of every (variant, scale) it runs
    (`hpo.store.lease`): `LeaseHeld` names the driver that runs one of them,
    unless `wait`, which waits for it (calling `on_wait`). Then checks that the
    Optuna store and the tracker hold the same trials (`StoresDisagree`
    otherwise, before anything is written). Starts Ray with
    `start_ray(address)` unless it is running; a runtime started here is shut
    down at the end. Raises `StudyInterrupted` when Ctrl+C stopped the run
    (Ray Tune catches the first one and ends the search early; the next one
    raises KeyboardInterrupt).
    """
    chosen_variants = [spec.variant(name) for name in variants] if variants else list(spec.variants)
    chosen_scales = [scale for scale in spec.scales if scales is None or scale in scales]
    for scale in scales or ():
        spec.params(scale)  # raises ValueError naming the valid scales
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna_storage(spec.storage.optuna)  # a store that cannot be used fails before Ray starts
    leases = Leases(storage.engine)
    leases.acquire([optuna_study_name(spec.name, variant.name, scale)
                    for variant in chosen_variants for scale in chosen_scales], wait=wait, on_wait=on_wait)
    started = False
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-store") as pool:
            # A new MLflow store runs its schema migrations (seconds): done while Ray starts.
            opening = pool.submit(TRACKERS.get(spec.storage.tracker), spec.storage.mlflow, spec.name,
                                  spec.output_dir / "artifacts")
            started = start_ray(address)
        tracker = opening.result()
        cells = [Cell(spec, variant.name, scale, storage, tracker, progress)
                 for variant in chosen_variants for scale in chosen_scales]
        for cell in cells:
            check_stores_agree(cell.name, stored_trials(storage, cell.name),
                               tracker.recorded(cell.scale_record()), optuna_url=spec.storage.optuna,
                               tracker_uri=spec.storage.mlflow)
        ladder = Ladder(cells, after_smaller=spec.search.plans_from_smaller_scales)
        if ladder.advance():
            _tuner(spec, ladder).fit()
        ladder.close_finished()
        _raise_if_interrupted(cells)
    finally:
        leases.release()
        if started:
            ray.shutdown()
    return StudyOutcome(spec.name, tuple(cell.outcome for cell in cells if cell.outcome is not None))


def _tuner(spec: StudySpec, ladder: Ladder) -> tune.Tuner:
    """One Tuner for every trial of the run: the ladder's searcher, at most
    ``max_concurrent`` trials at once, its scheduler and callbacks; actors are reused.

    Of Ray Tune's default loggers only the JSON one runs (each trial's
    ``result.json`` under the study's ``ray/`` folder, for debugging a trial):
    the CSV and TensorBoard copies of the same results cost the driver time
    on every result, and MLflow holds them already.
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    jobs = {cell.name: cell.job() for cell in ladder.cells}
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    if spec.resources.memory_gb is not None:  # Ray then places a trial only where that much is free
        resources["memory"] = spec.resources.memory_bytes()
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, jobs=jobs), resources),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(LadderSearch(ladder), max_concurrent=spec.max_concurrent),
            scheduler=LadderScheduler(ladder), num_samples=-1, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{spec.name}.{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(spec.output_dir / "ray"),
            callbacks=[LadderCallback(ladder), JsonLoggerCallback()], verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
        ),
    )


def _raise_if_interrupted(cells: Sequence[Cell]) -> None:
    """End the parent runs of the cells the run left unfinished (Tune returns
    normally after Ctrl+C or SIGUSR1) and raise `StudyInterrupted` naming the first."""
    unfinished = [cell for cell in cells if cell.outcome is None]
    if not unfinished:
        return
    for cell in unfinished:
        cell.interrupt()
    first = unfinished[0]
    done = f"{first.finished()} of {first.planned} trials finished" if first.is_open else "not started"
    raise StudyInterrupted(f"{first.name}: {done} before the run was interrupted; "
                           "run the study again to resume")
