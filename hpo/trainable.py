"""The Ray Tune function trainable: one trial trains one model with `models.train`.

Every evaluation reports a result with these keys: ``loss``
(eval loss, the metric ASHA and Optuna minimise), ``tokens`` (tokens seen,
the fidelity ASHA counts in), ``train_loss``, ``lr`` (the learning rate at
that point), ``seconds`` (time in `models.train`'s loop so far),
``report_seconds`` (the part of ``seconds`` spent in earlier reports: Ray
Tune's function API blocks each report until the driver has taken it),
``status`` (``running``) and ``trial_number`` (the Optuna trial).

A diverged run reports once more with ``status="diverged"`` and a finite
penalty as ``loss``: `divergence_factor` × the loss of the first step, the
loss the divergence test compares against, so the sampler learns to avoid
that region. Exceptions of model code propagate: Ray marks the trial as
errored and the study goes on.

`trial_status` turns a trial's last result into its final status; the
searcher and the tracking callback both use it, so the two stores agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ray import tune

from models import Progress, TrainConfig, get_family, train

__all__ = ["CELL", "FinalStatus", "TrialJob", "divergence_penalty", "run_trial", "trial_status"]

FinalStatus = Literal["complete", "pruned", "diverged", "failed"]

CELL = "cell"
"""The trial config key naming the trial's (variant, scale): its Optuna study name, a key of the jobs."""


@dataclass(frozen=True)
class TrialJob:
    """What every trial of one (variant, scale) shares.

    `params` is the non-embedding parameter count N of `scale`; `budget_tokens`
    the full token budget D of a trial; `eval_every_tokens` the report interval
    (tokens); `train` the variant's fixed `TrainConfig` settings; `seed` seeds
    the model's initialisation and data order.
    """

    family: str
    scale: str
    params: int
    budget_tokens: int
    eval_every_tokens: int
    seed: int
    family_options: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)

    def config(self, lr: float, batch_size: int, weight_decay: float) -> TrainConfig:
        """The training configuration of a trial with these hyperparameters."""
        return TrainConfig(
            lr=lr, batch_size=batch_size, weight_decay=weight_decay, tokens=self.budget_tokens,
            eval_every_tokens=self.eval_every_tokens, seed=self.seed, **self.train,
        )


def divergence_penalty(initial_loss: float, divergence_factor: float) -> float:
    """The loss a diverged trial is scored with: `divergence_factor` × the first
    step's loss (infinite when that loss is not finite)."""
    return divergence_factor * initial_loss if math.isfinite(initial_loss) else math.inf


def run_trial(config: dict[str, Any], jobs: Mapping[str, TrialJob]) -> None:
    """Train one trial of ``jobs[config["cell"]]`` with the hyperparameters in
    `config` (``lr``, ``batch_size``, ``weight_decay``, ``trial_number``), reporting to Ray Tune."""
    job = jobs[config[CELL]]
    family = get_family(job.family, **job.family_options)
    train_config = job.config(float(config["lr"]), int(config["batch_size"]), float(config["weight_decay"]))
    number = int(config["trial_number"])

    waited = 0.0  # seconds spent in tune.report so far

    def report(progress: Progress) -> None:
        nonlocal waited
        start = time.perf_counter()
        tune.report({
            "loss": progress.eval_loss, "tokens": progress.tokens_seen, "train_loss": progress.train_loss,
            "lr": progress.lr, "seconds": progress.seconds, "report_seconds": waited, "status": "running",
            "trial_number": number,
        })
        waited += time.perf_counter() - start

    result = train(family, job.scale, train_config, report=report)
    if result.status == "diverged":
        tune.report({
            "loss": divergence_penalty(result.initial_loss, train_config.divergence_factor),
            "tokens": result.tokens_seen, "train_loss": result.train_loss, "seconds": result.seconds,
            "status": "diverged", "trial_number": number,
        })


def trial_status(result: Mapping[str, Any] | None, budget_tokens: int, *, error: bool = False) -> FinalStatus:
    """The final status of a trial from its last reported result: ``failed`` on
    an error or without any result, ``diverged`` if the trainable said so,
    ``pruned`` if it stopped before `budget_tokens` (ASHA stopped it), else ``complete``."""
    if error or not result or "tokens" not in result:
        return "failed"
    if result.get("status") == "diverged":
        return "diverged"
    if result["tokens"] < budget_tokens:
        return "pruned"
    return "complete"
