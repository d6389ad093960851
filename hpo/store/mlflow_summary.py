"""The study's summary run in MLflow: what `hpo analyze` concluded, where the runs are browsed.

One run per study experiment, tagged ``kind=summary`` and named
``summary · target N=9.8e+07``, holds the latest analysis (``hpo analyze``
replaces the previous summary run: the old one is deleted, which MLflow keeps
restorable, since params cannot change once logged):

* params ``variant``, ``lr``, ``batch_size`` (rounded to a power of two),
  ``weight_decay`` and ``params`` (N) are the recommended setting at the
  target, under the same keys as the trials' and scales' params, so the
  experiment's table lines them up with the per-scale optima; ``target_N``
  and ``target_D`` (tokens, or ``from laws``); ``out_of_range`` the
  recommended hyperparameters extrapolated outside their searched range
  (``none``, or e.g. ``batch_size 4096 > 1024``); ``crossover.{a}/{b}`` the
  verdict of each pair of variants (``ahead``, ``crossed``, ``none``, with
  the size and probability in words); ``fit.{variant}.{name}`` each fitted
  law as a formula (``lr* = 0.012·N^-0.31``, ``L = 1.2 + 45·N^-0.3``);
* metrics: ``loss`` (predicted at the target, nats per token), the interval
  bounds ``{quantity}_low`` / ``{quantity}_high`` of lr, batch size, weight
  decay and loss; per variant ``{variant}.lr``, ``.batch_size``,
  ``.weight_decay``, ``.loss``; per pair ``crossover.{a}/{b}.p_flip`` and
  ``.N``; per law its exponents ``fit.{variant}.{name}.b`` (and ``.c``,
  ``.alpha``); ``warnings`` and ``out_of_range`` (how many);
* its description (the run page's header) is the recommendation as text,
  warnings included; artifacts ``recommendation.txt``, ``trials.csv`` (the
  trial table) and ``plots/*.png``.

`summary_values` is pure (a `Recommendation` in, strings and numbers out);
`write_summary` talks to MLflow.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, Param, RunStatus

from hpo.analysis import Estimate, Recommendation
from hpo.analysis.loss_law import LossLaw
from hpo.analysis.power_law import PowerLaw
from hpo.analysis.report import format_recommendation
from hpo.store.mlflow_template import open_tracking_store

__all__ = ["SummaryValues", "summary_run_name", "summary_values", "write_summary"]

_DESCRIPTION = "mlflow.note.content"
"""The tag MLflow shows as a run's (or experiment's) description."""
_TAG_LIMIT = 8000
"""MLflow's longest tag value, in characters."""


@dataclass(frozen=True)
class SummaryValues:
    """What the summary run logs: `params` (text), `metrics` (finite numbers) and its `description`."""

    params: dict[str, str]
    metrics: dict[str, float]
    description: str


def summary_run_name(target_params: float) -> str:
    """The summary run's display name, e.g. ``summary · target N=9.8e+07``."""
    return f"summary · target N={target_params:.2g}"


def summary_values(recommendation: Recommendation) -> SummaryValues:
    """The params, metrics and description that record `recommendation` in MLflow."""
    best = recommendation.best
    params = {
        "variant": recommendation.variant,
        "lr": _text(best.lr.value),
        "batch_size": str(best.batch_size_power_of_two),
        "weight_decay": _text(best.weight_decay.value),
        "params": str(round(recommendation.target_params)),
        "target_N": _text(recommendation.target_params),
        "target_D": "from laws" if recommendation.target_tokens is None
        else _text(recommendation.target_tokens),
        "out_of_range": "; ".join(
            f"{o.hyperparameter} {_text(o.value)} {'>' if o.value > o.high else '<'} "
            f"{_text(o.high if o.value > o.high else o.low)}"
            + ("" if o.clipped is None else f" (clipped to {_text(o.clipped)})")
            for o in recommendation.out_of_range
        ) or "none",
    }
    metrics: dict[str, float] = {"loss": best.loss.value, "batch_size_fit": best.batch_size.value,
                                 "warnings": float(len(recommendation.warnings)),
                                 "out_of_range": float(len(recommendation.out_of_range))}
    for name, estimate in (("lr", best.lr), ("batch_size", best.batch_size),
                           ("weight_decay", best.weight_decay), ("loss", best.loss)):
        metrics[f"{name}_low"], metrics[f"{name}_high"] = estimate.low, estimate.high
    for setting in recommendation.settings:
        for name in ("lr", "batch_size", "weight_decay", "loss"):
            estimate: Estimate = getattr(setting, name)
            metrics[f"{setting.variant}.{name}"] = estimate.value
    for crossover in recommendation.crossovers:
        key = f"crossover.{crossover.variant_a}/{crossover.variant_b}"
        params[key] = _crossover_text(crossover.verdict, crossover.params, crossover.p_flip,
                                      crossover.leader_at_largest, crossover.leader_at_target)
        metrics[f"{key}.p_flip"] = crossover.p_flip
        metrics[f"{key}.N"] = crossover.params.value
    for variant, fit in recommendation.fit.variants.items():
        for name, law in fit.laws.items():
            params[f"fit.{variant}.{name}"] = _power_law_text(name, law)
            metrics[f"fit.{variant}.{name}.b"] = law.b
            if law.c is not None:
                metrics[f"fit.{variant}.{name}.c"] = law.c
        for name, value in fit.fixed.items():
            params[f"fit.{variant}.{name}"] = f"{name} = {_text(value)} (not scaled)"
        if fit.loss_law is not None:
            params[f"fit.{variant}.loss"] = _loss_law_text(fit.loss_law)
            metrics[f"fit.{variant}.loss.alpha"] = fit.loss_law.alpha
    finite = {key: float(value) for key, value in metrics.items() if math.isfinite(value)}
    return SummaryValues(params, finite, format_recommendation(recommendation))


