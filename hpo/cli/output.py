"""What the command line prints: consoles, one-line messages, table cells, progress bars, the run's log."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich import progress as bars
from rich.console import Console

from hpo.study.spec import StudySpec
from hpo.vocab import format_number

if TYPE_CHECKING:

    pass



USAGE_ERROR = 2

PROGRESS_COLUMNS = (bars.TextColumn("{task.description}"), bars.BarColumn(), bars.MofNCompleteColumn(),
                     bars.TextColumn("{task.fields[best]}"), bars.TimeElapsedColumn())
"""A (variant, scale)'s progress bar: trials finished of planned and the best loss so far."""

stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)


def say(line: str) -> None:
    """One line to standard output, as written (no markup)."""
    stdout.print(line, markup=False, highlight=False, soft_wrap=True)


def tell(line: str) -> None:
    """One line to the terminal's standard error, as written (no markup)."""
    stderr.print(line, markup=False, highlight=False, soft_wrap=True)


def loss_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def config_cells(lr: float, batch_size: float, weight_decay: float) -> tuple[str, str, str]:
    return format_number(lr), str(int(batch_size)), format_number(weight_decay)


class RunLogFile(logging.FileHandler):
    """The run's log file, which drops a record it cannot write (its disk full) instead of printing
    logging's "--- Logging error ---" traceback to the terminal: the run's own error says what failed,
    in one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        return None


def log_run(spec: StudySpec, *, verbose: bool) -> Path:
    """Send the log records of hpo and its libraries (Ray, Optuna, MLflow) to a new file
    ``logs/run-<time>.log`` in the study's output folder, and only hpo's warnings to the terminal;
    the file's path."""
    path = spec.output_dir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = RunLogFile(path)
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
        if not logger.propagate:  # left without a handler, logging's last resort would print to stderr
            logger.addHandler(to_file)
    logging.getLogger("ray").setLevel(logging.INFO)
    return path
