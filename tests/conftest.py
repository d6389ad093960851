"""Fixtures shared by every test: one local Ray runtime per session, for the tests that run trials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from hpo.run.runner import start_ray


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    """A local Ray runtime with 2 CPUs, shared by every test that runs trials."""
    start_ray(num_cpus=2)
    yield
    ray.shutdown()
