"""The `hpo` command line. Errors print one line and exit with code 2.

Ray, Optuna and MLflow are imported inside the commands that need them, so
`hpo validate` answers in a moment.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich import progress as bars
from rich.console import Console
from rich.table import Table

from hpo.store.errors import StoreError
from hpo.study.checks import mask
from hpo.study.spec import StudySpec, load_spec
from hpo.vocab import COMPLETE, FINAL_STATUSES, format_number
from models import Progress, TrainConfig, get_family

if TYPE_CHECKING:
    import pandas as pd

    from hpo.study.compute import StudyCompute
    from models import ReportCallback

USAGE_ERROR = 2
_PASSWORD_WORD = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)
"""``password=...`` in a libpq connection string, as a driver's error may quote it."""

_PROGRESS_COLUMNS = (bars.TextColumn("{task.description}"), bars.BarColumn(), bars.MofNCompleteColumn(),
                     bars.TextColumn("{task.fields[best]}"), bars.TimeElapsedColumn())
"""A (variant, scale)'s progress bar: trials finished of planned and the best loss so far."""

stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)


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


def run(args: argparse.Namespace) -> int:
    """Run or resume a study, showing per-scale progress, then a summary table; the libraries' logs
    (Ray Tune's tracebacks of failed trials included) go to a log file under the study's output, named
    at the end when a trial failed or the run did."""
    spec = load_spec(args.study)  # a bad study file fails before Ray, Optuna and MLflow load
    from hpo.run.runner import ScaleProgress, StudyInterrupted, run_study
    from hpo.store.errors import describe_store_failure
    from hpo.store.lease import LeaseHeld

    log = _log_run(spec, verbose=args.verbose)

    def waiting(held: LeaseHeld) -> None:
        _tell(f"hpo run: waiting: {held}")

    with bars.Progress(*_PROGRESS_COLUMNS, console=stderr) as progress:
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
            _tell(f"hpo run: error: {message} (details in {log})")
            return USAGE_ERROR
    table = Table(title=f"study {spec.name}: {outcome.ran} trials run now")
    for column in ("variant", "scale", "trials", "best loss", "lr", "batch size", "weight decay"):
        table.add_column(column, justify="left" if column in ("variant", "scale") else "right")
    for scale in outcome.scales:
        best = scale.best_params
        config = _config_cells(best["lr"], best["batch_size"], best["weight_decay"]) if best else ("-",) * 3
        table.add_row(scale.variant, scale.scale, f"{scale.finished}/{scale.planned}",
                      _loss_text(scale.best_loss), *config)
    stdout.print(table)
    failing = [scale for scale in outcome.scales if scale.failed]
    for scale in failing:
        _tell(f"hpo run: {scale.variant} · {scale.scale}: {scale.failed} of {scale.finished} trials failed; "
              f"first error: {scale.first_error or 'unknown'}")
    if failing:
        _tell(f"hpo run: tracebacks in {log}")
    return 1 if any(scale.failed == scale.finished for scale in failing) else 0


def _log_run(spec: StudySpec, *, verbose: bool) -> Path:
    """Send the log records of hpo and its libraries (Ray, Optuna, MLflow) to a new file
    ``logs/run-<time>.log`` in the study's output folder, and only hpo's warnings to the terminal;
    the file's path."""
    path = spec.output_dir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(to_file)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in root.handlers:
        if handler is not to_file:
            handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
            handler.addFilter(lambda record: record.name.split(".")[0] == "hpo")
    # Importing them gives their loggers the terminal handlers replaced below (the run imports them anyway).
    import mlflow  # noqa: F401
    import optuna
    import ray  # noqa: F401

    optuna.logging.disable_default_handler()
    for library in ("ray", "ray.tune", "optuna", "mlflow", "alembic"):
        logger = logging.getLogger(library)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    ray_logger = logging.getLogger("ray")  # Ray's logger does not propagate to the root
    ray_logger.addHandler(to_file)
    ray_logger.setLevel(logging.INFO)
    return path


def _say(line: str) -> None:
    """One line to standard output, as written (no markup)."""
    stdout.print(line, markup=False, highlight=False, soft_wrap=True)


