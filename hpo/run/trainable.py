"""The Ray Tune function trainable: one trial trains one model with `models.training`.

A trial evaluates every ``eval_every_tokens`` but reports to Ray Tune only
when the driver must decide something: at the first evaluation at or past
each ASHA rung (`TrialJob.rung_tokens`) and at the end. Ray Tune's function
API holds every report until the driver has taken it (a round trip through
the scheduler, the searcher and the callbacks), so reporting each evaluation
would make the trial wait that many times. A report carries the evaluations
since the previous one as ``curve``, a list of points with keys ``tokens``,
``loss`` (eval loss), ``train_loss`` and ``lr`` (the learning rate then), so
Optuna's intermediate values and MLflow's loss curve still hold every
evaluation. Its top-level keys are the latest point's ``loss`` (the metric
ASHA and Optuna minimise) and ``tokens`` (tokens seen, the fidelity ASHA
counts in), ``train_loss``, ``lr``, ``seconds`` (time in `models.training`'s
loop so far), ``report_seconds`` (the part of ``seconds`` spent blocked in
earlier reports), ``status`` (``running``) and ``trial_number`` (the Optuna trial).

A diverged run reports once more with ``status="diverged"``, the evaluations
not reported yet as its ``curve``, and a finite penalty as ``loss``:
`divergence_factor` × the loss of the first step, the loss the divergence
test compares against, so the sampler learns to avoid that region.
Exceptions of model code propagate: Ray marks the trial as errored and the
study goes on.

`trial_status` turns a trial's last result into its final status; the
searcher and the tracking callback both use it, so the two stores agree.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from hpo.vocab import COMPLETE, DIVERGED, FAILED, PRUNED, FinalStatus
from models import ModelFamily, Progress, TrainConfig, get_family, train

__all__ = ["CELL", "TrialJob", "curve_points", "divergence_penalty", "run_trial",
           "trial_status"]


CELL = "cell"
"""The trial config key naming the trial's (variant, scale): its Optuna study name, a key of the jobs."""
CURVE = "curve"
"""The result key holding the evaluations since the previous report."""


@dataclass(frozen=True)
class TrialJob:
    """What every trial of one (variant, scale) shares.

    `params` is the non-embedding parameter count N of `scale`; `budget_tokens`
    the full token budget D of a trial; `eval_every_tokens` the evaluation
    interval (tokens); `rung_tokens` the token counts at which ASHA judges a
    trial (a report goes to Ray Tune at the first evaluation at or past each,
    and at the end); `train` the variant's fixed `TrainConfig` settings;
    `seed` seeds the model's initialisation and data order.
    """

    family: str
    scale: str
    params: int
    budget_tokens: int
    eval_every_tokens: int
    seed: int
    rung_tokens: tuple[int, ...]
    family_options: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)

    def config(self, lr: float, batch_size: int, weight_decay: float, seed: int | None = None) -> TrainConfig:
        """The training configuration of a trial with these hyperparameters (and its own `seed`, else
        the job's)."""
        return TrainConfig(
            lr=lr, batch_size=batch_size, weight_decay=weight_decay, tokens=self.budget_tokens,
            eval_every_tokens=self.eval_every_tokens, seed=self.seed if seed is None else seed, **self.train,
        )


def divergence_penalty(initial_loss: float, divergence_factor: float) -> float:
    """The loss a diverged trial is scored with: `divergence_factor` × the first
    step's loss (infinite when that loss is not finite)."""
    return divergence_factor * initial_loss if math.isfinite(initial_loss) else math.inf


def curve_points(result: Mapping[str, Any]) -> Iterator[Mapping[str, float]]:
    """The evaluations a result carries (``tokens``, ``loss``, ``train_loss``, ``lr``), oldest first."""
    yield from result.get(CURVE, ())


@functools.cache
def _family(name: str, options: str) -> ModelFamily:
    """The family `name` with the JSON `options`, made once per trial process:
    a process that Ray Tune reuses for trial after trial keeps what a family
    builds when made or first used (the `gpt` corpus, the `mlp` teacher and
    its validation set; tens of milliseconds each). A family's models and
    batches are functions of their arguments (`models.ModelFamily`), so
    trials share one safely."""
    return get_family(name, **json.loads(options))


def run_trial(config: dict[str, Any], jobs: Mapping[str, TrialJob]) -> None:
    """Train one trial of ``jobs[config["cell"]]`` with the hyperparameters in `config` (``lr``,
    ``batch_size``, ``weight_decay``, ``trial_number``, and ``seed`` when the trial has its own),
    reporting to Ray Tune."""
    job = jobs[config[CELL]]
    family = _family(job.family, json.dumps(dict(job.family_options), sort_keys=True))
    train_config = job.config(float(config["lr"]), int(config["batch_size"]), float(config["weight_decay"]),
                              seed=int(config.get("seed", job.seed)))
    number = int(config["trial_number"])
    rungs = sorted(job.rung_tokens)
    pending: list[dict[str, float]] = []  # evaluations not reported yet
    waited = 0.0  # seconds spent in tune.report so far

    def send(result: dict[str, Any]) -> None:
        nonlocal waited
        start = time.perf_counter()
        tune.report({**result, CURVE: list(pending), "trial_number": number})
        pending.clear()
        waited += time.perf_counter() - start

    def report(progress: Progress) -> None:
        pending.append({"tokens": progress.tokens_seen, "loss": progress.eval_loss,
                        "train_loss": progress.train_loss, "lr": progress.lr})
        passed = [rung for rung in rungs if rung <= progress.tokens_seen]
        if not passed and progress.tokens_seen < job.budget_tokens:
            return
        del rungs[:len(passed)]
        send({"loss": progress.eval_loss, "tokens": progress.tokens_seen, "train_loss": progress.train_loss,
              "lr": progress.lr, "seconds": progress.seconds, "report_seconds": waited, "status": "running"})

    result = train(family, job.scale, train_config, report=report)
    if result.status == "diverged":
        send({"loss": divergence_penalty(result.initial_loss, train_config.divergence_factor),
              "tokens": result.tokens_seen, "train_loss": result.train_loss, "seconds": result.seconds,
              "report_seconds": waited, "status": DIVERGED})


def trial_status(result: Mapping[str, Any] | None, budget_tokens: int, *, error: bool = False) -> FinalStatus:
    """The final status of a trial from its last reported result: ``failed`` on
    an error or without any result, ``diverged`` if the trainable said so,
    ``pruned`` if it stopped before `budget_tokens` (ASHA stopped it), else ``complete``."""
    if error or not result or "tokens" not in result:
        return FAILED
    if result.get("status") == DIVERGED:
        return DIVERGED
    if result["tokens"] < budget_tokens:
        return PRUNED
    return COMPLETE
