"""`hpo.search.scheduler`: the rungs a trial reports at are the rungs Ray Tune's ASHA judges at."""

from __future__ import annotations

import pytest
from ray.tune.schedulers import ASHAScheduler

from hpo.search.scheduler import rung_tokens


@pytest.mark.parametrize(("grace", "budget", "reduction_factor"), [
    (1000, 4000, 2), (37, 1000, 3), (966_399, 966_400, 2), (100, 100, 3), (10, 1_000_000, 4), (1, 27, 3),
    (740_740, 20_000_000, 3),
])
def test_rung_tokens_are_the_rungs_of_ray_tunes_asha(grace: int, budget: int, reduction_factor: int) -> None:
    asha = ASHAScheduler(time_attr="tokens", metric="loss", mode="min", max_t=budget, grace_period=grace,
                         reduction_factor=reduction_factor)
    (bracket,) = asha._brackets  # Ray keeps its rungs private; this test guards against them moving
    assert list(rung_tokens(grace, budget, reduction_factor)) == sorted(
        milestone for milestone, _ in bracket._rungs)
