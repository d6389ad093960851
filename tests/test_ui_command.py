"""`hpo ui` refuses bad ports in one line with exit code 2, before starting any server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

HPO = [sys.executable, "-m", "hpo.cli"]


def study_with_experiment(folder: Path) -> Path:
    """A study file whose MLflow experiment exists (empty), as after `hpo run`."""
    study = {"name": "ui_ports", "family": "mlp", "scales": ["w8", "w32"], "target": 1_000_000,
             "budget": {"tokens": 8_000}, "space": {"lr": {"low": 1e-3, "high": 0.1}, "batch_size": 16,
                                                   "weight_decay": 0.0},
             "trials_per_scale": 2, "output": str(folder / "out")}
    path = folder / "ui_ports.yaml"
    path.write_text(yaml.safe_dump(study))
    (folder / "out").mkdir()
    MlflowClient(f"sqlite:///{folder / 'out' / 'mlflow.db'}").create_experiment("ui_ports")
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study with an experiment, shared: a new sqlite MLflow store takes seconds to create."""
    return study_with_experiment(tmp_path_factory.mktemp("ui"))


def hpo_ui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPO, "ui", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_ui_on_a_port_in_use_exits_2_naming_the_option_and_the_fix(study: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hpo_ui(str(study), "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"--port {port}" in result.stderr and "--port 0" in result.stderr
    assert result.stdout == ""


def test_ui_with_an_impossible_port_exits_2(study: Path, tmp_path: Path) -> None:
    result = hpo_ui(str(study), "--port", "70000", cwd=tmp_path)
    assert result.returncode == 2
    assert "'70000' is not a port" in result.stderr and "Traceback" not in result.stderr


def test_ui_before_the_study_ran_exits_2_saying_to_run_it(study: Path, tmp_path: Path) -> None:
    path = tmp_path / "never_ran.yaml"  # same store, no experiment of that name
    path.write_text(study.read_text().replace("name: ui_ports", "name: never_ran"))
    result = hpo_ui(str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "hpo run" in result.stderr and len(result.stderr.strip().splitlines()) == 1
