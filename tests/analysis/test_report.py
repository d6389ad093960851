"""The printed recommendation: the answer first, one table of cells with their flags, each warning once."""

from __future__ import annotations

import pandas as pd

from hpo.analysis import extrapolate
from hpo.analysis.caveats import cell_flags
from hpo.analysis.report import format_recommendation, format_value
from hpo.evaluation.landscape import Landscape
from hpo.evaluation.synthetic import make_synthetic_trials


def test_the_answer_comes_first_then_one_row_per_cell_then_the_warnings(grid_sweep: pd.DataFrame) -> None:
    text = format_recommendation(
        extrapolate(grid_sweep, target_params=4e9, target_tokens=2e11, n_bootstrap=5)
    )
    lines = text.splitlines()
    assert lines[0].startswith("Recommendation for N = 4e+09 parameters, D = 2e+11 tokens")
    assert lines[4].startswith("lr ")
    cells = lines.index(
        next(line for line in lines if line.startswith("Cells (centre of each cell's near-best"))
    )
    assert "loss noise" in lines[cells] and "halfway to the laws of the cells' surface minima" in lines[cells]
    assert sum(line.startswith(("100M ", "200M ", "400M ")) for line in lines[cells:]) == 9
    warnings = [line for line in lines if line.startswith("- ")]
    assert warnings and len(warnings) == len(set(warnings))
    assert lines.index("Warnings:") > cells


def test_a_problem_shared_by_many_cells_is_one_warning_naming_them_and_a_flag_on_each(
    grid_sweep: pd.DataFrame,
) -> None:
    low_lrs = grid_sweep[grid_sweep["lr"] <= 1e-3]
    recommendation = extrapolate(low_lrs, target_params=4e9, target_tokens=2e11, n_bootstrap=5)
    edge = [w for w in recommendation.warnings if "lr optimum is at the high edge" in w]
    assert len(edge) == 1 and "9 of 9 cells" in edge[0]
    text = format_recommendation(recommendation)
    assert text.count("lr high edge") == 9
    assert text.count("lr optimum is at the high edge") == 1


def test_each_law_is_shown_with_the_interval_of_its_exponents_before_the_cells(
    grid_sweep: pd.DataFrame,
) -> None:
    recommendation = extrapolate(grid_sweep, target_params=4e9, target_tokens=2e11, n_bootstrap=5)
    lr_law = recommendation.fit.variants["default"].laws["lr"]
    lines = format_recommendation(recommendation).splitlines()

    laws = lines.index("Laws (N parameters, D tokens; 90% intervals of the exponents):")
    lr_line = next(line for line in lines if line.startswith("lr* = "))
    b, c = lr_law.exponent("b"), lr_law.exponent("c")
    assert f"N^{format_value(b.value)} · D^{format_value(c.value)}" in lr_line
    assert f"exponent of N in [{format_value(b.low)}, {format_value(b.high)}]" in lr_line
    assert f"of D in [{format_value(c.low)}, {format_value(c.high)}]" in lr_line
    assert any(line.startswith("batch_size* = ") for line in lines)
    cells = lines.index(next(line for line in lines if line.startswith("Cells (")))
    assert laws < lines.index(lr_line) < cells


def test_cells_with_too_few_trials_are_warned_of_once_not_also_for_the_bowl_they_cannot_show() -> None:
    landscape = Landscape(name="default")
    trials = make_synthetic_trials([landscape], [1e7, 3e7, 1e8], trials_per_cell=6, seed=1)
    recommendation = extrapolate(trials, target_params=1e9, method="surface", n_bootstrap=5)
    flags = [cell_flags(o) for o in recommendation.fit.variants["default"].optima]
    assert all("few trials" in f for f in flags) and any("no bowl" in f for f in flags)

    warnings = recommendation.warnings
    assert sum("too few useful trials" in w for w in warnings) == 1
    assert not any("no clear minimum" in w for w in warnings)
