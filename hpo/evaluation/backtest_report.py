"""A backtest (`backtest.run_backtest`) as plain-text tables: one per fold, then the summary figures."""

from __future__ import annotations

from collections.abc import Callable

from hpo.analysis.report import text_table, with_interval
from hpo.evaluation.backtest import LEAVE_LARGEST_OUT, LEAVE_ONE_OUT, PREDICTED, BacktestReport, Fold
from hpo.vocab import format_number


def format_backtest(report: BacktestReport) -> str:
    """Every fold's held-out cells (prediction with its intervals, regrets of every method, coverage),
    then the figures that sum the backtest up."""
    lines = [
        f"Backtest of method '{report.method}': regret in % of each held-out cell's best loss "
        "(local surface | nearest run); an interval covers (yes) when it holds a trial within "
        f"{100 * report.tolerance:.2g}% of that best"
    ]
    for fold in report.folds:
        lines += ["", f"{fold.variant}, {fold.name} ({fold.seconds:.2f} s)", *_fold_table(fold)]
    summary = text_table(["figure", LEAVE_LARGEST_OUT, LEAVE_ONE_OUT, "all"], _summary(report))
    lines += ["", "Summary", *summary]
    return "\n".join(lines)


def _fold_table(fold: Fold) -> list[str]:
    methods = list(fold.cells[0].settings)
    rows = [
        [
            format_number(cell.tokens),
            f"{with_interval(cell.predicted_lr)} {_yes(cell.lr_covered)}",
            f"{with_interval(cell.predicted_batch_size)} {_yes(cell.batch_size_covered)}",
            *(f"{cell.regret_local_pct[m]:+.3f} | {cell.regret_nearest_pct[m]:+.3f}" for m in methods),
        ]
        for cell in fold.cells
    ]
    return text_table(["D", "lr [interval] covers", "batch size [interval] covers", *methods], rows)


def _summary(report: BacktestReport) -> list[list[str]]:
    kinds = [kind for kind in (LEAVE_LARGEST_OUT, LEAVE_ONE_OUT, None) if kind is None or report.cells(kind)]

    def row(name: str, figure: str, value: Callable[[str | None], float]) -> list[str]:
        by_kind = {kind: figure.format(value(kind)) for kind in kinds}
        return [name, *(by_kind.get(kind, "-") for kind in (LEAVE_LARGEST_OUT, LEAVE_ONE_OUT, None))]

    return [
        row("worst regret % (local)", "{:.3f}", lambda k: report.worst_regret_pct("local", k)),
        row("worst regret % (nearest)", "{:.3f}", lambda k: report.worst_regret_pct("nearest", k)),
        row("mean regret % (local)", "{:.3f}", lambda k: report.mean_regret_pct(PREDICTED, "local", k)),
        row("beats reuse_best (local)", "{:.2f}", report.beats_reuse_share),
        row("interval coverage", "{:.2f}", report.coverage),
        row("median lr interval high/low", "{:.2f}", report.median_lr_interval_ratio),
        row("seconds per fit", "{:.2f}", lambda k: _seconds(report, k)),
    ]


def _seconds(report: BacktestReport, kind: str | None) -> float:
    folds = [fold.seconds for fold in report.folds if kind in (None, fold.kind)]
    return sum(folds) / len(folds)


def _yes(covered: bool) -> str:
    return "yes" if covered else "no"
