"""Reading a study file, and starting the command line, loads no heavy library: `hpo validate` is quick."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_loading_a_study_imports_no_torch_ray_optuna_or_mlflow() -> None:
    code = ("import sys; import hpo.cli; from hpo.study.spec import load_spec; "
            "load_spec('studies/quickstart.yaml'); load_spec('studies/mlp_ladder.yaml'); "
            "print(','.join(m for m in ('torch', 'ray', 'optuna', 'mlflow') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == ""


def test_analysing_a_trial_table_imports_neither_scipy_stats_nor_matplotlib() -> None:
    """`hpo analyze` reads the table, extrapolates and prints before its plots, which a forked process
    draws beside the MLflow import: scipy.stats (0.5 s) and matplotlib (0.7 s) on that path were a tenth of
    a 4-scale study's analysis (benchmarks/analyze_time.py)."""
    code = ("import sys; import hpo.cli.study; "
            "from hpo.analysis import extrapolate; from hpo.analysis.report import format_recommendation; "
            "from hpo.store.trial_table import load_trials; from hpo.study.spec import load_spec; "
            "load_spec('studies/quickstart.yaml'); "
            "print(','.join(m for m in ('scipy.stats', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == ""
