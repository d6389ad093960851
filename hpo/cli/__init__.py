"""The `hpo` command line. Errors print one line and exit with code 2.

Ray, Optuna and MLflow are imported inside the commands that need them, so
`hpo validate` answers in a moment.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence

from hpo.cli.ladder import ladder
from hpo.cli.output import USAGE_ERROR, stderr
from hpo.cli.running import run, verify
from hpo.cli.study import analyze, backtest, status, trials, validate
from hpo.cli.ui import ui
from hpo.store.errors import StoreError
from hpo.study.checks import mask

__all__ = ["build_parser", "main"]

_PASSWORD_WORD = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)
"""``password=...`` in a libpq connection string, as a driver's error may quote it."""


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

    sub = commands.add_parser("backtest", help="hold each model size of a sweep out, predict it from the "
                                               "rest, and judge the prediction against its own runs")
    sub.add_argument("trials", help="CSV trial table (columns: params, tokens, lr, batch_size, loss, ...)")
    sub.add_argument("--rename", default="", help="FROM=TO column renames, comma separated (e.g. N=params)")
    sub.add_argument("--method", default="auto", help="auto, near_best, surface, joint or blend")
    sub.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates of each fit")
    sub.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    sub.set_defaults(handler=backtest)

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
