"""The commands that train: `hpo run` (a study on Ray) and `hpo verify` (a recommendation past the ladder)."""

from __future__ import annotations

import argparse
import logging
import math
from typing import TYPE_CHECKING

from rich import progress as bars
from rich.table import Table

from hpo.store.errors import StoreError
from hpo.study.spec import load_spec
from hpo.vocab import format_number

if TYPE_CHECKING:

    pass

from hpo.cli.output import (
    PROGRESS_COLUMNS,
    USAGE_ERROR,
    config_cells,
    log_run,
    loss_text,
    say,
    stderr,
    stdout,
    tell,
)


def run(args: argparse.Namespace) -> int:
    """Run or resume a study, showing per-scale progress, then a summary table; the libraries' logs
    (Ray Tune's tracebacks of failed trials included) go to a log file under the study's output, named
    at the end when a trial failed or the run did."""
    spec = load_spec(args.study)  # a bad study file fails before Ray, Optuna and MLflow load
    from hpo.run.runner import ScaleProgress, StudyInterrupted, run_study
    from hpo.store.errors import describe_store_failure
    from hpo.store.lease import LeaseHeld

    log = log_run(spec, verbose=args.verbose)

    def waiting(held: LeaseHeld) -> None:
        tell(f"hpo run: waiting: {held}")

    with bars.Progress(*PROGRESS_COLUMNS, console=stderr) as progress:
        tasks: dict[tuple[str, str], bars.TaskID] = {}

        def show(update: ScaleProgress) -> None:
            key = (update.variant, update.scale)
            if key not in tasks:
                label = f"{update.variant} · {update.scale}"
                tasks[key] = progress.add_task(label, total=update.planned, best="")
            best = "" if update.best_loss is None else f"best {update.best_loss:.4f}"
            progress.update(tasks[key], completed=update.finished, total=update.planned, best=best)

        try:
            outcome = run_study(spec, address=args.address, scales=args.scales, variants=args.variants,
                                progress=show, wait=args.wait, on_wait=waiting)
        except StudyInterrupted:
            stderr.print(f"hpo run: interrupted; `hpo run {args.study}` resumes it", markup=False)
            return 130
        except StoreError:
            raise  # already one line that names the store and the fix
        except Exception as error:
            message = describe_store_failure(error, optuna_url=spec.storage.optuna,
                                             tracker_uri=spec.storage.mlflow, output_dir=spec.output_dir)
            if message is None:
                raise
            logging.getLogger("hpo").debug("the run failed", exc_info=error)
            tell(f"hpo run: error: {message} (details in {log})")
            return USAGE_ERROR
    table = Table(title=f"study {spec.name}: {outcome.ran} trials run now")
    for column in ("variant", "scale", "trials", "best loss", "lr", "batch size", "weight decay"):
        table.add_column(column, justify="left" if column in ("variant", "scale") else "right")
    for scale in outcome.scales:
        best = scale.best_params
        config = config_cells(best["lr"], best["batch_size"], best["weight_decay"]) if best else ("-",) * 3
        table.add_row(scale.variant, scale.scale, f"{scale.finished}/{scale.planned}",
                      loss_text(scale.best_loss), *config)
    stdout.print(table)
    failing = [scale for scale in outcome.scales if scale.failed]
    for scale in failing:
        tell(f"hpo run: {scale.variant} · {scale.scale}: {scale.failed} of {scale.finished} trials failed; "
              f"first error: {scale.first_error or 'unknown'}")
    if failing:
        tell(f"hpo run: tracebacks in {log}")
    return 1 if any(scale.failed == scale.finished for scale in failing) else 0


def verify(args: argparse.Namespace) -> int:
    """Train the recommendation at a scale beyond the ladder beside its neighbours (lr ×2 and ÷2, batch
    ×2 and ÷2), on several seeds, as trials of the study; print predicted against measured."""
    spec = load_spec(args.study)
    from hpo.run.runner import ScaleProgress
    from hpo.run.verify import verify_study

    log = log_run(spec, verbose=args.verbose)
    with bars.Progress(*PROGRESS_COLUMNS, console=stderr) as progress:
        task = progress.add_task(f"verify · {args.scale}", total=None, best="")

        def show(update: ScaleProgress) -> None:
            best = "" if update.best_loss is None else f"best {update.best_loss:.4f}"
            progress.update(task, completed=update.finished, total=update.planned, best=best)

        verifying, report = verify_study(spec, args.scale, seeds=args.seeds, address=args.address,
                                         progress=show, wait=args.wait)
    predicted = verifying.recommendation.best
    tokens = verifying.spec.tokens(args.scale)
    say(f"verification at {args.scale} (N = {verifying.spec.params(args.scale):,}, D = {tokens:,} tokens), "
         f"variant {predicted.variant}, {report.seeds} seeds; log {log}")
    loss = predicted.loss
    predicted_loss = "no predicted loss (no loss law fitted; `hpo analyze` says why)"
    if math.isfinite(loss.value):
        predicted_loss = f"predicted loss {loss.value:.4f} [{loss.low:.4f}, {loss.high:.4f}]"
    say(f"{predicted_loss} at lr "
         f"{format_number(predicted.lr.value)}, batch size {predicted.batch_size_power_of_two}, weight decay "
         f"{format_number(predicted.weight_decay.value)}")
    for beyond in verifying.recommendation.out_of_range:
        say(f"warning: {beyond.describe()}")
    table = Table()
    for column in ("setting", "lr", "batch size", "weight decay", "losses", "mean", "above best"):
        table.add_column(column, justify="left" if column in ("setting", "losses") else "right")
    for measured in report.measured:
        setting = measured.setting
        cells = config_cells(setting["lr"], setting["batch_size"], setting["weight_decay"])
        table.add_row(measured.label, *cells, " ".join(f"{loss:.4f}" for loss in measured.losses),
                      f"{measured.mean:.4f}", f"{measured.mean - report.best.mean:+.4f}")
    stdout.print(table)
    if not report.trained:
        say(f"no setting trained to a finite loss at {args.scale}: every one diverged or failed on some "
            f"seed; do not use this recommendation (its trials' errors are in {log})")
        return 1
    if not math.isfinite(report.noise):
        say(f"the seed noise is unknown: no setting finished on all {report.seeds} seeds; the "
            f"recommendation is {report.recommended.mean - report.best.mean:+.4f} from the best "
            f"({report.best.label})")
        return 0
    verdict = "within" if report.within_noise else "NOT within"
    say(f"the recommendation is {verdict} the seed noise of the best ({report.best.label}): seed noise "
         f"σ = {report.noise:.4f} per loss, a mean up to {report.margin:.4f} above the best is noise")
    run_it = report.to_run
    if run_it is not None:
        setting = run_it.setting
        lr, batch_size, weight_decay = config_cells(setting["lr"], setting["batch_size"],
                                                    setting["weight_decay"])
        say(f"to run at {args.scale}: {run_it.label}, lr {lr}, batch size {batch_size}, weight decay "
            f"{weight_decay}")
    return 0
