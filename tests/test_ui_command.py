"""`hpo ui`: bad ports refused in one line (exit code 2) before any server starts; no URI on command lines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from small_studies import HPO, run_hpo, write_mlp_study


def study_with_experiment(folder: Path) -> Path:
    """A study file whose MLflow experiment exists (empty), as after `hpo run`."""
    path = write_mlp_study(folder, "ui_ports", trials_per_scale=2,
                           space={"lr": {"low": 1e-3, "high": 0.1}, "batch_size": 16, "weight_decay": 0.0})
    (folder / "out").mkdir()
    MlflowClient(f"sqlite:///{folder / 'out' / 'mlflow.db'}").create_experiment("ui_ports")
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study with an experiment, shared: a new sqlite MLflow store takes seconds to create."""
    return study_with_experiment(tmp_path_factory.mktemp("ui"))


def hpo_ui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_hpo("ui", *args, cwd=cwd, timeout=120)


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


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc), children first."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children] + [d for child in children for d in _descendants(int(child))]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads process command lines from /proc")
def test_ui_passes_the_store_uri_in_the_environment_not_on_any_command_line(study: Path,
                                                                             tmp_path: Path) -> None:
    """A PostgreSQL tracking URI holds its password: `ps` shows command lines to every user."""
    store = str(study.parent / "out" / "mlflow.db")
    server = subprocess.Popen([*HPO, "ui", str(study), "--port", "0"], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = server.stdout.readline()  # printed once the server answers
        assert "MLflow UI for study ui_ports: http://127.0.0.1:" in line, server.stderr.read()
        processes = _descendants(server.pid)
        assert processes, "the MLflow server runs as a child of hpo ui"
        for pid in [server.pid, *processes]:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert store not in command_line, command_line
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_ui_killed_outright_takes_its_mlflow_server_with_it(study: Path, tmp_path: Path) -> None:
    """SIGKILL cannot be caught, so `hpo ui` cannot stop its server then: the server ends itself when its
    parent dies, instead of serving the store on its port with no one to stop it."""
    ui = subprocess.Popen([*HPO, "ui", str(study), "--port", "0"], cwd=tmp_path, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ui.stdout.readline()  # printed once the server answers
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        server = _descendants(ui.pid)
        ui.kill()
        ui.wait(timeout=30)
        deadline = time.monotonic() + 60
        while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in server):
            assert time.monotonic() < deadline, f"the MLflow server outlived hpo ui: {server}"
            time.sleep(0.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url.group(0)}health", timeout=5)
    finally:
        if ui.poll() is None:
            ui.kill()


def _state(pid: int) -> str:
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return "zombie"
