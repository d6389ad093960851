"""Faults a real team hits, injected for real, each judged by reading both stores afterwards.

A second driver on a study that runs, stores that no longer agree, a plan a
killed driver half enqueued, every trial failing, a full disk, a corrupted or
missing store, a read-only study folder. Each one ends in one line that names
what is wrong and what to do, with an exit code, and leaves both stores
holding every planned trial once (tests/store_audit.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from small_studies import HPO, run_hpo, write_mlp_study
from store_audit import audit, record

from hpo.run.runner import run_study
from hpo.search.sampling import fixed_params
from hpo.search.strategy import ScaleToPlan
from hpo.store.optuna_store import PLAN, optuna_storage, optuna_study_name
from hpo.store.trial_table import load_trials
from hpo.study.spec import load_spec

ONE_SCALE = {"scales": ["w8"], "trials_per_scale": 2, "search": "independent"}
"""A study of one scale of two trials."""
RUNNER_FAMILIES = Path(__file__).parent / "runner"
"""Where `runner_families:FlakyMLP` lives (its training raises at batch size 16)."""


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def lease_held(database: Path) -> bool:
    """Whether a driver holds a lease in the sqlite Optuna store `database`."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM hpo_leases").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def trial_runs(study: Path) -> int:
    spec = load_spec(study)
    client = MlflowClient(spec.storage.mlflow)
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    return len(client.search_runs([experiment.experiment_id], "tags.kind = 'trial'", max_results=1000))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_a_second_driver_is_refused_naming_the_first_and_a_waiting_one_adds_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    study = write_mlp_study(tmp_path, "twice", trials_per_scale=4, search="independent", max_concurrent=1,
                            budget={"tokens": 16_000})
    first = subprocess.Popen([*HPO, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: lease_held(tmp_path / "out" / "optuna.db"))

    second = run_hpo("run", str(study), cwd=tmp_path, timeout=120)
    waiting = subprocess.Popen([*HPO, "run", str(study), "--wait"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _, first_err = first.communicate(timeout=600)
    waited_out, waited_err = waiting.communicate(timeout=600)

    assert second.returncode == 2
    line = one_line(second.stderr)
    assert "is being run by another driver" in line and f"pid {first.pid}" in line and "--wait" in line
    assert first.returncode == 0, first_err[-3000:]
    assert waiting.returncode == 0 and "waiting" in waited_err and "0 trials run now" in waited_out
    result = audit(study)
    assert result.clean() and result.planned == 8, result
    record("the same study started three times at once (sqlite): a second driver, a third with --wait",
           "the second exits 2 naming the first driver's host and pid; the third waits, then runs nothing",
           result, time.monotonic() - started)


@pytest.mark.slow
def test_stores_that_disagree_stop_the_run_before_it_writes(tmp_path: Path) -> None:
    started = time.monotonic()
    study = write_mlp_study(tmp_path, "agree", **ONE_SCALE)
    assert run_hpo("run", str(study), cwd=tmp_path, timeout=300).returncode == 0
    out = tmp_path / "out"
    runs = trial_runs(study)
    for suffix in ("", "-wal", "-shm"):  # the Optuna store replaced by an empty one
        (out / f"optuna.db{suffix}").unlink(missing_ok=True)

    emptied = run_hpo("run", str(study), cwd=tmp_path, timeout=300)

    assert emptied.returncode == 2
    line = one_line(emptied.stderr)
    assert "holds 2 trial record(s)" in line and "optuna.db" in line and "mlflow.db" in line
    assert "restore the Optuna store" in line and trial_runs(study) == runs

    (tmp_path / "lost").mkdir()
    study = write_mlp_study(tmp_path / "lost", "lost", **ONE_SCALE)
    assert run_hpo("run", str(study), cwd=tmp_path, timeout=300).returncode == 0
    for suffix in ("", "-wal", "-shm"):  # now the tracker's store is the one that went missing
        (tmp_path / "lost" / "out" / f"mlflow.db{suffix}").unlink(missing_ok=True)
    lost = run_hpo("run", str(study), cwd=tmp_path, timeout=300)
    assert lost.returncode == 2 and "whose records the tracker" in one_line(lost.stderr)
    record("optuna.db deleted between runs, mlflow.db kept; then the reverse",
           "hpo run exits 2 in one line naming both stores and the fix; MLflow's runs unchanged",
           audit(study), time.monotonic() - started)


@pytest.fixture
def flaky_families() -> Iterator[None]:
    """The runner tests' families importable by the `hpo` subprocesses (their PYTHONPATH)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(RUNNER_FAMILIES),
                                                                 os.environ.get("PYTHONPATH")])))
        yield


@pytest.mark.slow
def test_a_scale_whose_trials_all_fail_exits_1_with_one_line_and_a_log(flaky_families: None,
                                                                        tmp_path: Path) -> None:
    study = write_mlp_study(tmp_path, "failing", family="runner_families:FlakyMLP", scales=["w8"],
                            trials_per_scale=3, search="independent", retries=0,
                            space={"lr": {"low": 1e-3, "high": 1e-2}, "batch_size": 16})

    result = run_hpo("run", str(study), cwd=tmp_path, timeout=300)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("hpo run:")]
    assert lines[0] == ("hpo run: default · w8: 3 of 3 trials failed; first error: RuntimeError: no training "
                        "data at batch size 16")
    log = Path(lines[1].removeprefix("hpo run: tracebacks in "))
    assert log.is_file() and "Traceback" in log.read_text() and log.parent == tmp_path / "out" / "logs"


def test_a_plan_a_killed_driver_half_enqueued_runs_in_full(ray_runtime: None, tmp_path: Path) -> None:
    """A driver killed while it enqueued a design left the plan stored and 2 of its 30 trials queued (or,
    before plans were stored first, the trials without the plan): the resumed scale runs all 30 (the
    bowl in lr, batch size and weight decay a cheap first scale's design holds at least)."""
    for stored_plan in (True, False):
        folder = tmp_path / str(stored_plan)
        folder.mkdir()
        spec = load_spec(write_mlp_study(folder, "half", scales=["w8", "w32"], trials_per_scale=2,
                                         search={"mode": "scale_aware", "design_cost": 1000},
                                         budget={"tokens": 2_000}))
        spec.output_dir.mkdir(parents=True)
        storage = optuna_storage(spec.storage.optuna)
        study = optuna.create_study(study_name=optuna_study_name(spec.name, "default", "w8"), storage=storage)
        plan = spec.search.plan(ScaleToPlan(
            name=study.study_name, scale="w8", params=spec.params("w8"), tokens=spec.tokens("w8"),
            space=spec.variant("default").space, trials=2, history=load_trials(spec, scales=[]),
            previous_law_broken=False, cost_ratio=spec.cost_ratio("w8"), seed=spec.seed))
        assert plan.trials == 30 and len(plan.enqueued()) == 30
        if stored_plan:
            study.set_user_attr(PLAN, plan.to_dict())
        for origin, setting, within in plan.enqueued()[:2]:
            study.enqueue_trial(fixed_params(setting, within), user_attrs={"origin": origin})

        outcome = run_study(spec, scales=["w8"])

        (w8,) = outcome.scales
        assert w8.plan == plan and w8.finished == 30
        trials = study.get_trials()
        assert [t.user_attrs["origin"] for t in trials] == ["design"] * 30
        assert audit(folder / "half.yaml", scales=("w8",)).clean()


def test_a_corrupted_or_missing_store_is_one_line_naming_its_path(tmp_path: Path) -> None:
    study = write_mlp_study(tmp_path, "broken", **ONE_SCALE)
    missing = run_hpo("status", str(study), cwd=tmp_path, timeout=120)
    assert missing.returncode == 2
    line = one_line(missing.stderr)
    assert f"no Optuna store at {tmp_path / 'out' / 'optuna.db'}" in line and "`hpo run" in line
    assert not (tmp_path / "out").exists()

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "optuna.db").write_bytes(b"this is not a database" * 100)
    for command in ("run", "status"):
        result = run_hpo(command, str(study), cwd=tmp_path, timeout=120)
        assert result.returncode == 2
        assert "cannot open the Optuna store" in one_line(result.stderr) and "restore it" in result.stderr


def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[Path]:
    """A folder mounted read only (a bind mount), over `tmp_path / "source"`; skips where mounting is not
    allowed (it needs root)."""
    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    if not (mount("--bind", str(source), str(view)) and mount("-o", "remount,ro,bind", str(view))):
        pytest.skip("cannot bind-mount a read-only folder here (needs root)")
    try:
        yield source
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.mark.slow
def test_status_and_trials_read_a_study_on_a_read_only_disk(read_only_copy: Path, tmp_path: Path) -> None:
    study = write_mlp_study(read_only_copy, "archived", **ONE_SCALE)
    assert run_hpo("run", str(study), cwd=read_only_copy, timeout=300).returncode == 0
    archived = write_mlp_study(tmp_path, "archived", **ONE_SCALE, output=str(tmp_path / "view" / "out"))
    status = run_hpo("status", str(archived), cwd=tmp_path, timeout=120)
    table = run_hpo("trials", str(archived), "--csv", cwd=tmp_path, timeout=120)
    assert status.returncode == table.returncode == 0, status.stderr + table.stderr
    assert len(table.stdout.strip().splitlines()) == 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs; skips where mounting is not allowed (it needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_the_next_run_resumes(small_disk: Path) -> None:
    started = time.monotonic()
    study = write_mlp_study(small_disk, "full", scales=["w8", "w32"], trials_per_scale=4,
                            search="independent", max_concurrent=1, budget={"tokens": 16_000})
    driver = subprocess.Popen([*HPO, "run", str(study)], cwd=small_disk, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(load_trials(load_spec(study))) >= 1 if (small_disk / "out" / "optuna.db").exists()
             else False)
    filler = small_disk / "filler"
    with filler.open("wb") as stream:  # the disk fills up while trials run
        try:
            while True:
                stream.write(b"\0" * 2**20)
                stream.flush()
        except OSError:
            pass
    _, stderr = driver.communicate(timeout=600)

    assert driver.returncode == 2, stderr[-3000:]
    line = [line for line in stderr.splitlines() if line.startswith("hpo run: error:")]
    traceback_at = stderr.find("Traceback")
    assert traceback_at < 0, f"a traceback reached the terminal: {stderr[max(0, traceback_at - 500):][:4000]}"
    assert len(line) == 1, stderr[-3000:]
    assert "failed (" in line[0] and "free space on its disk" in line[0] and "details in" in line[0]
    finished_before = len(load_trials(load_spec(study)))

    filler.unlink()
    again = run_hpo("run", str(study), cwd=small_disk, timeout=600)

    assert again.returncode == 0, again.stderr[-3000:]
    result = audit(study)
    assert result.clean() and result.finished >= finished_before, result
    record("the disk of the study's output (a 64 MiB tmpfs) filled up mid-run, then freed and run again",
           "exit 2 in one line naming the store and the fix; the rerun completes the plan, nothing lost",
           result, time.monotonic() - started)


@pytest.mark.slow
def test_a_store_locked_past_its_timeout_stops_the_run_in_one_line_and_the_next_run_resumes(
        tmp_path: Path) -> None:
    """Another process (an open `sqlite3` shell, say) holds the Optuna store's write lock for longer than
    the 30 s a driver waits: the run ends in one line naming the store; run again once it is let go."""
    started = time.monotonic()
    study = write_mlp_study(tmp_path, "locked", scales=["w8"], trials_per_scale=6, search="independent",
                            max_concurrent=1, budget={"tokens": 16_000})
    driver = subprocess.Popen([*HPO, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    database = tmp_path / "out" / "optuna.db"
    wait_for(lambda: database.exists() and len(load_trials(load_spec(study))) >= 1)
    holder = sqlite3.connect(database, timeout=60)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _, stderr = driver.communicate(timeout=600)
    finally:
        holder.rollback()
        holder.close()

    assert driver.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("hpo run: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr
    assert "the Optuna store" in errors[0] and "locked" in errors[0] and "stop the process" in errors[0]

    again = run_hpo("run", str(study), cwd=tmp_path, timeout=600)

    assert again.returncode == 0, again.stderr[-3000:]
    result = audit(study)
    assert result.clean(), result
    record("the Optuna store (sqlite) locked by another process for longer than its 30 s timeout, mid-run",
           "exit 2 in one line naming the store and the fix; the rerun completes the plan, nothing lost",
           result, time.monotonic() - started)
