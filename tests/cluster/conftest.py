"""A Ray cluster of a head and two worker nodes on this machine (`ray.cluster_utils.Cluster`),
shared by the cluster tests; each test starts with two live workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import ray._private.node
from cluster_helpers import HERE
from ray.cluster_utils import Cluster


@dataclass
class LocalCluster:
    """The cluster, its `address` for ``hpo run --address``, and its live worker nodes.
    The head offers no CPUs: trials run on the workers only."""

    cluster: Cluster
    workers: list[ray._private.node.Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head_id(self) -> str:
        return self.cluster.head_node.node_id

    def add_worker(self) -> ray._private.node.Node:
        """Start one more 1-CPU worker node (what an autoscaler does for a lost one)."""
        node = self.cluster.add_node(num_cpus=1, include_dashboard=False)
        self.workers.append(node)
        return node

    def kill_worker(self, node: ray._private.node.Node) -> None:
        """Kill every process of a worker node at once, as a preempted instance vanishes."""
        self.workers.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)


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
