"""The `hpo` command line, run for real in a subprocess: a local Ray runtime,
sqlite Optuna storage and a sqlite MLflow store under a temporary folder."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from small_studies import HPO, run_hpo, write_mlp_study

from hpo.cli.output import RunLogFile
from hpo.store.errors import StoreError
from hpo.store.optuna_store import optuna_storage

SCALES = ("w8", "w32")
TRIALS = 4
KILLED_TRIALS = 8
"""Trials per scale of the study killed mid-trial: enough that it is still running when it is killed."""


def study_file(folder: Path, name: str = "cli_mlp", trials: int = TRIALS, tokens: int = 8_000) -> Path:
    """A small `mlp` study whose ASHA prunes some trials, written to `folder`; it
    searches each scale independently, so every scale plans exactly `trials` trials."""
    return write_mlp_study(folder, name, scales=list(SCALES), budget={"tokens": tokens},
                           trials_per_scale=trials, fidelity={"grace_tokens": 1_000, "reduction_factor": 2},
                           search="independent")


def hpo(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_hpo(*args, cwd=cwd, timeout=timeout)


def optuna_studies(out: Path, name: str) -> dict[str, optuna.Study]:
    storage = f"sqlite:///{out / 'optuna.db'}"
    return {scale: optuna.load_study(study_name=f"{name}/default/{scale}", storage=storage)
            for scale in SCALES}


def mlflow_children(out: Path, name: str) -> pd.DataFrame:
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return pd.DataFrame(
        [{"run_id": r.info.run_id, "status": r.info.status, "parent": r.data.tags.get("mlflow.parentRunId"),
          "scale": r.data.tags.get("scale"), "trial_number": r.data.tags.get("trial_number"),
          "params": dict(r.data.params), "loss_points": len(client.get_metric_history(r.info.run_id, "loss"))
          if r.data.tags.get("mlflow.parentRunId") else 0}
         for r in runs]
    )


def assert_exact_counts(out: Path, name: str, trials_csv: str, trials: int = TRIALS) -> None:
    """Every scale has exactly `trials` finished trials in Optuna and in MLflow,
    none left RUNNING, and `hpo trials --csv` agrees with both stores."""
    table = pd.read_csv(io.StringIO(trials_csv))
    runs = mlflow_children(out, name)
    children = runs[runs["parent"].notna()]
    assert (runs["status"] != "RUNNING").all()
    for scale, study in optuna_studies(out, name).items():
        states = [t.state for t in study.trials]
        assert optuna.trial.TrialState.RUNNING not in states
        counted = [t for t in study.trials if t.user_attrs.get("status") != "interrupted"]
        assert len(counted) == trials
        rows = table[table["scale"] == scale]
        assert sorted(rows["trial_number"]) == sorted(t.number for t in counted)
        assert set(rows["run_id"]) == set(children[children["scale"] == scale]["run_id"])
        assert rows["run_id"].is_unique and len(rows) == trials


@pytest.mark.slow
def test_run_records_every_trial_in_both_stores(tmp_path: Path) -> None:
    path = study_file(tmp_path)
    result = hpo("run", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trials run now" in result.stdout

    trials = hpo("trials", str(path), "--csv", cwd=tmp_path)
    assert trials.returncode == 0, trials.stderr
    out = tmp_path / "out"
    assert_exact_counts(out, "cli_mlp", trials.stdout)

    studies = optuna_studies(out, "cli_mlp")
    pruned = [t for s in studies.values() for t in s.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "ASHA should have stopped some trials"
    for trial in pruned:
        assert trial.intermediate_values and max(trial.intermediate_values) < 8_000

    runs = mlflow_children(out, "cli_mlp")
    parents = runs[runs["parent"].isna()]
    children = runs[runs["parent"].notna()]
    assert len(parents) == len(SCALES)
    assert set(children["parent"]) == set(parents["run_id"])
    assert all({"lr", "batch_size", "weight_decay", "scale"} <= set(p) for p in children["params"])
    assert (children["loss_points"] >= 1).all()

    status = hpo("status", str(path), cwd=tmp_path)
    assert status.returncode == 0 and "w32" in status.stdout
    assert "% of one target run" in status.stdout and "w32: search: independent" in status.stdout

    again = hpo("run", str(path), cwd=tmp_path)
    assert again.returncode == 0 and "0 trials run now" in again.stdout

    assert_ui_serves_the_experiment(path, tmp_path)


def assert_ui_serves_the_experiment(path: Path, cwd: Path) -> None:
    """`hpo ui` prints the experiment's URL on 127.0.0.1, serves it, and stops cleanly on Ctrl-C, also
    started as a shell script's background job is, with SIGINT ignored (`trap "" INT`, as `cmd &` in a
    non-interactive shell does): else the test's outcome would hang on how the suite was launched."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen(["bash", "-c", 'trap "" INT; exec "$@"', "hpo",
                           *HPO, "ui", str(path), "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/" in line
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow UI did not come up"
                time.sleep(1)
        ui.send_signal(signal.SIGINT)
        assert ui.wait(timeout=60) == 0
    finally:
        if ui.poll() is None:
            ui.kill()


