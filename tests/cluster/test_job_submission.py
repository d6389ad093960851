"""README "Run on a cluster", end to end: a head and a worker node started with ``ray start``, a
study run by ``ray job submit --working-dir . -- hpo run``, followed with ``ray job logs`` and
``ray job status``, its stores checked, and ``hpo status`` read through a second job.

The commands are the README's (its local walk-through), with this test's own ports, temporary
folders and token (`ray_start`); the jobs are submitted from the repository root, so the upload is
the repository as a user's checkout holds it, less what .gitignore and .rayignore leave out.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from ray_start import RayStartCluster, listening_addresses
from store_audit import audit, record

from hpo.store.optuna_store import finished_status, optuna_storage, optuna_study_name, stored_trials
from hpo.study.spec import load_spec
from hpo.vocab import FINAL_STATUSES

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 6


def write_study(folder: Path) -> Path:
    """A one-scale `mlp` study of `TRIALS` short trials; its output (and so its sqlite stores) at an
    absolute path, as on a cluster's shared file system: a job's working directory is a temporary copy."""
    path = folder / "job_study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "job_study", "family": "mlp", "family_options": {"val_examples": 256}, "scales": ["w8"],
        "target": 1_000_000, "budget": {"tokens": 6_000},
        "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": 32,
                  "weight_decay": {"low": 1e-4, "high": 0.1, "zero": True}},
        "trials_per_scale": TRIALS,
        "fidelity": {"grace_tokens": 1_500, "reduction_factor": 2, "eval_every_tokens": 750},
        "max_concurrent": 2, "output": str(folder / "out"),
    }))
    return path


def submit(cluster: RayStartCluster, *entrypoint: str, wait: bool) -> tuple[str, str]:
    """``ray job submit --address ... --working-dir . [--no-wait] -- ENTRYPOINT`` from the repository
    root; the submission id and the command's output."""
    job = f"hpo-test-{secrets.token_hex(4)}"
    done = cluster.ray("job", "submit", "--address", cluster.dashboard, "--working-dir", ".",
                       "--submission-id", job, *([] if wait else ["--no-wait"]), "--", *entrypoint,
                       cwd=ROOT, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{cluster.logs()}"
    return job, done.stdout + done.stderr


def plain(text: str) -> str:
    """`text` without the terminal's colour codes that Ray's command line writes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def status_counts(output: str) -> dict[str, int]:
    """The row of variant ``default`` in `hpo status`'s table: planned and each final status."""
    header: list[str] = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").replace("┃", "│").split("│")]
        if "planned" in cells:
            header = cells
        elif header and cells[0] == "default":
            return {name: int(cells[header.index(name)]) for name in ("planned", *FINAL_STATUSES)}
    raise AssertionError(f"no row for variant default in:\n{output}")


@pytest.mark.slow
def test_a_study_submitted_as_a_ray_job_runs_on_the_cluster(ray_start_cluster: RayStartCluster,
                                                            tmp_path: Path) -> None:
    started = time.monotonic()
    cluster = ray_start_cluster
    # The job server listens on the head's loopback only, and wants the cluster's token.
    assert listening_addresses(cluster.dashboard_port) == {"127.0.0.1"}
    assert cluster.job_server_answers(with_token=False) == 401

    study = write_study(tmp_path)
    job, _ = submit(cluster, "hpo", "run", str(study), wait=False)
    logs = cluster.ray("job", "logs", "--address", cluster.dashboard, "--follow", job, cwd=ROOT, timeout=600)
    status = cluster.ray("job", "status", "--address", cluster.dashboard, job, cwd=ROOT)
    assert f"Job '{job}' succeeded" in plain(status.stdout + status.stderr), (
        f"{status.stdout}\n{status.stderr}\n{logs.stdout[-4000:]}\n{logs.stderr[-2000:]}\n{cluster.logs()}")
    assert f"study job_study: {TRIALS} trials run now" in logs.stdout, logs.stdout[-4000:]

    # Both stores hold every planned trial once, and agree on how each ended.
    result = audit(study)
    assert result.planned == result.finished == TRIALS
    assert (result.lost, result.duplicated, result.running_optuna, result.running_mlflow) == (0, 0, 0, 0)
    spec = load_spec(study)
    trials = stored_trials(optuna_storage(spec.storage.optuna), optuna_study_name(spec.name, "default", "w8"))
    optuna_counts = Counter(finished_status(trial) for trial in trials)
    client = MlflowClient(spec.storage.mlflow)
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    children = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'trial'")
    assert len(children) == TRIALS and all(run.info.status == "FINISHED" for run in children)
    assert Counter(run.data.tags["status"] for run in children) == optuna_counts

    # `hpo status`, run on the head as a second job, shows those counts.
    _, output = submit(cluster, "hpo", "status", str(study), wait=True)
    counts = status_counts(output)
    assert counts == {"planned": TRIALS, **{name: optuna_counts.get(name, 0) for name in FINAL_STATUSES}}

    # The job's Python imported hpo from the uploaded working directory (first on its PYTHONPATH), which
    # holds the code and the studies but neither the virtual environment, git's folder nor study outputs.
    _, output = submit(cluster, "python", "-c", "import hpo, json, os; print('SEEN ' + json.dumps("
                       "[hpo.__file__, os.getcwd(), sorted(os.listdir('.'))]))", wait=True)
    hpo_file, cwd, listed = json.loads(re.findall(r"^SEEN (.*)$", output, flags=re.MULTILINE)[-1])
    assert "working_dir_files" in cwd and hpo_file == str(Path(cwd) / "hpo" / "__init__.py")
    assert str(cluster.root / "head") in cwd
    assert {"hpo", "models", "studies", "pyproject.toml"} <= set(listed)
    assert not {".venv", ".git", "runs", "mlruns"} & set(listed)
    record("study submitted with `ray job submit` to a `ray start` head and worker node",
           "job succeeded; `hpo status` job; counts", result, time.monotonic() - started)
