"""Wall time of `hpo analyze` on a 4-scale study, and where it goes.

Issue 14's target: `hpo analyze` of a 4-scale study in at most 10 s on 2
cores. The study is `--study` (a study file whose stores exist, e.g.
``studies/weight_decay.yaml`` after ``make findings``), or by default one made
here: the `mlp` family at w8, w16, w32 and w64, `--trials` trials a scale,
4,000 examples each, run with `hpo run` on a local Ray (a minute or two, not
timed).

Two measurements in the same run, each a fresh interpreter, median of
`--repeats`:

- ``hpo analyze STUDY``, the command a user runs, its wall time;
- its stages one after the other in one process (imports, reading the trial
  table, `extrapolate`, the plots, importing MLflow and opening its store,
  writing the summary run): where the time goes, and their sum, the command's
  time had it drawn the plots before importing MLflow (as it did before it
  drew them in a forked process beside that import).

    python benchmarks/analyze_time.py [--quick] [--study FILE] [--trials N] [--repeats R]

Ends with ``RESULT analyze_seconds=<median wall>``, ``RESULT
analyze_serial_seconds=<sum of the stages>`` and ``RESULT
analyze_speedup=<serial / wall>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STAGES = """
import json, sys, tempfile, time
clock = [time.perf_counter()]
seconds = {}
def stage(name):
    clock.append(time.perf_counter())
    seconds[name] = clock[-1] - clock[-2]
from hpo.analysis import TRIAL_COLUMNS, extrapolate
from hpo.analysis.plots import write_plots
from hpo.analysis.report import format_recommendation
from hpo.store.optuna_store import optuna_storage
from hpo.store.trial_table import load_trials
from hpo.study.spec import load_spec
stage("imports")
spec = load_spec(sys.argv[1])
table = load_trials(spec, compute=True, storage=optuna_storage(spec.storage.optuna, read_only=True))
stage("trial table")
trials = table[list(TRIAL_COLUMNS)]
recommendation = extrapolate(trials, target_params=spec.target_params, searched=spec.searched_ranges())
format_recommendation(recommendation)
stage("extrapolate and report")
with tempfile.TemporaryDirectory() as scratch:
    plots = write_plots(recommendation, trials, scratch)
    stage("plots")
    from hpo.store.tracker import TRACKERS
    tracker = TRACKERS.get(spec.storage.tracker)(
        spec.storage.mlflow, spec.name, spec.output_dir / "artifacts")
    stage("MLflow import and store")
    tracker.write_summary(recommendation, table, plots)
    stage("summary run")
print(json.dumps(seconds))
"""


def make_study(folder: Path, trials: int) -> Path:
    """A 4-scale `mlp` study in `folder`, run to the end with `hpo run`; its study file."""
    study = {
        "name": "analyze_time", "family": "mlp", "family_options": {"val_examples": 256},
        "scales": ["w8", "w16", "w32", "w64"], "target": "w256", "budget": {"tokens": 4_000},
        "space": {"lr": {"low": 1e-4, "high": 0.3}, "batch_size": {"low": 8, "high": 64},
                  "weight_decay": {"low": 1e-4, "high": 0.1, "zero": True}},
        "trials_per_scale": trials, "max_concurrent": 2, "output": str(folder / "out"),
        "search": {"mode": "independent"},
    }
    path = folder / "analyze_time.yaml"
    path.write_text(yaml.safe_dump(study))
    subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(path)], cwd=folder, check=True,
                   capture_output=True)
    return path


def analyze_seconds(study: Path) -> float:
    """Wall time of one ``hpo analyze STUDY`` in a fresh interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo.cli", "analyze", str(study)], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def stage_seconds(study: Path) -> dict[str, float]:
    """Seconds of each stage of the analysis, one after the other, in a fresh interpreter (startup
    included in the first)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", STAGES, str(study)], check=True,
                          capture_output=True, text=True)
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    seconds["imports"] += time.perf_counter() - start - sum(seconds.values())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials a scale, 1 repeat")
    parser.add_argument("--study", type=Path, help="a study file whose stores exist (default: make one)")
    parser.add_argument("--trials", type=int, default=40, help="trials a scale of the study made here")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trials, repeats = (8, 1) if args.quick else (args.trials, args.repeats)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as scratch:
        study = args.study.resolve() if args.study else make_study(Path(scratch), trials)
        walls = [analyze_seconds(study) for _ in range(repeats)]
        stages = [stage_seconds(study) for _ in range(repeats)]
    median = {name: statistics.median(s[name] for s in stages) for name in stages[0]}
    print(f"study {study.name}, median of {repeats}")
    for name, seconds in median.items():
        print(f"  {name:<26} {seconds:6.2f} s")
    wall, serial = statistics.median(walls), sum(median.values())
    print(f"  {'stages in sequence':<26} {serial:6.2f} s")
    print(f"  {'hpo analyze':<26} {wall:6.2f} s  (each: {', '.join(f'{w:.2f}' for w in walls)})")
    print(f"RESULT analyze_seconds={wall:.2f}")
    print(f"RESULT analyze_serial_seconds={serial:.2f}")
    print(f"RESULT analyze_speedup={serial / wall:.2f}")


if __name__ == "__main__":
    main()
