"""A study browsed beyond MLflow: optuna-dashboard serves its Optuna store
(docs/browse_in_optuna_dashboard.md), and `hpo status` shows the counts that optuna-dashboard and the
MLflow UI (`hpo ui`) both serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from small_studies import HPO, run_hpo, write_mlp_study

from hpo.run.runner import run_study
from hpo.store.optuna_store import optuna_study_name
from hpo.study.spec import load_spec
from hpo.vocab import FINAL_STATUSES, INTERRUPTED

VARIANTS = ("baseline", "no_wd")
TRIALS = 4
DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, ray_runtime: None) -> Path:
    """A study of two variants at one scale, run once for the module."""
    folder = tmp_path_factory.mktemp("browse")
    path = write_mlp_study(folder, "browse", scales=["w8"], trials_per_scale=TRIALS, search="independent",
                           variants={"baseline": {}, "no_wd": {"weight_decay": 0}},
                           budget={"tokens": 4_000},
                           fidelity={"grace_tokens": 1_000, "reduction_factor": 2, "eval_every_tokens": 500})
    run_study(load_spec(path))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(url: str, server: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert server.poll() is None, f"the server exited with code {server.returncode}"
            assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def dashboard(study: Path) -> Iterator[str]:
    """optuna-dashboard on the study's Optuna store, as docs/browse_in_optuna_dashboard.md starts it."""
    if not DASHBOARD.exists():
        if os.environ.get("CI"):
            pytest.fail("optuna-dashboard is not installed: pip install -e '.[dashboard]'")
        pytest.skip("optuna-dashboard is not installed: pip install -e '.[dashboard]'")
    port = free_port()
    url = load_spec(study).storage.optuna
    server = subprocess.Popen([str(DASHBOARD), url, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/meta", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def dashboard_counts(base: str, study: Path) -> dict[str, Counter[str]]:
    """Per variant, the dashboard's trials by their ``status`` user attribute (as its trial table shows
    them), leaving out the trials a killed driver's run interrupted, which hpo runs again."""
    spec = load_spec(study)
    studies = {s["study_name"]: s["study_id"] for s in get_json(f"{base}/api/studies")["study_summaries"]}
    counts = {}
    for variant in VARIANTS:
        detail = get_json(f"{base}/api/studies/{studies[optuna_study_name(spec.name, variant, 'w8')]}")
        statuses = [json_attrs(trial)["status"] for trial in detail["trials"]]
        counts[variant] = Counter(status for status in statuses if status != INTERRUPTED)
    return counts


def json_attrs(trial: dict[str, Any]) -> dict[str, str]:
    return {attr["key"]: attr["value"] for attr in trial["user_attrs"]}


def status_counts(study: Path) -> dict[str, Counter[str]]:
    """`hpo status`'s table: per variant, its trials by final status (and ``planned``)."""
    output = run_hpo("status", str(study), cwd=study.parent, timeout=120)
    assert output.returncode == 0, output.stderr
    rows, header = {}, []
    for line in output.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").replace("┃", "│").split("│")]
        if "planned" in cells:
            header = cells
        elif header and cells[0] in VARIANTS:
            rows[cells[0]] = Counter({name: int(cells[header.index(name)])
                                      for name in ("planned", *FINAL_STATUSES)})
    assert set(rows) == set(VARIANTS), output.stdout
    return rows


@pytest.mark.slow
def test_optuna_dashboard_serves_the_studys_optuna_store(dashboard: str, study: Path) -> None:
    names = {s["study_name"] for s in get_json(f"{dashboard}/api/studies")["study_summaries"]}
    assert names == {optuna_study_name("browse", variant, "w8") for variant in VARIANTS}
    for variant, counts in dashboard_counts(dashboard, study).items():
        assert counts.total() == TRIALS, (variant, counts)


@pytest.mark.slow
def test_hpo_status_counts_what_optuna_dashboard_and_the_mlflow_ui_show(dashboard: str, study: Path) -> None:
    shown = status_counts(study)
    for variant, counts in dashboard_counts(dashboard, study).items():
        assert shown[variant]["planned"] == TRIALS
        assert {name: shown[variant][name] for name in FINAL_STATUSES} == {
            name: counts[name] for name in FINAL_STATUSES}

    # The MLflow UI's server (`hpo ui`), asked over its REST API for the study's trial runs.
    server = subprocess.Popen([*HPO, "ui", str(study), "--port", "0"], cwd=study.parent, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the server answers
        assert "MLflow UI for study browse: http://127.0.0.1:" in line, line
        base = line.split(": ", 1)[1].split("/#/")[0]
        experiment = line.split("/#/experiments/")[1].split("/")[0]
        runs = get_json(f"{base}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment], "filter": "tags.kind = 'trial'", "max_results": 1000})["runs"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    in_mlflow: dict[str, Counter[str]] = {variant: Counter() for variant in VARIANTS}
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
        in_mlflow[tags["variant"]][tags["status"]] += 1
    for variant in VARIANTS:
        assert {name: shown[variant][name] for name in FINAL_STATUSES} == {
            name: in_mlflow[variant][name] for name in FINAL_STATUSES}