@pytest.mark.slow
def test_driver_killed_mid_study_resumes_with_exact_counts(tmp_path: Path) -> None:
    path = study_file(tmp_path, name="killed", trials=KILLED_TRIALS, tokens=40_000)
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen([*HPO, "run", str(path)], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=log)
    database = tmp_path / "out" / "optuna.db"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
            if database.exists() and _finished_and_running(f"sqlite:///{database}", "killed/default/w8"):
                break
        assert driver.poll() is None, ("the study ended before it could be killed mid-trial: "
                                       + (tmp_path / "driver.log").read_text()[-3000:])
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        _kill_group(driver.pid)
        log.close()

    result = hpo("run", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = hpo("trials", str(path), "--csv", cwd=tmp_path)
    assert_exact_counts(tmp_path / "out", "killed", trials.stdout, trials=KILLED_TRIALS)


def _finished_and_running(storage: str, study_name: str) -> bool:
    """True once the study has a finished trial and one still running; False while the driver is still
    creating the store (a reader opening it then would race the driver's schema creation)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=optuna_storage(storage, read_only=True))
    except (KeyError, StoreError):
        return False
    states = {t.state for t in study.get_trials(deepcopy=False)}
    return optuna.trial.TrialState.RUNNING in states and len(states) > 1


def _kill_group(pid: int) -> None:
    """Stop what the killed driver left behind (its local Ray runtime)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


BAD_STUDIES = {
    "wrong type": ("trials_per_scale: 4", "trials_per_scale: four", "trials_per_scale"),
    "inverted range": ("low: 0.0001", "low: 0.9", "space.lr"),
    "batch bound not a power of two": ("high: 64", "high: 48", "space.batch_size.high"),
    "unknown family": ("family: mlp", "family: resnet", "family"),
    "unknown scale": ("- w32", "- w33", "scales[1]"),
    "negative budget": ("tokens: 8000", "tokens: -5", "budget.tokens"),
}


@pytest.mark.parametrize("case", list(BAD_STUDIES))
def test_bad_study_file_exits_2_naming_the_field_and_writes_nothing(tmp_path: Path, case: str) -> None:
    path = study_file(tmp_path)
    old, new, field = BAD_STUDIES[case]
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    for command in ("validate", "run"):
        result = hpo(command, str(path), cwd=tmp_path, timeout=120)
        assert result.returncode == 2
        assert field in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_validate_shows_the_plan(tmp_path: Path) -> None:
    result = hpo("validate", str(study_file(tmp_path)), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "w8" in result.stdout and "8,000" in result.stdout
    assert f"{TRIALS} (search)" in result.stdout  # independent search: trials_per_scale of each scale
    assert not (tmp_path / "out").exists()


def test_validate_shows_the_trials_a_scale_aware_study_plans(tmp_path: Path) -> None:
    """The quickstart's ladder: a design at 13k (more than its 16 trials: they are cheap there), a check
    of 13k's optimum at 100k and at 336k with half their trials (trials_share): the plan `hpo run` makes,
    not trials_per_scale."""
    result = hpo("validate", str(Path(__file__).parents[1] / "studies" / "quickstart.yaml"), cwd=tmp_path,
                 timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "39 (design)" in rows["13k"] and "8 (check: prediction + probes)" in rows["100k"]
    assert "8 (check: prediction + probes)" in rows["336k"]


def test_a_log_record_the_full_disk_cannot_take_prints_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The run's log file on a full disk drops the record: the run's own one-line error is all the
    terminal shows, not logging's "--- Logging error ---" traceback."""
    to_file = RunLogFile(tmp_path / "run.log")
    to_file.stream = FullDisk()
    logger = logging.getLogger("hpo.test_full_disk")
    logger.addHandler(to_file)
    try:
        logger.warning("a trial finished")
    finally:
        logger.removeHandler(to_file)
        to_file.close()
    assert "Logging error" not in capfd.readouterr().err


LIBRARY_ERRORS = """
import logging, sys, types
from pathlib import Path
from hpo.cli.output import log_run
print(log_run(types.SimpleNamespace(output_dir=Path(sys.argv[1])), verbose=False))
try:
    raise RuntimeError("database or disk is full")
except RuntimeError:
    for library in ("mlflow.store.db.utils", "optuna.storages", "alembic.runtime", "ray.tune"):
        logging.getLogger(library).exception("%s: SQLAlchemy database error", library)
"""


def test_a_librarys_error_goes_to_the_run_log_and_not_to_the_terminal(tmp_path: Path) -> None:
    """MLflow logs a store's failure with its traceback (``_logger.exception``) on a logger that does not
    propagate; with its handler removed, logging's last resort printed the traceback to the terminal
    beside the run's one-line error (a full disk, one run in four)."""
    result = subprocess.run([sys.executable, "-c", LIBRARY_ERRORS, str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    log = Path(result.stdout.strip().splitlines()[-1]).read_text()
    for library in ("mlflow.store.db.utils", "optuna.storages", "alembic.runtime", "ray.tune"):
        assert f"{library}: SQLAlchemy database error" in log
    assert "Traceback" in log


class FullDisk(io.StringIO):
    """A stream whose every write fails as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")
