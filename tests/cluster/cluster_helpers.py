"""Shared by the cluster tests: study files, the local cluster, and drivers in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ray._private.node
import yaml
from ray.cluster_utils import Cluster

HERE = Path(__file__).resolve().parent
HPO = [sys.executable, "-m", "hpo.cli"]
FAMILY = "cluster_families:NodeRecordingMLP"


@dataclass
class LocalCluster:
    """The cluster, its `address` for ``hpo run --address``, and its live worker
    nodes, all keeping their sessions in `temp_dir`. The head offers no CPUs:
    trials run on the workers only."""

    cluster: Cluster
    temp_dir: str
    workers: list[ray._private.node.Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head_id(self) -> str:
        return self.cluster.head_node.node_id

    def add_worker(self) -> ray._private.node.Node:
        """Start one more 1-CPU worker node (what an autoscaler does for a lost one)."""
        node = self.cluster.add_node(num_cpus=1, include_dashboard=False, temp_dir=self.temp_dir)
        self.workers.append(node)
        return node

    def kill_worker(self, node: ray._private.node.Node) -> None:
        """Kill every process of a worker node at once (SIGKILL), as a preempted instance vanishes."""
        self.workers.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)


def driver_env(**extra: str) -> dict[str, str]:
    """The environment of a driver subprocess: this folder importable (the test family)."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def write_study(folder: Path, name: str, *, records: Path, trials: int = 6, tokens: int = 6_000,
                step_seconds: float = 0.01, **fields: object) -> Path:
    """A one-scale study (mlp w8, batch size 32) of the recording family: each
    trial trains `tokens` examples in tokens/32 steps of at least `step_seconds` (s)."""
    study = {
        "name": name, "family": FAMILY,
        "family_options": {"record_dir": str(records), "step_seconds": step_seconds, "val_examples": 256},
        "scales": ["w8"], "target": 1_000_000, "budget": {"tokens": tokens},
        "space": {"lr": {"low": 1e-3, "high": 0.3}, "batch_size": 32,
                  "weight_decay": {"low": 1e-4, "high": 0.1, "zero": True}},
        "trials_per_scale": trials,
        "fidelity": {"grace_tokens": tokens // 4, "reduction_factor": 2, "eval_every_tokens": tokens // 8},
        "max_concurrent": 2, "output": str(folder / name), **fields,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def hpo(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``hpo ARGS`` to the end."""
    return subprocess.run([*HPO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(env or driver_env()))


def start_driver(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``hpo ARGS`` in its own session; its stderr goes to a file beside the study."""
    log = (cwd / f"driver-{time.time_ns()}.log").open("w")
    return subprocess.Popen([*HPO, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=log, text=True,
                            env=dict(env or driver_env()), start_new_session=True)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str,
             driver: subprocess.Popen[str] | None = None) -> None:
    """Poll `condition` every 0.2 s until it holds; fail after `timeout` s or when `driver` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if driver is not None:
            assert driver.poll() is None, f"the driver exited ({driver.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def attempts(records: Path) -> list[dict[str, object]]:
    """Every trial attempt so far: its Ray node id, Tune trial id, pid and alive-file name."""
    found = []
    for path in sorted(records.glob("attempt-*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # being written right now
            continue
    return found


def training_on(records: Path, node_id: str, within: float = 0.5) -> list[dict[str, object]]:
    """The attempts on `node_id` that took a training step in the last `within` seconds."""
    now = time.time()
    live = []
    for attempt in attempts(records):
        alive = records / str(attempt["alive"])
        try:
            if attempt["node"] == node_id and now - alive.stat().st_mtime < within:
                live.append(attempt)
        except FileNotFoundError:
            continue
    return live
