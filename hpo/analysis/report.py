"""The recommendation as plain-text tables, for terminals and logs."""

from __future__ import annotations

import math

from hpo.analysis.estimate import Estimate
from hpo.analysis.extrapolate import Recommendation


def format_recommendation(recommendation: Recommendation) -> str:
    """The recommendation as plain-text tables: settings, values outside the searched range,
    crossovers, warnings."""
    target = f"N = {recommendation.target_params:.3g} parameters"
    if recommendation.target_tokens is not None:
        target += f", D = {recommendation.target_tokens:.3g} tokens"
    level = f"{100 * recommendation.fit.level:.0f}% interval"
    best = recommendation.best
    lines = [f"Recommendation for {target}: variant '{recommendation.variant}'", ""]
    lines += _table(
        ["quantity", "value", level],
        [
            ["lr", *_cells(best.lr)],
            ["batch_size", *_cells(best.batch_size)],
            ["batch_size (power of 2)", str(best.batch_size_power_of_two), ""],
            ["weight_decay", *_cells(best.weight_decay)],
            ["predicted loss", *_cells(best.loss)],
        ],
    )
    if recommendation.out_of_range:
        lines += ["", "Outside the searched range (extrapolated beyond every trial):"]
        lines += _table(
            ["quantity", "extrapolated", "searched range", "recommended"],
            [
                [
                    o.hyperparameter,
                    _format(o.value),
                    f"[{_format(o.low)}, {_format(o.high)}]",
                    "as extrapolated" if o.clipped is None else f"clipped to {_format(o.clipped)}",
                ]
                for o in recommendation.out_of_range
            ],
        )
    if len(recommendation.settings) > 1:
        lines += ["", "All variants, best predicted loss first:"]
        lines += _table(
            ["variant", "lr", "batch_size", "weight_decay", "predicted loss"],
            [
                [
                    s.variant,
                    _format(s.lr.value),
                    _format(s.batch_size.value),
                    _format(s.weight_decay.value),
                    _format(s.loss.value),
                ]
                for s in recommendation.settings
            ],
        )
    if recommendation.crossovers:
        lines += ["", "Crossovers:"]
        lines += _table(
            ["variants", "verdict", "at N", level, "P(ranking flips)"],
            [
                [f"{c.variant_a} / {c.variant_b}", c.verdict, *_cells(c.params), f"{c.p_flip:.2f}"]
                for c in recommendation.crossovers
            ],
        )
    if recommendation.warnings:
        lines += ["", "Warnings:"] + [f"- {warning}" for warning in recommendation.warnings]
    return "\n".join(lines)


def _cells(estimate: Estimate) -> list[str]:
    """Value and interval columns; a fixed (unscaled) setting shows "fixed", a missing interval "-"."""
    if estimate.level == 1.0:
        return [_format(estimate.value), "fixed"]
    if math.isnan(estimate.low):
        return [_format(estimate.value), "-"]
    return [_format(estimate.value), f"[{_format(estimate.low)}, {_format(estimate.high)}]"]


def _format(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    render = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return [render[0], rule, *render[1:]]
