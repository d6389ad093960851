"""``independent``: every scale searched on its own, over the variant's full space.

The baseline a scale-aware search is measured against: each (variant,
scale) runs the study's trials per scale T, suggested by the sampler (TPE)
over the full space and stopped early by ASHA on tokens; no scale waits for
another, and nothing is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo.search.plan import ScalePlan, full_plan
from hpo.search.strategy import ScaleToPlan, SearchStrategy

__all__ = ["Independent"]


@dataclass(frozen=True)
class Independent(SearchStrategy):
    """Each scale on its own: T sampler trials over the full space (no settings)."""

    name = "independent"

    def plan(self, scale: ScaleToPlan) -> ScalePlan:
        return full_plan(scale.scale, scale.space, scale.trials, "search: independent")