def _tell(line: str) -> None:
    """One line to the terminal's standard error, as written (no markup)."""
    stderr.print(line, markup=False, highlight=False, soft_wrap=True)


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
            config = ("-",) * 3 if best is None else _config_cells(best["lr"], best["batch_size"],
                                                                   best["weight_decay"])
            plan = attrs.get((variant.name, scale), {}).get(PLAN)
            search = "-" if plan is None else "transferred" if plan["transferred"] else "full"
            if attrs.get((variant.name, scale), {}).get(LAW_BROKEN):
                search += " (law broke)"
            if plan is not None:
                decisions.append(f"{variant.name} · {scale}: {plan['reason']}")
            planned = str(plan["trials"] if plan else spec.trials_per_scale[scale])
            table.add_row(variant.name, scale, search, planned, *done,
                          _loss_text(None if best is None else best["loss"]), *config,
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


def verify(args: argparse.Namespace) -> int:
    """Train the recommendation at a scale beyond the ladder beside its neighbours (lr ×2 and ÷2, batch
    ×2 and ÷2), on several seeds, as trials of the study; print predicted against measured."""
    spec = load_spec(args.study)
    from hpo.run.runner import ScaleProgress
    from hpo.run.verify import verify_study

    log = _log_run(spec, verbose=args.verbose)
    with bars.Progress(*_PROGRESS_COLUMNS, console=stderr) as progress:
        task = progress.add_task(f"verify · {args.scale}", total=None, best="")

        def show(update: ScaleProgress) -> None:
            best = "" if update.best_loss is None else f"best {update.best_loss:.4f}"
            progress.update(task, completed=update.finished, total=update.planned, best=best)

        verifying, report = verify_study(spec, args.scale, seeds=args.seeds, address=args.address,
                                         progress=show, wait=args.wait)
    predicted = verifying.recommendation.best
    tokens = verifying.spec.tokens(args.scale)
    _say(f"verification at {args.scale} (N = {verifying.spec.params(args.scale):,}, D = {tokens:,} tokens), "
         f"variant {predicted.variant}, {report.seeds} seeds; log {log}")
    loss = predicted.loss
    _say(f"predicted loss {loss.value:.4f} [{loss.low:.4f}, {loss.high:.4f}] at lr "
         f"{format_number(predicted.lr.value)}, batch size {predicted.batch_size_power_of_two}, weight decay "
         f"{format_number(predicted.weight_decay.value)}")
    table = Table()
    for column in ("setting", "lr", "batch size", "weight decay", "losses", "mean", "above best"):
        table.add_column(column, justify="left" if column in ("setting", "losses") else "right")
    for measured in report.measured:
        setting = measured.setting
        cells = _config_cells(setting["lr"], setting["batch_size"], setting["weight_decay"])
        table.add_row(measured.label, *cells, " ".join(f"{loss:.4f}" for loss in measured.losses),
                      f"{measured.mean:.4f}", f"{measured.mean - report.best.mean:+.4f}")
    stdout.print(table)
    verdict = "within" if report.within_noise else "NOT within"
    _say(f"the recommendation is {verdict} the seed noise of the best ({report.best.label}): seed noise "
         f"σ = {report.noise:.4f} per loss, a mean up to {report.margin:.4f} above the best is noise")
    return 0


def analyze(args: argparse.Namespace) -> int:
    """Extrapolate the study's optima to the target scale, print the recommendation and the tuning
    compute, and record it (with the plots and the trial table) as the summary run of the study's
    MLflow experiment."""
    from hpo.analysis import TRIAL_COLUMNS, extrapolate
    from hpo.analysis.plots import write_plots
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
    with tempfile.TemporaryDirectory() as scratch:
        plots = write_plots(recommendation, table[list(TRIAL_COLUMNS)], args.plots or scratch)
        if args.plots:
            for path in plots:
                stdout.print(f"wrote {path}", markup=False, highlight=False)
        if not args.no_mlflow:
            tracker = TRACKERS.get(spec.storage.tracker)(spec.storage.mlflow, spec.name,
                                                         spec.output_dir / "artifacts")
            run_id = tracker.write_summary(recommendation, table, plots)
            stdout.print(f"MLflow: summary run {run_id} of experiment {spec.name} (`hpo ui {args.study}`)",
                         markup=False, highlight=False)
    return 0


def ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI of the study's store on `args.host` until Ctrl-C; print the
    experiment's URL once the server answers."""
    from mlflow import MlflowClient

    spec = load_spec(args.study)
    experiment = MlflowClient(spec.storage.mlflow).get_experiment_by_name(spec.name)
    if experiment is None:
        raise ValueError(f"study {spec.name!r} has no MLflow experiment yet: run `hpo run {args.study}`")
    port = _free_port(args.host, args.port)
    command = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(port),
               "--workers", "1"]
    # The store's URI (a team's PostgreSQL URL holds its password) goes in the environment, which
    # other users cannot read, not on the command line, which `ps` shows everyone.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": spec.storage.mlflow,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # Its log goes to a file, not a pipe: a pipe nobody reads fills up and stalls the server.
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server too, as Ctrl-C does
        try:
            if _wait_until_up(server, f"http://{args.host}:{port}/health", UI_START_SECONDS):
                url = f"http://{args.host}:{port}/#/experiments/{experiment.experiment_id}/runs?{UI_QUERY}"
                stdout.print(f"MLflow UI for study {spec.name}: {url}  (Ctrl-C stops it)", markup=False,
                             highlight=False)
                code = server.wait()
            else:
                code = server.poll()
        except KeyboardInterrupt:
            _stop(server)
            return 0
        if code is None:  # never answered
            _stop(server)
            raise ValueError(f"the MLflow server on port {port} did not answer within {UI_START_SECONDS} s")
        log.seek(0)
        error = log.read().strip().splitlines()
    raise ValueError(f"the MLflow server exited with code {code}: {error[-1] if error else 'no message'}")


