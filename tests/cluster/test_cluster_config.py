"""ray_cluster.yaml, checked offline against the cluster-launcher schema of the installed ray."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[2] / "ray_cluster.yaml"


def raw() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def prepared(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` validates: the config merged with the provider's defaults."""
    config = prepare_config(copy.deepcopy(config))
    validate_config(config)
    return config


def test_cluster_config_passes_rays_own_validation() -> None:
    config = prepared(raw())
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]


def test_cluster_has_an_autoscaled_cpu_and_gpu_worker_type() -> None:
    config = prepared(raw())
    types = config["available_node_types"]
    head = types.pop(config["head_node_type"])
    assert head["resources"].get("CPU") == 0, "the head runs drivers and stores, not trials"
    gpu = [node for node in types.values() if node["resources"].get("GPU", 0) >= 1]
    cpu = [node for node in types.values() if node["resources"].get("CPU", 0) >= 1
           and not node["resources"].get("GPU")]
    assert gpu and cpu
    for node in types.values():
        assert 0 <= node["min_workers"] < node["max_workers"] <= config["max_workers"]


def test_every_node_gets_this_project_and_its_studies() -> None:
    config = raw()
    assert Path(config["file_mounts"]["~/hpo"]) == Path(".")
    assert (CONFIG.parent / "studies").is_dir()
    setup = " ".join(config["setup_commands"])
    assert 'pip install -q -c ~/hpo/constraints.txt -e "$HOME/hpo[postgres,cluster]"' in setup
    assert "/mnt/shared" in setup
    assert ".venv" in config["rsync_exclude"]


def test_every_node_gets_the_job_server_and_token_authentication() -> None:
    """The `cluster` extra brings Ray's dashboard and job server (without it the head runs in minimal
    mode and `ray job submit` fails); every node starts Ray with the token `ray up` copies to it."""
    pyproject = tomllib.loads((CONFIG.parent / "pyproject.toml").read_text())
    cluster = pyproject["project"]["optional-dependencies"]["cluster"]
    assert any(requirement.startswith("ray[default") for requirement in cluster)
    config = raw()
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [command for command in config[key] if "ray start" in command]
        assert starts and all("RAY_AUTH_MODE=token ray start" in command for command in starts)


def test_readme_runs_the_commands_of_the_job_submission_test() -> None:
    """README "Run on a cluster" shows the commands tests/cluster/test_job_submission.py runs."""
    readme = (CONFIG.parent / "README.md").read_text()
    section = readme[readme.index("## Run on a cluster"):readme.index("## Train one model from Python")]
    lines = " ".join(section.replace("\\\n", " ").split())
    for command in (
        "ray get-auth-token --generate", "export RAY_AUTH_MODE=token",
        "ray start --head --node-ip-address 127.0.0.1 --num-cpus 0 --dashboard-host 127.0.0.1 --temp-dir",
        "ray start --address 127.0.0.1:6379 --node-ip-address 127.0.0.1 --num-cpus 2 --temp-dir",
        "ray job submit --address http://127.0.0.1:8265 --working-dir . --submission-id quickstart-1 "
        "--no-wait -- hpo run",
        "ray job logs --address http://127.0.0.1:8265 --follow quickstart-1",
        "ray job status --address http://127.0.0.1:8265 quickstart-1",
        "ray job submit --address http://127.0.0.1:8265 --working-dir . -- hpo status",
        'pip install -c constraints.txt -e ".[cluster,postgres]"',
    ):
        assert command in lines, command


def test_dashboard_listens_on_the_heads_loopback_only() -> None:
    start = " ".join(raw()["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start
    assert "0.0.0.0" not in CONFIG.read_text()


def test_values_a_user_must_choose_are_marked() -> None:
    lines = CONFIG.read_text().splitlines()
    for key in ("region:", "ImageId:"):
        chosen = [line for line in lines if line.strip().startswith(key)]
        assert chosen and all("FILL IN" in line for line in chosen)
    mount = next(i for i, line in enumerate(lines) if "fs-0123456789abcdef0" in line)
    assert "FILL IN" in lines[mount - 2]


@pytest.mark.parametrize("break_it", [
    lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=-1),
    lambda c: c["available_node_types"]["cpu_worker"].update(max_wokers=3),
    lambda c: c.update(head_node_type="nowhere"),
])
def test_validation_catches_a_broken_config(break_it: Any) -> None:
    """The check above is not vacuous: a negative resource, a misspelt key or
    an unknown head type fails it."""
    config = raw()
    break_it(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        prepared(config)
