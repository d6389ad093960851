"""Small `mlp` study files for the tests that run the `hpo` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

HPO = [sys.executable, "-m", "hpo.cli"]
"""The `hpo` command line of this interpreter."""


def write_mlp_study(folder: Path, name: str, **fields: object) -> Path:
    """Study `name` of the `mlp` family (scales w8 and w32, 8,000 tokens a trial,
    a 256-example validation set, two trials at a time), with `fields` in place
    of those defaults, written to ``folder/{name}.yaml``; its output goes to ``folder/out``."""
    study = {
        "name": name, "family": "mlp", "family_options": {"val_examples": 256}, "scales": ["w8", "w32"],
        "target": 1_000_000, "budget": {"tokens": 8_000},
        "space": {"lr": {"low": 1e-4, "high": 0.3}, "batch_size": {"low": 16, "high": 64},
                  "weight_decay": {"low": 1e-4, "high": 0.1, "zero": True}},
        "max_concurrent": 2, "output": str(folder / "out"), **fields,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def run_hpo(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``hpo ARGS`` run to the end in `cwd`, its output captured."""
    return subprocess.run([*HPO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
