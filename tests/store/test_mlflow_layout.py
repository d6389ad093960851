"""What the MLflow store holds for a user browsing it, written to a real sqlite store (no Ray):
the scale runs' best-trial params and their immutability, and the study's summary run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from hpo.analysis import extrapolate
from hpo.evaluation.synthetic import crossing_variants, make_synthetic_trials
from hpo.search.plan import full_plan
from hpo.store.mlflow_summary import summary_values, write_summary
from hpo.store.mlflow_tracker import MlflowTracker
from hpo.store.tracker import ScaleRecord, ScaleResult
from hpo.study.space import LogRange, SearchSpace

PLAN = full_plan("13k", SearchSpace(lr=LogRange(1e-4, 1e-2), batch_size=64, weight_decay=0.0), 2, "search")


def best_trial(number: int, loss: float, lr: float, batch_size: int, weight_decay: float,
               run_id: str) -> ScaleResult:
    """A scale whose best complete trial is `number`."""
    return ScaleResult(number, loss, {"lr": lr, "batch_size": batch_size, "weight_decay": weight_decay},
                       run_id, None)


def scale(variant: str, name: str, params: int, trials: int) -> ScaleRecord:
    return ScaleRecord("layout", variant, name, params=params, budget_tokens=300_000, seed=0, trials=trials)


@pytest.fixture
def tracker(tmp_path: Path) -> MlflowTracker:
    return MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "layout", tmp_path / "artifacts")


def test_scale_run_is_named_scale_first_and_marks_the_experiment_as_model_training(
        tracker: MlflowTracker) -> None:
    record = tracker.start_scale(scale("no_wd", "100k", 100_032, 8), PLAN)
    run = tracker.client.get_run(record.id)
    assert run.info.run_name == "100k · no_wd"
    tags = {"study": "layout", "variant": "no_wd", "scale": "100k", "N": "100032"}
    assert tags.items() <= run.data.tags.items()
    assert "N = 100,032 parameters" in run.data.tags["mlflow.note.content"]
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_scale_run_carries_its_best_trial_and_flags_params_a_later_best_cannot_replace(
        tracker: MlflowTracker) -> None:
    record = tracker.start_scale(scale("baseline", "13k", 12_736, 2), PLAN)
    tracker.end_scale(record, best_trial(3, 2.5, 3.2e-3, 64, 0.1, "run-a"))
    run = tracker.client.get_run(record.id)
    assert run.data.params["lr"] == "0.0032" and run.data.params["batch_size"] == "64"
    assert run.data.params["weight_decay"] == "0.1"
    assert run.data.metrics["loss"] == pytest.approx(2.5)
    assert run.data.tags["params_trial"] == "3" and "params_stale" not in run.data.tags
    assert run.info.status == "FINISHED"

    # A resumed study with more trials per scale finds a better trial: params cannot change.
    again = tracker.start_scale(scale("baseline", "13k", 12_736, 4), PLAN)
    assert again.id == record.id
    tracker.end_scale(again, best_trial(9, 2.4, 1e-3, 32, 0.0, "run-b"))
    run = tracker.client.get_run(record.id)
    assert run.data.params["lr"] == "0.0032" and run.data.tags["params_trial"] == "3"
    assert run.data.tags["params_stale"] == "true"
    assert run.data.metrics["loss"] == pytest.approx(2.4)
    assert run.data.metrics["best_lr"] == pytest.approx(1e-3)
    assert run.data.tags["best_trial_number"] == "9" and run.data.tags["best_run_id"] == "run-b"


def test_summary_run_holds_the_recommendation_and_replaces_the_previous_one(
        tracker: MlflowTracker, tmp_path: Path) -> None:
    trials = make_synthetic_trials(crossing_variants(3e8), [1e7, 3e7, 1e8, 3e8, 1e9], trials_per_cell=12)
    recommendation = extrapolate(trials, target_params=1e10, n_bootstrap=20)
    values = summary_values(recommendation)
    assert values.params["variant"] == recommendation.variant
    assert int(values.params["batch_size"]) == recommendation.batch_size_power_of_two
    assert float(values.params["lr"]) == pytest.approx(recommendation.lr.value, rel=1e-3)
    assert values.metrics["loss"] == pytest.approx(recommendation.loss.value)
    assert any(key.startswith("crossover.") for key in values.params)
    assert values.params[f"fit.{recommendation.variant}.lr"].startswith("lr* = ")
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")

    client = MlflowClient(tracker.tracking_uri)
    first = tracker.write_summary(recommendation, trials, [plot])
    second = tracker.write_summary(recommendation, trials, [plot])
    active = client.search_runs([tracker.experiment_id], filter_string="tags.kind = 'summary'")
    assert [run.info.run_id for run in active] == [second]
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    run = active[0]
    assert run.info.run_name == "summary · target N=1e+10"
    assert run.data.tags["mlflow.note.content"].startswith("```\nRecommendation for N = 1e+10")
    artifacts = {a.path for folder in (None, "plots") for a in client.list_artifacts(second, folder)}
    assert {"recommendation.txt", "trials.csv", "plots/plot.png"} <= artifacts


def test_summary_needs_the_study_experiment(tmp_path: Path) -> None:
    trials = make_synthetic_trials(crossing_variants(3e8), [1e7, 1e8, 1e9], trials_per_cell=12)
    recommendation = extrapolate(trials, target_params=1e10, n_bootstrap=20)
    with pytest.raises(ValueError, match="no experiment 'missing'"):
        write_summary(f"sqlite:///{tmp_path / 'mlflow.db'}", "missing", recommendation, trials)


def test_a_long_report_is_cut_to_mlflow_tag_limit_pointing_to_the_full_text() -> None:
    from hpo.store.mlflow_summary import _markdown

    report = "\n".join(f"- warning {i}: " + "x" * 80 for i in range(200))
    description = _markdown(report)
    assert len(description) <= 8000 and description.startswith("```\n- warning 0")
    assert description.endswith("The full report is the artifact `recommendation.txt`.")
    assert _markdown("short") == "```\nshort\n```"


def test_summary_names_the_hyperparameters_recommended_outside_the_searched_range() -> None:
    trials = make_synthetic_trials(crossing_variants(3e8)[:1], [1e7, 1e8, 1e9], trials_per_cell=12)
    inside = summary_values(extrapolate(trials, target_params=1e10, n_bootstrap=10))
    assert inside.params["out_of_range"] == "none" and inside.metrics["out_of_range"] == 0
    recommendation = extrapolate(trials, target_params=1e10, n_bootstrap=10, searched={"batch_size": (8, 64)},
                                 clip_to={"batch_size": (8, 64)})
    values = summary_values(recommendation)
    assert values.params["out_of_range"].startswith("batch_size ")
    assert values.params["out_of_range"].endswith("> 64 (clipped to 64)")
    assert values.metrics["out_of_range"] == 1
    assert int(values.params["batch_size"]) == 64
