"""The recommendation as plain-text tables, for terminals and logs.

The answer first (the setting to run, with its intervals), then what qualifies
it (values outside the searched range, other variants, crossovers), then the
laws (how each optimum scales, exponents with their intervals), then one table
of the cells the laws were fitted to (optimum, interval, flags), then each
warning once.
"""

from __future__ import annotations

import math

from hpo.analysis.caveats import cell_flags
from hpo.analysis.estimate import Estimate
from hpo.analysis.recommendation import Recommendation
from hpo.analysis.scaling_fit import NOT_SEARCHED, VariantFit
from hpo.vocab import format_number


def format_recommendation(recommendation: Recommendation) -> str:
    """The recommendation as plain-text tables: the setting, values outside the searched range, other
    variants, crossovers, the cells, the warnings."""
    target = f"N = {recommendation.target_params:.3g} parameters"
    if recommendation.target_tokens is not None:
        target += f", D = {recommendation.target_tokens:.3g} tokens"
    level = f"{100 * recommendation.fit.level:.0f}% interval"
    best = recommendation.best
    held = recommendation.fit.variants[best.variant].held_because
    lines = [f"Recommendation for {target}: variant '{recommendation.variant}'", ""]
    lines += text_table(
        ["quantity", "value", level],
        [
            ["lr", *_cells(best.lr, held.get("lr"))],
            ["batch_size", *_cells(best.batch_size, held.get("batch_size"))],
            ["batch_size (power of 2)", str(best.batch_size_power_of_two), ""],
            ["weight_decay", *_cells(best.weight_decay, held.get("weight_decay"))],
            ["predicted loss", *_cells(best.loss)],
        ],
    )
    lines += _out_of_range(recommendation)
    lines += _variants(recommendation)
    lines += _crossovers(recommendation, level)
    lines += _laws(recommendation, level)
    lines += _cell_table(recommendation)
    if recommendation.warnings:
        lines += ["", "Warnings:"] + [f"- {warning}" for warning in recommendation.warnings]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns under a header and a rule of dashes, one string per line."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    render = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return [render[0], rule, *render[1:]]


def format_value(value: float) -> str:
    """`hpo.vocab.format_number` (three significant digits); "-" for a missing (NaN) value."""
    return format_number(None if math.isnan(value) else value)


def with_interval(estimate: Estimate) -> str:
    """``value [low, high]``; only the value when the interval is missing or exact."""
    if estimate.level == 1.0 or math.isnan(estimate.low):
        return format_value(estimate.value)
    return f"{format_value(estimate.value)} [{format_value(estimate.low)}, {format_value(estimate.high)}]"


def _out_of_range(recommendation: Recommendation) -> list[str]:
    if not recommendation.out_of_range:
        return []
    table = text_table(
        ["quantity", "extrapolated", "searched range", "recommended"],
        [
            [
                o.hyperparameter,
                format_value(o.value),
                f"[{format_value(o.low)}, {format_value(o.high)}]",
                "as extrapolated" if o.clipped is None else f"clipped to {format_value(o.clipped)}",
            ]
            for o in recommendation.out_of_range
        ],
    )
    return ["", "Outside the searched range (extrapolated beyond every trial):", *table]


def _variants(recommendation: Recommendation) -> list[str]:
    if len(recommendation.settings) < 2:
        return []
    table = text_table(
        ["variant", "lr", "batch_size", "weight_decay", "predicted loss"],
        [
            [s.variant, *(format_value(e.value) for e in (s.lr, s.batch_size, s.weight_decay, s.loss))]
            for s in recommendation.settings
        ],
    )
    return ["", "All variants, best predicted loss first:", *table]


def _crossovers(recommendation: Recommendation, level: str) -> list[str]:
    if not recommendation.crossovers:
        return []
    table = text_table(
        ["variants", "verdict", "at N", level, "P(ranking flips)"],
        [
            [f"{c.variant_a} / {c.variant_b}", c.verdict, *_cells(c.params), f"{c.p_flip:.2f}"]
            for c in recommendation.crossovers
        ],
    )
    return ["", "Crossovers:", *table]


def _laws(recommendation: Recommendation, level: str) -> list[str]:
    """One line per fitted law of each variant: ``h* = a·N^b[·D^c]`` with each exponent's interval, and
    the loss law ``L = E + A/N^α[ + B/D^β]``."""
    several = len(recommendation.fit.variants) > 1
    lines = []
    for fit in recommendation.fit.variants.values():
        prefix = f"{fit.variant}: " if several else ""
        for name, law in fit.laws.items():
            exponents = [("N", law.exponent("b"))] + ([("D", law.exponent("c"))] if law.c is not None else [])
            powers = [f"{x}^{format_value(e.value)}" for x, e in exponents]
            ranges = [f"{x} in [{format_value(e.low)}, {format_value(e.high)}]" for x, e in exponents]
            lines.append(f"{prefix}{name}* = {' · '.join([format_value(law.a), *powers])}; "
                         f"exponent of {', of '.join(ranges)}")
        if fit.loss_law is not None:
            law = fit.loss_law
            tokens = ("" if law.B is None or law.beta is None
                      else f" + {format_value(law.B)}/D^{format_value(law.beta)}")
            lines.append(f"{prefix}loss = {format_value(law.E)} + {format_value(law.A)}/N^"
                         f"{format_value(law.alpha)}{tokens}")
    if not lines:
        return []
    return ["", f"Laws (N parameters, D tokens; {level}s of the exponents):", *lines]


def _cell_table(recommendation: Recommendation) -> list[str]:
    """One row per cell the laws were fitted to: its optimum and interval per hyperparameter scaled,
    its tuned loss, its flags."""
    variants = list(recommendation.fit.variants.values())
    names = [h for h in ("lr", "batch_size", "weight_decay") if any(h in v.laws for v in variants)]
    several = len(variants) > 1
    header = (["variant"] if several else []) + ["N", "D", *names, "loss", "flags"]
    rows = [
        ([v.variant] if several else [])
        + [o.scale, format_number(o.tokens), *(with_interval(o.value(h)) for h in names)]
        + [format_value(o.loss.value), ", ".join(cell_flags(o))]
        for v in variants
        for o in v.optima
    ]
    return ["", f"Cells ({'; '.join(_located(v) for v in variants)}):", *text_table(header, rows)]


def _located(variant_fit: VariantFit) -> str:
    """How a variant's cell optima were located, in words."""
    prefix = f"{variant_fit.variant}: " if variant_fit.variant != "default" else ""
    if variant_fit.optima[0].method == "near_best":
        noise = f", loss noise {100 * variant_fit.noise:.2g}%" if variant_fit.noise else ""
        blend = ("; the lr and batch-size laws halfway to the laws of the cells' surface minima"
                 if variant_fit.laws_method == "blend" else "")
        return f"{prefix}centre of each cell's near-best band, the band as interval{noise}{blend}"
    return f"{prefix}minimum of each cell's fitted surface, bootstrap interval"


def _cells(estimate: Estimate, held_because: str | None = None) -> list[str]:
    """Value and interval columns; a missing interval shows "-", an exact value "fixed" where it was not
    searched and "held: <why>" where it was searched and has no law (`VariantFit.held_because`)."""
    if estimate.level == 1.0:
        searched = held_because is not None and held_because != NOT_SEARCHED
        return [format_value(estimate.value), f"held: {held_because}" if searched else "fixed"]
    if math.isnan(estimate.low):
        return [format_value(estimate.value), "-"]
    return [format_value(estimate.value), f"[{format_value(estimate.low)}, {format_value(estimate.high)}]"]
