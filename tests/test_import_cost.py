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
