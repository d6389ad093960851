"""`hpo ladder`: train each scale of a family once at fixed settings and print its loss."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich import progress as bars
from rich.table import Table

from models import Progress, TrainConfig, get_family

if TYPE_CHECKING:

    from models import ReportCallback

from hpo.cli.output import stderr, stdout


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
