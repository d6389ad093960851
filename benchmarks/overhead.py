"""Share of a study's wall time spent outside its trials' training loops.

A study of `--variants` identical variants (each its own Optuna study and
MLflow parent run: a (variant, scale) cell of a ladder), each running
`--trials` trials of the same length, of the `mlp` family (one scale, fixed
batch size, weight decay 0, the learning rate searched in a narrow range so
that TPE still samples) runs under `run_study` with `--concurrency` (2) trials
at a time, one CPU each, on a local Ray runtime with that many CPUs. The
token budget is calibrated first, with short `models.training` runs in
`--concurrency` processes side by side (one thread each, as the trials), so
that one trial trains for about `--trial-seconds`.
ASHA is kept from pruning: the grace period is one token short of the
budget, so its only rung is the final result.

Each trial's own training time is the ``seconds`` of its last result (the
time `models.training`'s loop ran, its evaluations included) less its
``report_seconds`` (the time the loop was blocked in ``tune.report``: Ray
Tune's function API holds each report until the driver takes it, so that
wait is the driver's cost, not training), read from Ray Tune's
``result.json`` files. With `--concurrency` trials at once
the ideal wall time is their sum / concurrency, and

    overhead_fraction = 1 − ideal / wall

is what Ray scheduling, worker start-up, Optuna sampling and storage, and
MLflow logging add. Ray's own start-up is a one-off, timed and reported
apart, before the study's clock starts.

    python benchmarks/overhead.py [--quick] [--variants V] [--trials N] [--trial-seconds S]

Ends with ``RESULT overhead_fraction=<x>``. Target: below 0.05 with
10-second trials on 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
import torch

from hpo.run.runner import ScaleProgress, run_study, start_ray
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.spec import StudySpec, parse_spec
from models import TrainConfig, get_family, train

FAMILY = "mlp"


@dataclass(frozen=True)
class TrialTime:
    """One trial: the last line of its ``result.json`` and when Optuna saw it end."""

    cell: str  # the trial's Optuna study, {study}/{variant}/{scale}
    number: int
    seconds: float  # time in models.training's loop (its evaluations and reports included)
    waited: float  # of which, blocked in tune.report until the driver took a result
    ray_seconds: float  # Ray's time_total_s: the trainable function, its set-up included
    tokens: int
    done: float  # wall-clock time (time.time()) the driver told Optuna the trial ended

    @property
    def loop_start(self) -> float:
        """About when the training loop started (wall clock)."""
        return self.done - self.seconds

    @property
    def training(self) -> float:
        """The trial's own training time: its loop's time, less the time blocked in reports."""
        return self.seconds - self.waited


def training_rate(scale: str, batch_size: int) -> float:
    """Tokens per second of `models.training` at `scale` on one thread (after a warm-up run)."""
    torch.set_num_threads(1)  # as in a trial: Ray gives a 1-CPU worker one OpenMP thread
    family = get_family(FAMILY)
    train(family, scale, TrainConfig(lr=1e-3, batch_size=batch_size, tokens=100 * batch_size))
    result = train(family, scale, TrainConfig(lr=1e-3, batch_size=batch_size, tokens=800 * batch_size))
    return result.tokens_seen / result.seconds


def calibrate(scale: str, batch_size: int, trial_seconds: float, concurrency: int) -> tuple[float, int]:
    """The tokens per second of one of `concurrency` processes training side by side
    (as the trials will: they share the machine's memory bandwidth), and the
    budget (a whole number of batches) that trains for `trial_seconds` at that rate."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(concurrency) as pool:
        rate = statistics.mean(pool.starmap(training_rate, [(scale, batch_size)] * concurrency))
    return rate, max(10, round(rate * trial_seconds / batch_size)) * batch_size


def study_spec(output: Path, scale: str, batch_size: int, budget: int, variants: int, trials: int,
               concurrency: int) -> StudySpec:
    return parse_spec({
        "name": "overhead", "family": FAMILY, "scales": [scale], "budget": {"tokens": budget},
        "variants": {f"v{number}": {} for number in range(1, variants + 1)},
        "space": {"lr": {"low": 1e-3, "high": 3e-3}, "batch_size": batch_size, "weight_decay": 0.0},
        "trials_per_scale": trials, "search": "independent",  # TPE at every cell, `trials` trials each
        # ASHA's only rung is at budget - 1 tokens, reached by the final result: nothing is pruned.
        "fidelity": {"grace_tokens": budget - 1, "reduction_factor": 2, "eval_every_tokens": budget // 10},
        "max_concurrent": concurrency, "resources": {"cpu": 1, "gpu": 0}, "seed": 0,
        "output": str(output),
    })


def trial_times(spec: StudySpec) -> list[TrialTime]:
    """Every trial's times: ``result.json`` files Ray Tune wrote under the
    study's output, and the trials' end times in Optuna's storage."""
    storage = optuna_storage(spec.storage.optuna)
    done = {}
    for variant in spec.variants:
        name = optuna_study_name(spec.name, variant.name, spec.scales[0])
        for trial in optuna.load_study(study_name=name, storage=storage).trials:
            if trial.datetime_complete is not None:
                done[name, trial.number] = trial.datetime_complete.timestamp()
    times = []
    for path in (spec.output_dir / "ray").glob("*/*/result.json"):
        lines = path.read_text().splitlines()
        if not lines:
            continue
        last, config = json.loads(lines[-1]), json.loads((path.parent / "params.json").read_text())
        key = (config["cell"], int(last["trial_number"]))
        times.append(TrialTime(*key, float(last["seconds"]), float(last.get("report_seconds", 0.0)),
                               float(last["time_total_s"]),
                               int(last["tokens"]), done[key]))
    return sorted(times, key=lambda trial: trial.done)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 variants of 4 trials of about 3 s")
    parser.add_argument("--variants", type=int, default=None, help="variants, each its own (variant, scale) "
                        "cell (default 4, quick 2)")
    parser.add_argument("--trials", type=int, default=None, help="trials per variant (default 16, quick 4)")
    parser.add_argument("--trial-seconds", type=float, default=None,
                        help="training time of one trial (default 10, quick 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once = Ray CPUs (1 CPU each)")
    parser.add_argument("--scale", default="w128", help="mlp scale")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    variants = args.variants or (2 if args.quick else 4)
    trials_per_variant = args.trials or (4 if args.quick else 16)
    trials = variants * trials_per_variant
    trial_seconds = args.trial_seconds or (3.0 if args.quick else 10.0)
    for name in ("ray", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rate, budget = calibrate(args.scale, args.batch_size, trial_seconds, args.concurrency)
    print(f"{FAMILY} {args.scale}, batch {args.batch_size}: {rate:,.0f} tokens/s on 1 thread in each of "
          f"{args.concurrency} processes side by side "
          f"-> budget {budget:,} tokens ({budget / rate:.1f} s)")
    print(f"{variants} variants x {trials_per_variant} trials, {args.concurrency} at a time, 1 CPU each, "
          f"Ray with {args.concurrency} CPUs")

    start = time.perf_counter()
    start_ray(num_cpus=args.concurrency)
    ray_start = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="hpo-overhead-") as folder:
        spec = study_spec(Path(folder), args.scale, args.batch_size, budget, variants, trials_per_variant,
                          args.concurrency)
        marks: list[float] = []  # the scale starts, each trial ends, the scale is done

        def progress(state: ScaleProgress) -> None:
            marks.append(time.time())

        wall_start, start = time.time(), time.perf_counter()
        outcome = run_study(spec, progress=progress)
        wall = time.perf_counter() - start
        times = trial_times(spec)
        start = time.perf_counter()
        ray.shutdown()
        ray_stop = time.perf_counter() - start

    if outcome.ran != trials or len(times) != trials or any(t.tokens < budget for t in times):
        raise SystemExit(f"expected {trials} complete trials, got {outcome.ran} run, {len(times)} with "
                         f"results, tokens {[t.tokens for t in times]}")
    train_seconds = [t.training for t in times]
    ideal = sum(train_seconds) / args.concurrency
    overhead = 1 - ideal / wall

    print(f"\n{'variant':>7} {'trial':>5} {'loop start':>10} {'loop s':>7} {'report s':>8} {'train s':>8} "
          f"{'ray s':>6} {'tok/s':>7}")
    for t in times:
        print(f"{t.cell.split('/')[1]:>7} {t.number:>5} {t.loop_start - wall_start:>10.2f} {t.seconds:>7.2f} "
              f"{t.waited:>8.2f} {t.training:>8.2f} {t.ray_seconds:>6.2f} {t.tokens / t.training:>7,.0f}")
    print(f"\n{'trials':>6} {'trial s':>8} {'wall s':>7} {'ideal s':>8} {'overhead':>8} {'ray start s':>11}")
    print(f"{trials:>6} {statistics.mean(train_seconds):>8.2f} {wall:>7.2f} {ideal:>8.2f} {overhead:>8.3f} "
          f"{ray_start:>11.2f}")

    # Phases of the wall time. Set-up: Optuna's study and MLflow's storage and parent run.
    # Start-up: Tune starts, trial actors start (a Python process importing torch, Ray Tune and
    # hpo), the first trial builds its model and optimizer. Trials: the first training loop's
    # start to the last trial's end. Tear-down: Tune exits, the best trial is logged.
    first_loop, last_done = min(t.loop_start for t in times), max(t.done for t in times)
    setup, startup = marks[0] - wall_start, first_loop - marks[0]
    phase = last_done - first_loop
    teardown = wall - (last_done - wall_start)
    idle = args.concurrency * phase - sum(train_seconds)
    print(f"\nwall {wall:.2f} s = set-up {setup:.2f} + start-up {startup:.2f} + trials {phase:.2f} "
          f"+ tear-down {teardown:.2f}")
    print(f"trial phase alone: overhead {1 - ideal / phase:.3f}, {idle / trials:.2f} CPU-s per trial "
          f"outside training ({args.concurrency} slots x {phase:.2f} s - {sum(train_seconds):.2f} s "
          "of training)")
    fixed, per_trial = setup + startup + teardown, 1 - ideal / phase
    print(f"a study of n such trials: overhead ~ 1 - (n x {ideal / trials:.2f} s) / ({fixed:.1f} s + "
          f"n x {ideal / trials:.2f} s / {1 - per_trial:.3f}); under 0.05 from n = "
          f"{_trials_for(0.05, fixed, ideal / trials, per_trial)}")
    loop_rate = statistics.mean(t.tokens / t.training for t in times)
    print(f"trials trained at {loop_rate:,.0f} tokens/s ({loop_rate / rate:.2f} x the calibration); "
          f"Ray shutdown {ray_stop:.2f} s")
    print(f"RESULT overhead_fraction={overhead:.4f}")


def _trials_for(target: float, fixed: float, ideal_per_trial: float, per_trial: float) -> str:
    """Fewest trials for which 1 - n·i / (F + n·i / (1 - p)) < `target` (F fixed seconds, i ideal
    seconds per trial, p the trial phase's overhead fraction); "never" when p alone reaches it."""
    margin = 1 / (1 - target) - 1 / (1 - per_trial)
    if margin <= 0:
        return "never (the trial phase alone is over it)"
    return str(math.ceil(fixed / (ideal_per_trial * margin)))


if __name__ == "__main__":
    main()
