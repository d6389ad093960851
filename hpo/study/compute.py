"""What a study's tuning cost, against one full training run at the target scale.

Each trial's cost is its training compute in FLOPs, the family's
`train_flops(scale, tokens_seen)` (``6 · N · D`` by default: N non-embedding
parameters, D the tokens the trial trained on, pruned trials counted up to
where they stopped), and the seconds its training loop ran, times the CPUs
(or GPUs) it held. The study's total is compared with one run of the target:
``6 · N_target · D_target`` FLOPs, D_target from the study's budget rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["ScaleCompute", "StudyCompute", "study_compute", "target_flops"]


@dataclass(frozen=True)
class ScaleCompute:
    """One (variant, scale): trials finished, their FLOPs and device-seconds."""

    variant: str
    scale: str
    trials: int
    flops: float
    device_seconds: float


@dataclass(frozen=True)
class StudyCompute:
    """Every (variant, scale) of a study and the total, as a fraction of one target run."""

    scales: tuple[ScaleCompute, ...]
    target_flops: float

    @property
    def flops(self) -> float:
        """Tuning compute of the whole study, FLOPs."""
        return sum(scale.flops for scale in self.scales)

    @property
    def device_seconds(self) -> float:
        """CPU (or GPU) seconds of the study's training loops."""
        return sum(scale.device_seconds for scale in self.scales)

    @property
    def fraction_of_target(self) -> float:
        """Tuning FLOPs / FLOPs of one full training run at the target."""
        return self.flops / self.target_flops

    def summary(self) -> str:
        """One line: total FLOPs, share of a target run, device-seconds."""
        return (f"tuning compute {self.flops:.3g} FLOPs = {100 * self.fraction_of_target:.3g}% of one "
                f"target run ({self.target_flops:.3g} FLOPs); {self.device_seconds:,.0f} device-seconds")


def target_flops(target_params: float, target_tokens: float) -> float:
    """FLOPs of one training run at the target: ``6 · N · D``."""
    return 6.0 * target_params * target_tokens


def study_compute(trials: pd.DataFrame, *, devices_per_trial: float, target: float) -> StudyCompute:
    """Sum the ``flops`` and ``seconds`` columns of `trials` (a trial table
    read with its compute columns) per (variant, scale). `devices_per_trial`
    is the CPUs (or GPUs) one trial holds; `target` the FLOPs of one target run."""
    scales = tuple(
        ScaleCompute(str(variant), str(scale), len(rows), float(rows["flops"].sum()),
                     float(rows["seconds"].fillna(0).sum()) * devices_per_trial)
        for (variant, scale), rows in trials.groupby(["variant", "scale"], sort=False)
    )
    return StudyCompute(scales, target)