UI_QUERY = "workflowType=machine_learning"
"""Opens MLflow's UI in its model-training view (runs, params, metric charts) rather than GenAI's."""
UI_START_SECONDS = 120
"""How long `hpo ui` waits for the MLflow server to answer (it starts in ~7 s on an idle machine)."""


def _free_port(host: str, port: int | None) -> int:
    """`port` if given and free on `host`; with no port, 5000 when free, else one the system picks;
    with port 0, one the system picks. A given port in use is a usage error."""
    for candidate in ([port] if port is not None else [5000, 0]):
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise ValueError(f"--port {port}: port in use on {host}; pass another, or --port 0 to pick a free one")


def _wait_until_up(server: subprocess.Popen[str], url: str, seconds: float) -> bool:
    """True once `url` answers 200, False if `server` exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(server: subprocess.Popen[str]) -> None:
    """Stop the MLflow server (SIGTERM ends its workers with it); kill it after 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _loss_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _config_cells(lr: float, batch_size: float, weight_decay: float) -> tuple[str, str, str]:
    return format_number(lr), str(int(batch_size)), format_number(weight_decay)


def ladder(args: argparse.Namespace) -> int:
    """Train one model per scale at fixed settings and print the loss per scale."""
    from models import train

    family = get_family(args.family)
    scales = args.scales or family.scales
    for scale in scales:
        family.check_scale(scale)
    config = TrainConfig(
        lr=args.lr, batch_size=args.batch_size, tokens=args.tokens, weight_decay=args.weight_decay,
        seed=args.seed, device=args.device,
    )
    table = Table(title=f"{family.name} ladder · {args.tokens:,} tokens per scale · lr {args.lr:g}")
    for column in ("scale", "params", "non-embedding", "eval loss", "status", "seconds"):
        table.add_column(column, justify="left" if column in ("scale", "status") else "right")
    columns = (bars.TextColumn("{task.description}"), bars.BarColumn(),
               bars.TextColumn("{task.fields[loss]}"), bars.TimeElapsedColumn())
    with bars.Progress(*columns, console=stderr, transient=True) as progress:
        for scale in scales:
            task = progress.add_task(f"{scale:>6}", total=config.tokens, loss="")
            result = train(family, scale, config, report=_show_on(progress, task))
            progress.update(task, visible=False)
            count = family.param_count(scale)
            table.add_row(scale, f"{count.total:,}", f"{count.non_embedding:,}", f"{result.eval_loss:.4f}",
                          result.status, f"{result.seconds:.1f}")
    stdout.print(table)
    return 0


