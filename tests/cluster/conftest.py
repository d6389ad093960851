"""A Ray cluster of a head and two worker nodes on this machine (`ray.cluster_utils.Cluster`),
shared by the cluster tests; each test starts with two live workers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cluster_helpers import HERE, LocalCluster
from ray.cluster_utils import Cluster


@pytest.fixture(scope="package")
def local_cluster() -> Iterator[LocalCluster]:
    with pytest.MonkeyPatch.context() as patch:
        # Every node's workers import the test family from this folder.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        cluster = Cluster(initialize_head=True, connect=False,
                          head_node_args={"num_cpus": 0, "include_dashboard": False})
        nodes = LocalCluster(cluster)
        try:
            for _ in range(2):
                nodes.add_worker()
            yield nodes
        finally:
            cluster.shutdown()


@pytest.fixture
def ray_cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The shared cluster with exactly two live worker nodes."""
    while len(local_cluster.workers) < 2:
        local_cluster.add_worker()
    return local_cluster
