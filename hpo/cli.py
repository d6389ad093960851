"""The `hpo` command line. Errors print one line and exit with code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from rich import progress as bars
from rich.console import Console
from rich.table import Table

from hpo.spec import load_spec
from models import Progress, ReportCallback, TrainConfig, get_family, train

USAGE_ERROR = 2

stdout = Console()
stderr = Console(stderr=True)


def validate(args: argparse.Namespace) -> int:
    """Check a study file and print what it would run; write nothing."""
    spec = load_spec(args.study)
    table = Table(title=f"study {spec.name} · family {spec.family} · target N = {spec.target_params:.3g}")
    for column in ("scale", "params N", "tokens D", "trials"):
        table.add_column(column, justify="left" if column == "scale" else "right")
    for scale in spec.scales:
        table.add_row(scale, f"{spec.params(scale):,}", f"{spec.tokens(scale):,}",
                      str(spec.trials_per_scale[scale]))
    stdout.print(table)
    stdout.print(f"variants: {', '.join(v.name for v in spec.variants)}")
    stdout.print(f"output: {spec.output_dir}")
    return 0


def ladder(args: argparse.Namespace) -> int:
    """Train one model per scale at fixed settings and print the loss per scale."""
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


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ValueError, FileNotFoundError) as error:
        stderr.print(f"hpo {args.command}: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return USAGE_ERROR
    except KeyboardInterrupt:
        stderr.print("hpo: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
