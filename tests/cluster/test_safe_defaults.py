"""Safe by default: what the CLI starts listens on 127.0.0.1, and no user file is
loaded by anything that can run code (pickle, unsafe YAML)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import ray
import yaml
from ray_start import descendants, listening_sockets

from hpo import cli
from hpo.run.runner import start_ray
from hpo.study import checks as _checks

ROOT = Path(__file__).resolve().parents[2]


def test_a_local_ray_runtime_binds_its_dashboard_to_loopback() -> None:
    started = start_ray(num_cpus=1)
    try:
        node = ray._private.worker._global_node  # Ray has no public accessor for the bind address
        assert node._ray_params.dashboard_host == "127.0.0.1"
        assert not node._ray_params.include_dashboard
    finally:
        if started:
            ray.shutdown()


def test_every_process_of_a_local_ray_runtime_listens_on_loopback_only() -> None:
    """With Ray's dashboard package installed (the `cluster` extra) a runtime also starts its dashboard
    agent and metrics exporter: `hpo run`'s local runtime keeps every listener on 127.0.0.1."""
    started = start_ray(num_cpus=1)
    try:
        ray.get(ray.remote(lambda: None).remote())  # a worker process too
        sockets = listening_sockets(descendants(os.getpid()))
        assert sockets, "no listening socket found: the runtime's processes are not children of this one"
        assert {address for address, _ in sockets} == {"127.0.0.1"}, sorted(sockets)
    finally:
        if started:
            ray.shutdown()


def test_the_mlflow_ui_binds_to_loopback_unless_told() -> None:
    args = cli.build_parser().parse_args(["ui", "study.yaml"])
    assert args.host == "127.0.0.1"


def test_study_files_are_read_with_a_safe_yaml_loader() -> None:
    assert issubclass(_checks._Loader, yaml.SafeLoader)
    assert not issubclass(_checks._Loader, yaml.UnsafeLoader | yaml.FullLoader)


UNSAFE = re.compile(r"pickle\.loads?\(|torch\.load\(|read_pickle\(|allow_pickle\s*=\s*True|"
                    r"yaml\.(unsafe_)?load\((?![^)]*Loader=_Loader)|(?<![.\w])eval\(|(?<![.\w])exec\(|marshal\.loads?\(")


def test_no_module_unpickles_or_evaluates_what_it_reads() -> None:
    """Study files, trial tables and corpora are data: nothing in hpo/ or models/
    loads them with pickle, torch.load, unsafe YAML, eval or exec."""
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for folder in ("hpo", "models") for path in sorted((ROOT / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1) if UNSAFE.search(line)]
    assert not found, found
