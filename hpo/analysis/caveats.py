"""When to trust a recommendation less: the warnings of a fit, and the short flags of its cells.

A problem of one cell (an optimum at the edge of the range searched, against
the stability edge, without a bowl, with too few trials) is a *flag* on that
cell, shown in the report's table of cells; the warnings say once, per kind,
which cells carry it. Warnings about the whole fit (a target beyond the
ladder, too few sizes, a poor law) are one line each. docs/analysis.md lists
them with what to do.
"""

from __future__ import annotations

import math

from hpo.analysis.optimum import Optimum
from hpo.analysis.scaling_fit import VariantFit
from hpo.vocab import format_number

POOR_FIT_LOG_SCATTER = 0.25
"""Cell optima scattering around their law by more than this in ln units (~28%) is a poor fit."""
POOR_FIT_LOSS_RESIDUAL = 0.01
"""A loss law missing its points by more than 1% (rms of ln residuals) is a poor fit."""
_CELLS_LISTED = 4


def cell_flags(optimum: Optimum) -> tuple[str, ...]:
    """Short flags of one cell: ``"lr high edge"``, ``"stability edge"``, ``"no bowl"``, ``"few trials"``."""
    flags = [f"{name} {side} edge" for name, side in optimum.at_edge.items()]
    if optimum.near_stability_edge:
        flags.append("stability edge")
    if optimum.method == "surface" and not optimum.surface_fitted:
        flags.append("no bowl")
    if optimum.too_few_trials:
        flags.append("few trials")
    return tuple(flags)


def fit_warnings(variant_fit: VariantFit, target_params: float) -> list[str]:
    """The warnings of one variant's fit at a target of `target_params` parameters."""
    name = variant_fit.variant
    measured = variant_fit.params_measured
    warnings = [f"{name}: {note}" for note in variant_fit.notes]
    span = measured[-1] / measured[0]
    factor = target_params / measured[-1]
    if factor > span:
        warnings.append(
            f"{name}: the target is {factor:.3g}x the largest measured size, beyond the {span:.3g}x span "
            "measured; the laws are assumed to hold that far"
        )
    if measured.size < 3:
        warnings.append(f"{name}: only {measured.size} model sizes; measure at least 3 to check the laws")
    for hyperparameter, law in variant_fit.laws.items():
        if law.rms_log_residual > POOR_FIT_LOG_SCATTER:
            warnings.append(
                f"{name}: poor fit of the {hyperparameter} law (optima scatter by a factor "
                f"{math.exp(law.rms_log_residual):.2f} around it)"
            )
    loss_law = variant_fit.loss_law
    if loss_law is not None and loss_law.rms_log_residual > POOR_FIT_LOSS_RESIDUAL:
        warnings.append(
            f"{name}: poor fit of the loss law (misses its points by {100 * loss_law.rms_log_residual:.2g}%)"
        )
    return warnings + _cell_warnings(variant_fit)


def _cell_warnings(variant_fit: VariantFit) -> list[str]:
    """One line per kind of cell problem, naming the cells that have it (in the order first met)."""
    cells_by_problem: dict[str, list[Optimum]] = {}
    for optimum in variant_fit.optima:
        for problem in _problems(optimum):
            cells_by_problem.setdefault(problem, []).append(optimum)
    total = len(variant_fit.optima)
    return [
        f"{variant_fit.variant}: {problem} ({_cells(cells, total)})"
        for problem, cells in cells_by_problem.items()
    ]


def _problems(optimum: Optimum) -> list[str]:
    """What is wrong with one cell, in the words of a warning (docs/analysis.md: what to do). A cell with
    too few trials is said to have them, not also to lack a bowl: the one explains the other, and the
    remedy (more trials there) is the same."""
    problems = [
        f"the {name} optimum is at the {side} edge of the searched range; widen it"
        for name, side in optimum.at_edge.items()
    ]
    if optimum.near_stability_edge:
        problems.append("the lr optimum is within 2x of the lowest diverging lr")
    if optimum.too_few_trials:
        problems.append("too few useful trials for a reliable optimum")
    elif optimum.method == "surface" and not optimum.surface_fitted:
        problems.append("no clear minimum of the loss surface; the best trial is used")
    return problems


def _cells(cells: list[Optimum], total: int) -> str:
    """ "2 of 15 cells: 215M D=4e+09, 268M D=5e+09"; the first `_CELLS_LISTED` named."""
    named = ", ".join(f"{o.scale} D={format_number(o.tokens)}" for o in cells[:_CELLS_LISTED])
    more = f", {len(cells) - _CELLS_LISTED} more" if len(cells) > _CELLS_LISTED else ""
    return f"{len(cells)} of {total} cells: {named}{more}"
