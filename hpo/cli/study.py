"""The commands that read a study: `hpo validate` (its plan), `hpo status`, `hpo trials`, `hpo analyze`."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from rich.table import Table

from hpo.study.spec import StudySpec, load_spec
from hpo.vocab import COMPLETE, FINAL_STATUSES

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from hpo.analysis import Recommendation
    from hpo.study.compute import StudyCompute

from hpo.cli.output import config_cells, loss_text, say, stdout


def validate(args: argparse.Namespace) -> int:
    """Check a study file and print what it would run, per scale and variant: the trials its search
    strategy plans and how (as planned when the smaller scales go as expected); write nothing."""
    import pandas as pd

    from hpo.search.strategy import ScaleToPlan

    spec = load_spec(args.study)
    table = Table(title=f"study {spec.name} · family {spec.family} · target N = {spec.target_params:.3g} · "
                        f"search {spec.search.name}")
    for column in ("scale", "params N", "tokens D", *(f"{v.name}: trials" for v in spec.variants)):
        table.add_column(column, justify="left" if column == "scale" else "right")
    for index, scale in enumerate(spec.scales):
        cells = []
        for variant in spec.variants:
            how, trials = spec.search.preview(ScaleToPlan(
                name=scale, scale=scale, params=spec.params(scale), tokens=spec.tokens(scale),
                space=variant.space, trials=spec.trials_per_scale[scale], history=pd.DataFrame(),
                previous_law_broken=False, cost_ratio=spec.cost_ratio(scale), seed=spec.seed), index)
            cells.append(f"{trials} ({how})")
        table.add_row(scale, f"{spec.params(scale):,}", f"{spec.tokens(scale):,}", *cells)
    stdout.print(table)
    stdout.print(f"output: {spec.output_dir}")
    return 0


def status(args: argparse.Namespace) -> int:
    """Per variant and scale: how it is searched, trials done, pruned, diverged
    and failed, the best loss and its config, its compute; then the study's
    compute against one target run and each search decision."""
    from hpo.store.optuna_store import LAW_BROKEN, PLAN, load_study_attrs, optuna_storage
    from hpo.store.trial_table import load_trials

    spec = load_spec(args.study)
    storage = optuna_storage(spec.storage.optuna, read_only=True)
    trials = load_trials(spec, compute=True, storage=storage)
    attrs = load_study_attrs(spec, storage)
    table = Table(title=f"study {spec.name}")
    for column in ("variant", "scale", "search", "planned", *FINAL_STATUSES,
                   "best loss", "lr", "batch size", "weight decay", "FLOPs"):
        table.add_column(column, justify="left" if column in ("variant", "scale", "search") else "right")
    decisions = []
    for variant in spec.variants:
        for scale in spec.scales:
            rows = trials[(trials["variant"] == variant.name) & (trials["scale"] == scale)]
            counts = rows["status"].value_counts()
            complete = rows[rows["status"] == COMPLETE]
            best = complete.sort_values("loss").iloc[0] if len(complete) else None
            done = (str(counts.get(name, 0)) for name in FINAL_STATUSES)
            config = ("-",) * 3 if best is None else config_cells(best["lr"], best["batch_size"],
                                                                   best["weight_decay"])
            plan = attrs.get((variant.name, scale), {}).get(PLAN)
            search = "-" if plan is None else "transferred" if plan["transferred"] else "full"
            if attrs.get((variant.name, scale), {}).get(LAW_BROKEN):
                search += " (law broke)"
            if plan is not None:
                decisions.append(f"{variant.name} · {scale}: {plan['reason']}")
            planned = str(plan["trials"] if plan else spec.trials_per_scale[scale])
            table.add_row(variant.name, scale, search, planned, *done,
                          loss_text(None if best is None else best["loss"]), *config,
                          f"{rows['flops'].sum():.3g}")
    stdout.print(table)
    for line in decisions:
        stdout.print(line, markup=False, highlight=False)
    stdout.print(_compute(spec, trials).summary(), markup=False, highlight=False)
    return 0


def _compute(spec: StudySpec, trials: pd.DataFrame) -> StudyCompute:
    from hpo.study.compute import study_compute, target_flops

    devices = spec.resources.gpu or spec.resources.cpu
    return study_compute(trials, devices_per_trial=devices,
                         target=target_flops(spec.target_params, spec.target_tokens))


def trials(args: argparse.Namespace) -> int:
    """The study's trial table, one row per trial, as a table or as CSV."""
    from hpo.store.optuna_store import optuna_storage
    from hpo.store.trial_table import load_trials

    spec = load_spec(args.study)
    table = load_trials(spec, storage=optuna_storage(spec.storage.optuna, read_only=True))
    if args.csv:
        table.to_csv(sys.stdout, index=False)
    else:
        stdout.print(table.to_string(index=False))
    return 0