def write_summary(tracking_uri: str, experiment_name: str, recommendation: Recommendation,
                  trials: pd.DataFrame, plots: Sequence[Path] = ()) -> str:
    """Replace the summary run of experiment `experiment_name` with one for `recommendation`.

    Logs `summary_values`, the trial table `trials` as ``trials.csv`` and the
    PNG files `plots` under ``plots/``; returns the new run's id. Raises
    `ValueError` when the experiment does not exist (the study never ran).
    """
    client = open_tracking_store(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"MLflow has no experiment {experiment_name!r} at {tracking_uri}: "
                         "run the study first, or pass --no-mlflow")
    experiment_id = experiment.experiment_id
    old = client.search_runs([experiment_id], filter_string="tags.kind = 'summary'", max_results=1000)
    values = summary_values(recommendation)
    study = experiment_name
    tags = {"kind": "summary", "study": study, "variant": recommendation.variant, "scale": "target",
            "N": str(round(recommendation.target_params)), _DESCRIPTION: _markdown(values.description)}
    run = client.create_run(experiment_id, tags=tags, run_name=summary_run_name(recommendation.target_params))
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, params=[Param(key, value) for key, value in values.params.items()],
                     metrics=[Metric(key, value, now, 0) for key, value in values.metrics.items()])
    with tempfile.TemporaryDirectory() as folder:
        text, table = Path(folder) / "recommendation.txt", Path(folder) / "trials.csv"
        text.write_text(values.description + "\n")
        trials.to_csv(table, index=False)
        client.log_artifact(run_id, str(text))
        client.log_artifact(run_id, str(table))
    for path in plots:
        client.log_artifact(run_id, str(path), artifact_path="plots")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    for previous in old:
        client.delete_run(previous.info.run_id)
    return run_id


def _markdown(text: str, limit: int = _TAG_LIMIT) -> str:
    """Plain-text tables as a Markdown code block (the UI renders descriptions as Markdown), cut to
    MLflow's `limit` on a tag's length (characters) with a pointer to the full text."""
    block = f"```\n{text}\n```"
    if len(block) <= limit:
        return block
    tail = "\n…\n```\nThe full report is the artifact `recommendation.txt`."
    return block[: limit - len(tail)].rsplit("\n", 1)[0] + tail


def _text(value: float) -> str:
    """Four significant digits: 0.003162 → ``0.003162``, 98000000 → ``9.8e+07``."""
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _crossover_text(verdict: str, params: Estimate, p_flip: float, leader_at_largest: str,
                    leader_at_target: str) -> str:
    """A crossover verdict in words, e.g. ``ahead: no_wd overtakes baseline at N ≈ 3.2e+08 (P flip 0.62)``."""
    if verdict == "none":
        return f"none: {leader_at_target} leads up to the target (P flip {p_flip:.2f})"
    where = "" if math.isnan(params.value) else f" at N ≈ {params.value:.2g}"
    if verdict == "ahead":
        return f"ahead: {leader_at_target} overtakes {leader_at_largest}{where} (P flip {p_flip:.2f})"
    return f"crossed: {leader_at_largest} leads since{where} (P flip {p_flip:.2f})"


def _power_law_text(name: str, law: PowerLaw) -> str:
    """``lr* = 0.012·N^-0.31`` (``·D^0.1`` when the law is in (N, D))."""
    tokens = "" if law.c is None else f"·D^{law.c:.3g}"
    return f"{name}* = {law.a:.3g}·N^{law.b:.3g}{tokens}"


def _loss_law_text(law: LossLaw) -> str:
    """``L = E + A·N^-α`` (``+ B·D^-β`` when in (N, D); C instead of N for a compute law)."""
    x = "N" if law.variable == "params" else "C"
    tokens = "" if law.B is None or law.beta is None else f" + {law.B:.3g}·D^-{law.beta:.3g}"
    return f"L = {law.E:.3g} + {law.A:.3g}·{x}^-{law.alpha:.3g}{tokens}"
