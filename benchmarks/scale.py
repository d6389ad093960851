"""Does one driver keep up with thousands of trials? hpo against stock Ray Tune on the same workload.

One study of `--trials` trials (default 2,000; ``--quick`` 200) over `--variants` × 2 scales
(w8, w16) of `SleepyMLP`, searched by TPE at every (variant, scale) cell (``search: independent``)
under ASHA on tokens, `--concurrency` (16) trials at a time on a local Ray runtime with that many
logical CPUs. A trial of `SleepyMLP` trains an `mlp` student of a few hundred parameters for 8
steps of 32 examples on one thread (milliseconds in all) and sleeps `--step-seconds` (0.2 s)
before each step: its learning curve is real but costs nothing, so what is measured is the
orchestration: sampling, storage, scheduling, tracking.

Two stacks run the same workload, one after the other on the same Ray runtime, each store kind
(`--stores`: sqlite files, and a throwaway PostgreSQL server on 127.0.0.1 when its binaries are
installed, tests/cluster/pg_server.py):

* **hpo**: `run_study` (its leases and store cross-check included), one Tuner for every cell,
  TokenOptunaSearch and ProtectedASHA per cell, MLflow child runs written by the driver, a trial
  reporting at ASHA's rungs only.
* **stock**: per cell, a Ray Tune `Tuner` with `OptunaSearch` (the same TPE settings, persisted in
  an Optuna RDB storage of the same kind), `ASHAScheduler` on tokens (same grace, reduction factor
  and budget), `ConcurrencyLimiter`, and `ray.air.integrations.mlflow.MLflowLoggerCallback` to an
  MLflow store of the same kind; the trainable reports every evaluation, as Tune's docs do. Tune's
  CSV/JSON/TensorBoard loggers are off for both (hpo turns them off; left on, stock would pay more).

Measured, per stack: trials finished per minute, over the whole run and sustained (the last three
quarters of trials, after actors started); the driver process's CPU-seconds per finished trial in
each quarter of the trials (from the first trial's end), split by where the driver's threads spent
it (exclusive thread CPU time of wrapped calls): ``sample`` (the sampler's suggestion: TPE),
``read`` (Optuna storage reads: every trial of a study, one trial), ``tell`` (intermediate values
and final states written to Optuna), ``asha`` (the scheduler), ``mlflow`` (tracking writes and
searches), ``other`` (Ray Tune's loop, Ray's own threads, leases). Then both stores are audited:
every planned trial once in Optuna and once in MLflow, none left running (hpo: tests/store_audit.py,
the fault tests' audit; stock: trial and run counts).

    PYTHONPATH=. python benchmarks/scale.py [--quick] [--trials N] [--stores sqlite,postgres]

Ends with ``RESULT trials_per_minute`` (hpo, sustained), ``RESULT per_trial_cost_growth`` (hpo's
driver CPU per trial, last quarter / first) and ``RESULT vs_stock_throughput`` (hpo's sustained
throughput / stock's), each the worst over the stores run, then the same per store. Targets (issue
17): growth ≤ 1.5, vs stock ≥ 2, no trial lost or duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from models import Batch, MLPFamily, Split

ROOT = Path(__file__).resolve().parents[1]
FAMILY = "scale:SleepyMLP"
"""Trial processes import this file as module ``scale`` (a local runtime's workers get the driver's path)."""
SCALES = ("w8", "w16")
BATCH, STEPS = 32, 8
BUDGET = BATCH * STEPS
"""Tokens (examples) of a full trial: 8 steps; evaluated every 2 steps, ASHA rungs at 64, 128, 256."""
CATEGORIES = ("sample", "read", "tell", "asha", "mlflow")


class SleepyMLP(MLPFamily):
    """The `mlp` family whose training batches each wait `step_seconds` first: a trial lasts a fixed
    time per step while its model, a few hundred parameters, costs next to nothing to train."""

    def __init__(self, step_seconds: float = 0.2, **options: Any) -> None:
        super().__init__(**options)
        self.step_seconds = step_seconds

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        for batch in super().batches(split, batch_size, seed):
            if split == "train":
                time.sleep(self.step_seconds)
            yield batch


# --- where the driver's CPU goes ------------------------------------------------------------------

class CpuLedger:
    """Exclusive thread CPU seconds of wrapped calls by category (a call's nested wrapped calls count
    in their own category only), from every thread of this process."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, owner: type, name: str, category: str) -> None:
        original = owner.__dict__[name]
        ledger = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = ledger._stack()
            frame = [time.thread_time(), 0.0]
            stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                stack.pop()
                spent = time.thread_time() - frame[0]
                if stack:
                    stack[-1][1] += spent
                with ledger._lock:
                    ledger.totals[category] += spent - frame[1]

        timed.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(owner, name, timed)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.totals)

    def _stack(self) -> list[list[float]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack


LEDGER = CpuLedger()


def instrument() -> None:
    """Wrap the calls of both stacks that the breakdown names (no behaviour changes)."""
    import optuna.storages
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from hpo.search.searcher import TokenOptunaSearch
    from hpo.store.mlflow_tracker import MlflowTracker

    LEDGER.wrap(OptunaSearch, "suggest", "sample")
    for owner in (OptunaSearch, TokenOptunaSearch):
        LEDGER.wrap(owner, "on_trial_result", "tell")
        LEDGER.wrap(owner, "on_trial_complete", "tell")
    for name in ("get_all_trials", "_get_trials", "get_trial"):  # the SQL under Optuna's trial cache
        LEDGER.wrap(optuna.storages.RDBStorage, name, "read")
    LEDGER.wrap(ASHAScheduler, "on_trial_result", "asha")
    LEDGER.wrap(ASHAScheduler, "on_trial_complete", "asha")
    for name in ("start_scale", "reconcile", "start_trial", "retry_trial", "_end_run", "end_scale",
                 "recorded"):
        LEDGER.wrap(MlflowTracker, name, "mlflow")
    for name in ("setup", "log_trial_start", "log_trial_result", "log_trial_end"):
        LEDGER.wrap(MLflowLoggerCallback, name, "mlflow")


@dataclass
class Clock:
    """One sample per finished trial: its cell, wall time, the process's CPU seconds, the ledger; and
    when each cell started (stock: its Tuner; hpo: the run)."""

    cell: list[str] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    ledger: list[dict[str, float]] = field(default_factory=list)
    cell_starts: dict[str, float] = field(default_factory=dict)

    def tick(self, cell: str) -> None:
        self.cell.append(cell)
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.ledger.append(LEDGER.snapshot())

    def within_cells(self) -> list[float]:
        """Driver CPU seconds per trial in each quarter of its own cell's trials (the CPU between two
        trials' ends counted to the later trial), all cells together."""
        spent, counts, seen = [0.0] * 4, [0] * 4, Counter[str]()
        totals = Counter(self.cell)
        for index, cell in enumerate(self.cell):
            quarter = min(3, 4 * seen[cell] // totals[cell])
            seen[cell] += 1
            if index:
                spent[quarter] += self.cpu[index] - self.cpu[index - 1]
                counts[quarter] += 1
        return [s / max(1, c) for s, c in zip(spent, counts, strict=True)]

    def startup(self) -> float:
        """Seconds from each cell's start to its first finished trial, summed over cells."""
        first = {}
        for cell, wall in zip(self.cell, self.wall, strict=True):
            first.setdefault(cell, wall)
        return sum(first[cell] - start for cell, start in self.cell_starts.items() if cell in first)


@dataclass(frozen=True)
class Quarter:
    trials: int
    per_minute: float
    cpu_per_trial: float
    parts: dict[str, float]  # CPU seconds per trial by category, "other" included


@dataclass(frozen=True)
class StackResult:
    stack: str
    store: str
    trials: int
    wall: float
    per_minute: float  # the whole run, set-up included
    sustained: float  # the last three quarters of finished trials
    quarters: tuple[Quarter, ...]
    within_cells: tuple[float, ...]  # driver CPU s per trial by quarter of each cell's own trials
    startup: float
    audit: str
    clean: bool

    @property
    def growth(self) -> float:
        return self.quarters[-1].cpu_per_trial / self.quarters[0].cpu_per_trial

    @property
    def within_cell_growth(self) -> float:
        return self.within_cells[-1] / self.within_cells[0]


def summarise(stack: str, store: str, clock: Clock, started: float, audit: str, clean: bool) -> StackResult:
    n = len(clock.wall)
    bounds = [0] + [round(n * k / 4) - 1 for k in range(1, 5)]  # sample indices: first end, quarter ends
    quarters = []
    for a, b in itertools.pairwise(bounds):
        trials = b - a
        cpu = clock.cpu[b] - clock.cpu[a]
        parts = {c: (clock.ledger[b].get(c, 0.0) - clock.ledger[a].get(c, 0.0)) / trials for c in CATEGORIES}
        parts["other"] = cpu / trials - sum(parts.values())
        quarters.append(Quarter(trials, 60 * trials / (clock.wall[b] - clock.wall[a]), cpu / trials, parts))
    wall = clock.wall[-1] - started
    first = bounds[1]
    sustained = 60 * (n - 1 - first) / (clock.wall[-1] - clock.wall[first])
    return StackResult(stack, store, n, wall, 60 * n / wall, sustained, tuple(quarters),
                       tuple(clock.within_cells()), clock.startup(), audit, clean)


# --- the two stacks ---------------------------------------------------------------------------------

def study_data(name: str, output: Path, trials: int, variants: int, concurrency: int, step_seconds: float,
               storage: dict[str, str]) -> dict[str, Any]:
    per_cell = trials // (variants * len(SCALES))
    return {
        "name": name, "family": FAMILY,
        "family_options": {"step_seconds": step_seconds, "val_examples": 64},
        "scales": list(SCALES), "target": 1_000_000, "budget": {"tokens": BUDGET},
        "variants": {f"v{number}": {} for number in range(1, variants + 1)},
        "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": BATCH,
                  "weight_decay": {"low": 1e-4, "high": 0.1}},
        "trials_per_scale": per_cell, "search": "independent",
        "fidelity": {"grace_tokens": BUDGET // 4, "reduction_factor": 2, "eval_every_tokens": BUDGET // 4},
        "max_concurrent": concurrency, "resources": {"cpu": 1, "gpu": 0}, "seed": 0,
        "output": str(output), "storage": storage, "retries": 0,
    }


def run_ours(data: dict[str, Any], folder: Path, store: str) -> StackResult:
    from store_audit import audit

    from hpo.run.runner import ScaleProgress, run_study
    from hpo.study.spec import load_spec

    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    clock, seen = Clock(), Counter[tuple[str, str]]()

    def progress(update: ScaleProgress) -> None:
        key = (update.variant, update.scale)
        for _ in range(update.finished - seen[key]):
            clock.tick(f"{update.variant}/{update.scale}")
        seen[key] = max(seen[key], update.finished)

    started = time.perf_counter()
    clock.cell_starts["v1/w8"] = started
    run_study(spec, progress=progress)
    result = audit(path)
    text = (f"planned {result.planned}, finished {result.finished}, lost {result.lost}, duplicated "
            f"{result.duplicated}, left running {result.running_optuna} (Optuna) {result.running_mlflow} "
            "(MLflow)")
    planned = data["trials_per_scale"] * len(spec.variants) * len(SCALES)
    return summarise("hpo", store, clock, started, text, result.clean() and result.planned == planned)


def stock_trainable(config: dict[str, Any]) -> None:
    """A trial as Tune's docs write one: train, report every evaluation."""
    from models import TrainConfig, get_family, train

    family = get_family(FAMILY, step_seconds=config["step_seconds"], val_examples=64)

    def report(progress: Any) -> None:
        tune.report({"loss": progress.eval_loss, "tokens": progress.tokens_seen})

    train(family, config["scale"], TrainConfig(lr=config["lr"], batch_size=BATCH, tokens=BUDGET,
                                               weight_decay=config["weight_decay"],
                                               eval_every_tokens=BUDGET // 4, seed=0), report=report)


class Ticks(tune.Callback):
    """Ticks `clock` once per finished trial of the stock Tuner of `cell`."""

    def __init__(self, clock: Clock, cell: str) -> None:
        self.clock, self.cell = clock, cell

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.clock.tick(self.cell)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.clock.tick(self.cell)


def run_stock(data: dict[str, Any], folder: Path, store: str, optuna_url: str,
              mlflow_url: str) -> StackResult:
    import optuna
    from mlflow import MlflowClient
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    per_cell = data["trials_per_scale"]
    kwargs = {"engine_kwargs": {"connect_args": {"timeout": 30}}} if optuna_url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(optuna_url, **kwargs)
    clock = Clock()

    cells = [(variant, scale) for variant in data["variants"] for scale in SCALES]
    started = time.perf_counter()
    for variant, scale in cells:
        name = f"{data['name']}/{variant}/{scale}"
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=max(2, per_cell // 3))
        search = OptunaSearch(metric="loss", mode="min", study_name=name, storage=storage, sampler=sampler)
        tuner = tune.Tuner(
            tune.with_resources(stock_trainable, {"cpu": 1}),
            param_space={"lr": tune.loguniform(1e-3, 0.3), "weight_decay": tune.loguniform(1e-4, 0.1),
                         "scale": scale, "step_seconds": data["family_options"]["step_seconds"]},
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(search, max_concurrent=data["max_concurrent"]),
                scheduler=ASHAScheduler(time_attr="tokens", metric="loss", mode="min", max_t=BUDGET,
                                        grace_period=BUDGET // 4, reduction_factor=2),
                num_samples=per_cell, reuse_actors=True),
            run_config=tune.RunConfig(
                name=name.replace("/", "."), storage_path=str(folder / "ray"), verbose=0,
                callbacks=[Ticks(clock, f"{variant}/{scale}"),
                           MLflowLoggerCallback(tracking_uri=mlflow_url, experiment_name=data["name"],
                                                tags={"variant": variant, "scale": scale},
                                                save_artifact=False)]),
        )
        clock.cell_starts[f"{variant}/{scale}"] = time.perf_counter()
        tuner.fit()

    # Audit: every planned trial once in Optuna, once in MLflow, none left running.
    expected = per_cell * len(cells)
    counted = running = 0
    for variant, scale in cells:
        name = f"{data['name']}/{variant}/{scale}"
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        counted += sum(t.state.is_finished() for t in trials)
        running += sum(not t.state.is_finished() for t in trials)
    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name(data["name"])
    runs = [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=50_000)
    live = sum(run.info.status == "RUNNING" for run in runs)
    text = (f"planned {expected}, finished {counted} (Optuna), {len(runs)} MLflow runs, left running "
            f"{running} (Optuna) {live} (MLflow)")
    clean = counted == expected == len(runs) and running == live == 0
    return summarise("stock", store, clock, started, text, clean)


# --- stores, report -------------------------------------------------------------------------------

@contextlib.contextmanager
def stores(kind: str, folder: Path) -> Iterator[Callable[[str], tuple[str, str]]]:
    """Yield `urls(stack)`: the Optuna and MLflow URLs of one stack in a fresh store of `kind`."""
    if kind == "sqlite":
        def sqlite_urls(stack: str) -> tuple[str, str]:
            (folder / stack).mkdir(parents=True, exist_ok=True)
            return (f"sqlite:///{folder / stack / 'optuna.db'}",
                    f"sqlite:///{folder / stack / 'mlflow.db'}")

        yield sqlite_urls
        return
    from pg_server import postgres_server

    with postgres_server(password=f"pw-{secrets.token_hex(8)}") as server:
        def postgres_urls(stack: str) -> tuple[str, str]:
            for store in ("optuna", "mlflow"):
                server.create_database(f"{stack}_{store}")
            return server.url(f"{stack}_optuna"), server.url(f"{stack}_mlflow")

        yield postgres_urls


def show(result: StackResult) -> None:
    print(f"\n{result.stack} · {result.store}: {result.trials} trials in {result.wall:.0f} s, "
          f"{result.per_minute:.0f}/min overall, {result.sustained:.0f}/min sustained (last 3 quarters)")
    print(f"  audit: {result.audit} -> {'clean' if result.clean else 'NOT CLEAN'}")
    print(f"  {result.startup:.0f} s from the start of each Tuner (hpo: one; stock: one per cell) to its "
          "first finished trial, in all")
    header = "".join(f"{c:>8}" for c in (*CATEGORIES, "other"))
    print(f"  {'quarter':>7} {'trials':>6} {'per min':>8} {'CPU ms/trial':>12} |{header}  (ms/trial)")
    for index, quarter in enumerate(result.quarters, start=1):
        parts = "".join(f"{1000 * quarter.parts[c]:>8.1f}" for c in (*CATEGORIES, "other"))
        print(f"  {index:>7} {quarter.trials:>6} {quarter.per_minute:>8.0f} "
              f"{1000 * quarter.cpu_per_trial:>12.1f} |{parts}")
    print(f"  driver CPU per trial, last quarter / first: {result.growth:.2f}")
    cells = " ".join(f"{1000 * cost:.1f}" for cost in result.within_cells)
    print(f"  within each cell, by quarter of its own trials: {cells} ms/trial "
          f"(last / first {result.within_cell_growth:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 trials (default 2,000)")
    parser.add_argument("--trials", type=int, default=None, help="trials of the study, over all its cells")
    parser.add_argument("--variants", type=int, default=4, help="variants (x 2 scales = cells)")
    parser.add_argument("--concurrency", type=int, default=16, help="trials at once = Ray's logical CPUs")
    parser.add_argument("--step-seconds", type=float, default=0.2, help="sleep before each of 8 steps")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--stacks", default="hpo,stock", help="hpo, stock or both")
    args = parser.parse_args()
    trials = args.trials or (200 if args.quick else 2_000)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "cluster")]  # store_audit, pg_server
    for name in ("ray", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import optuna
    import ray
    from pg_server import server_binaries

    from hpo.run.runner import start_ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # both stacks: no CSV/JSON/TensorBoard copies
    instrument()
    kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    if "postgres" in kinds and server_binaries() is None:
        print("PostgreSQL server binaries not found (.ci/install_postgres.sh): sqlite only")
        kinds.remove("postgres")
    cells = args.variants * len(SCALES)
    print(f"{trials} trials = {cells} cells x {trials // cells}, {args.concurrency} at a time; a trial: "
          f"{STEPS} steps of {args.step_seconds} s (ASHA rungs at {BUDGET // 4}, {BUDGET // 2}, {BUDGET} "
          "tokens)")
    start = time.perf_counter()
    start_ray(num_cpus=args.concurrency)
    print(f"Ray runtime with {args.concurrency} logical CPUs started in {time.perf_counter() - start:.1f} "
          f"s on {os.cpu_count()} cores")

    results: dict[tuple[str, str], StackResult] = {}
    try:
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix="hpo-scale-") as temp, stores(kind, Path(temp)) as urls:
                folder = Path(temp)
                for stack in [s.strip() for s in args.stacks.split(",")]:
                    optuna_url, mlflow_url = urls(stack)
                    data = study_data(f"scale_{stack}", folder / stack, trials, args.variants,
                                      args.concurrency, args.step_seconds,
                                      {"optuna": optuna_url, "mlflow": mlflow_url})
                    if stack == "hpo":
                        result = run_ours(data, folder, kind)
                    else:
                        result = run_stock(data, folder / stack, kind, optuna_url, mlflow_url)
                    results[stack, kind] = result
                    show(result)
    finally:
        ray.shutdown()

    lines = []
    for kind in kinds:
        ours, stock = results.get(("hpo", kind)), results.get(("stock", kind))
        if ours is not None:
            lines += [(f"trials_per_minute_{kind}", ours.sustained),
                      (f"per_trial_cost_growth_{kind}", ours.growth),
                      (f"within_cell_cost_growth_{kind}", ours.within_cell_growth)]
        if ours is not None and stock is not None:
            lines.append((f"vs_stock_throughput_{kind}", ours.sustained / stock.sustained))
    print()
    names = ("trials_per_minute", "per_trial_cost_growth", "vs_stock_throughput", "within_cell_cost_growth")
    for name in names:
        values = [value for key, value in lines if key.startswith(name)]
        if values:
            worst = max(values) if name.endswith("growth") else min(values)
            print(f"RESULT {name}={worst:.4f}")
    for key, value in lines:
        print(f"RESULT {key}={value:.4f}")
    if not all(result.clean for result in results.values()):
        raise SystemExit("a stack lost or duplicated trials, or left some running: see the audits above")


if __name__ == "__main__":
    # Run as module `scale`, the name trial processes import it by: Tune then pickles this file's
    # trainable and callbacks by reference, not by value (with the ledger's lock).
    sys.path.insert(0, str(Path(__file__).parent))
    import scale

    scale.main()
