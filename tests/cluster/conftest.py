"""Fixtures of the cluster tests: a Ray cluster of a head and two worker nodes on
this machine (`ray.cluster_utils.Cluster`), one of real ``ray start`` processes
(`ray_start.start_cluster`), and a throwaway PostgreSQL server."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from cluster_helpers import HERE, LocalCluster
from pg_server import PostgresServer, postgres_server, server_binaries
from ray.cluster_utils import Cluster
from ray_start import RayStartCluster, start_cluster


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    """The cluster, shared by a module's tests. Its nodes keep their sessions in a
    folder of their own, so no other ``ray.init()`` on this machine finds and joins it."""
    temp_dir = tempfile.mkdtemp(prefix="hpo-ray-")
    with pytest.MonkeyPatch.context() as patch:
        # Every node's workers import the test family from this folder.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        cluster = Cluster(initialize_head=True, connect=False,
                          head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": temp_dir})
        nodes = LocalCluster(cluster, temp_dir)
        try:
            for _ in range(2):
                nodes.add_worker()
            yield nodes
        finally:
            cluster.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ray_cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The shared cluster with exactly two live worker nodes."""
    while len(local_cluster.workers) < 2:
        local_cluster.add_worker()
    return local_cluster


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A fresh server; without its binaries the test skips, except under CI, where it fails."""
    if server_binaries() is None:
        message = "PostgreSQL server binaries not found: run .ci/install_postgres.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server(password=f"pw-{secrets.token_hex(8)}") as server:
        yield server


@pytest.fixture(scope="module")
def ray_start_cluster() -> Iterator[RayStartCluster]:
    """A head and one worker node started with ``ray start``, stopped at the end of the module.
    Without Ray's job server (``pip install -e '.[cluster]'``) the test skips, except under CI."""
    if importlib.util.find_spec("aiohttp_cors") is None:
        message = "Ray's dashboard and job server are not installed: pip install -e '.[cluster]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