def analyze(args: argparse.Namespace) -> int:
    """Extrapolate the study's optima to the target scale, print the recommendation and the tuning
    compute, and record it (with the plots and the trial table) as the summary run of the study's
    MLflow experiment."""
    from hpo.analysis import TRIAL_COLUMNS, extrapolate
    from hpo.analysis.report import format_recommendation
    from hpo.store.optuna_store import optuna_storage
    from hpo.store.tracker import TRACKERS
    from hpo.store.trial_table import load_trials

    spec = load_spec(args.study)
    table = load_trials(spec, compute=True, storage=optuna_storage(spec.storage.optuna, read_only=True))
    target = args.target or spec.target_params
    recommendation = extrapolate(table[list(TRIAL_COLUMNS)], target_params=target,
                                 target_tokens=args.target_tokens, searched=spec.searched_ranges())
    stdout.print(format_recommendation(recommendation), markup=False, highlight=False)
    stdout.print(_compute(spec, table).summary(), markup=False, highlight=False)
    trials = table[list(TRIAL_COLUMNS)]
    with tempfile.TemporaryDirectory() as scratch, _beside() as plotter:
        drawing = plotter.submit(_write_plots, recommendation, trials, args.plots or scratch)
        tracker = None if args.no_mlflow else TRACKERS.get(spec.storage.tracker)(
            spec.storage.mlflow, spec.name, spec.output_dir / "artifacts")
        plots = drawing.result()
        if args.plots:
            for path in plots:
                stdout.print(f"wrote {path}", markup=False, highlight=False)
        if tracker is not None:
            run_id = tracker.write_summary(recommendation, table, plots)
            stdout.print(f"MLflow: summary run {run_id} of experiment {spec.name} (`hpo ui {args.study}`)",
                         markup=False, highlight=False)
    return 0


def _beside() -> Executor:
    """Where `hpo analyze` draws its plots: a forked process, so that matplotlib's import and the drawing
    run while this one imports MLflow and opens its store (each 2-3 s of a 4-scale study's analysis on 2
    cores); a thread of this process where fork is not available."""
    if "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(max_workers=1)


def _write_plots(recommendation: Recommendation, trials: pd.DataFrame, directory: str) -> list[Path]:
    """`hpo.analysis.plots.write_plots`, imported where it runs (`_beside`)."""
    from hpo.analysis.plots import write_plots

    return write_plots(recommendation, trials, directory)


def backtest(args: argparse.Namespace) -> int:
    """Hold each model size of a sweep out in turn, fit the rest, and judge the prediction at the held-out
    size against its own runs: regrets, the reuse-best baseline, interval coverage, time per fit."""
    from hpo.analysis.trials import parse_renames, read_trials
    from hpo.evaluation.backtest import run_backtest
    from hpo.evaluation.backtest_report import format_backtest

    trials = read_trials(args.trials, rename=parse_renames(args.rename))
    report = run_backtest(trials, method=args.method, n_bootstrap=args.bootstrap, seed=args.seed)
    say(format_backtest(report))
    return 0