def _show_on(progress: bars.Progress, task: bars.TaskID) -> ReportCallback:
    def show(report: Progress) -> None:
        progress.update(task, completed=report.tokens_seen, loss=f"eval {report.eval_loss:.4f}")

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpo", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    sub = commands.add_parser("validate", help="check a study file and show the plan; writes nothing")
    sub.add_argument("study", help="path to the study YAML file")
    sub.set_defaults(handler=validate)

    sub = commands.add_parser("run", help="run or resume a study on Ray (local by default)")
    sub.add_argument("study", help="path to the study YAML file")
    sub.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local runtime)")
    sub.add_argument("--scales", type=_comma_list, help="comma-separated scales to run (default: all)")
    sub.add_argument("--variants", type=_comma_list, help="comma-separated variants to run (default: all)")
    sub.add_argument("--wait", action="store_true",
                     help="wait for another driver running some of the same scales, instead of stopping")
    sub.set_defaults(handler=run)

    sub = commands.add_parser("status", help="trials done, pruned, diverged, failed per variant and scale")
    sub.add_argument("study", help="path to the study YAML file")
    sub.set_defaults(handler=status)

    sub = commands.add_parser("trials", help="the trial table read back from the study's stores")
    sub.add_argument("study", help="path to the study YAML file")
    sub.add_argument("--csv", action="store_true", help="write CSV to standard output")
    sub.set_defaults(handler=trials)

    sub = commands.add_parser("analyze", help="extrapolate optimal settings to the target scale")
    sub.add_argument("study", help="path to the study YAML file")
    sub.add_argument("--target", type=float, help="target parameter count N (default: the study's target)")
    sub.add_argument("--target-tokens", type=float, help="target token budget D (default: from the laws)")
    sub.add_argument("--plots", help="folder to write the PNG plots into")
    sub.add_argument("--no-mlflow", action="store_true",
                     help="do not record the result as the summary run of the study's MLflow experiment")
    sub.set_defaults(handler=analyze)

    sub = commands.add_parser("verify", help="train the recommendation and its neighbours at a scale beyond "
                                             "the ladder; print predicted against measured")
    sub.add_argument("study", help="path to the study YAML file")
    sub.add_argument("--scale", required=True, help="a scale of the family beyond the ladder (the target, or "
                                                    "one you can afford)")
    sub.add_argument("--seeds", type=int, default=2, help="seeds of each setting, to tell noise (default 2)")
    sub.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local runtime)")
    sub.add_argument("--wait", action="store_true", help="wait for another driver running the same scale")
    sub.set_defaults(handler=verify)

    sub = commands.add_parser("ui", help="serve the MLflow UI of the study's store on 127.0.0.1")
    sub.add_argument("study", help="path to the study YAML file")
    sub.add_argument("--port", type=_port, help="port; 0 picks a free one (default: 5000 if free, else any)")
    sub.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    sub.set_defaults(handler=ui)

    sub = commands.add_parser("ladder", help="train each scale of a family once and print its loss")
    sub.add_argument("family", help="built-in family name (gpt, mlp) or import path module:attr")
    sub.add_argument("--scales", type=_comma_list, help="comma-separated scale names (default: all)")
    sub.add_argument("--tokens", type=int, default=200_000, help="token budget per scale")
    sub.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    sub.add_argument("--batch-size", type=int, default=32, help="sequences (examples) per step")
    sub.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    sub.set_defaults(handler=ladder)
    return parser


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535 (argparse turns the ValueError into a usage error, exit 2)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535 (0 picks a free one)")
    return int(text)


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _store_error(error: Exception) -> str | None:
    """One line for an error of a study's database or tracking store (its
    passwords masked), or None when `error` comes from elsewhere."""
    if not type(error).__module__.startswith(("sqlalchemy", "psycopg2", "mlflow")):
        return None
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else type(error).__name__
    masked = _PASSWORD_WORD.sub(r"\g<1>***", mask(text))
    return f"cannot use the study's storage ({masked})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, StoreError) as error:
        stderr.print(f"hpo {args.command}: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return USAGE_ERROR
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the reader went away, e.g. `| head`)
        return 0
    except Exception as error:
        message = _store_error(error)
        if message is None:
            raise
        stderr.print(f"hpo {args.command}: error: {message}", markup=False, highlight=False, soft_wrap=True)
        return USAGE_ERROR
    except KeyboardInterrupt:
        stderr.print("hpo: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
