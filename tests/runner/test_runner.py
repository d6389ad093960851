"""run_study end to end on a small mlp ladder: Optuna, MLflow, resume, and the trial table."""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from hpo.analysis.trials import TRIAL_COLUMNS
from hpo.run.runner import ScaleProgress, StudyInterrupted, StudyOutcome, run_study
from hpo.search.plan import full_plan
from hpo.search.sampling import define_space
from hpo.store.mlflow_tracker import MlflowTracker
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.store.tracker import ScaleRecord, TrialStart
from hpo.store.trial_table import load_trials
from hpo.study.spec import StudySpec, parse_spec
from hpo.vocab import INTERRUPTED

LADDER_FILE = Path(__file__).resolve().parents[2] / "studies" / "mlp_ladder.yaml"
SMALL = {"scales": ["w8", "w32"], "budget": {"tokens": 3000}, "trials_per_scale": 3,
         "fidelity": {"grace_tokens": 750, "reduction_factor": 2, "eval_every_tokens": 500},
         "search": {"mode": "scale_aware", "first_scales_factor": 1}}
"""studies/mlp_ladder.yaml made small: two scales, three 3000-token trials each (the first two scales
searched as ordinary searches, not designs of three times their trials)."""


def small_ladder(root: Path, **overrides: object) -> StudySpec:
    data = yaml.safe_load(LADDER_FILE.read_text())
    data.update(SMALL, **overrides)
    return parse_spec(data, output_root=root)


@dataclass
class Ran:
    spec: StudySpec
    first: StudyOutcome
    again: StudyOutcome
    progress: list[ScaleProgress]


@pytest.fixture(scope="module")
def ran(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    spec = small_ladder(tmp_path_factory.mktemp("ladder"))
    progress: list[ScaleProgress] = []
    first = run_study(spec, progress=progress.append)
    again = run_study(spec)
    return Ran(spec, first, again, progress)


def optuna_trials(spec: StudySpec, scale: str, variant: str = "default") -> list[optuna.trial.FrozenTrial]:
    name = optuna_study_name(spec.name, variant, scale)
    return optuna.load_study(study_name=name, storage=optuna_storage(spec.storage.optuna)).get_trials()


def test_exactly_the_planned_trials_run_at_each_scale(ran: Ran) -> None:
    assert [(o.scale, o.planned, o.finished, o.ran) for o in ran.first.scales] == [
        ("w8", 3, 3, 3), ("w32", 3, 3, 3)]
    for scale in ran.spec.scales:
        trials = optuna_trials(ran.spec, scale)
        assert len(trials) == 3
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(o.best_loss is not None and o.best_params is not None for o in ran.first.scales)


def test_progress_counts_up_to_the_plan(ran: Ran) -> None:
    for scale in ran.spec.scales:
        counts = [p.finished for p in ran.progress if p.scale == scale]
        assert counts[0] == 0 and counts[-1] == 3 and counts == sorted(counts)


def test_second_run_runs_nothing_new(ran: Ran) -> None:
    assert ran.again.ran == 0
    assert [o.best_loss for o in ran.again.scales] == [o.best_loss for o in ran.first.scales]
    assert all(len(optuna_trials(ran.spec, scale)) == 3 for scale in ran.spec.scales)


def test_mlflow_children_nest_under_one_parent_per_scale(ran: Ran) -> None:
    client = MlflowClient(ran.spec.storage.mlflow)
    experiment = client.get_experiment_by_name(ran.spec.name)
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.data.tags["scale"]: r for r in runs if r.data.tags.get("kind") == "scale"}
    assert sorted(parents) == ["w32", "w8"]
    for outcome in ran.first.scales:
        parent = parents[outcome.scale]
        assert parent.info.status == "FINISHED"
        assert parent.data.metrics["best_loss"] == pytest.approx(outcome.best_loss)
        assert parent.data.metrics["best_lr"] == pytest.approx(outcome.best_params["lr"])
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 3
        for child in children:
            assert set(child.data.params) == {"lr", "batch_size", "weight_decay", "scale", "params", "seed",
                                              "variant"}
            assert child.data.params["params"] == str(ran.spec.params(outcome.scale))
            assert child.info.run_name.startswith(f"{outcome.scale} · lr=")


def test_loss_curves_match_between_stores(ran: Ran) -> None:
    client = MlflowClient(ran.spec.storage.mlflow)
    for scale in ran.spec.scales:
        for trial in optuna_trials(ran.spec, scale):
            history = client.get_metric_history(trial.user_attrs["run_id"], "loss")
            assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)


def test_load_trials_matches_both_stores(ran: Ran) -> None:
    table = load_trials(ran.spec)
    assert list(table.columns) == list(TRIAL_COLUMNS)
    assert len(table) == 6
    assert set(table["scale"]) == {"w8", "w32"}
    assert (table["tokens"] == 3000).all() and (table["study"] == "mlp_ladder").all()
    client = MlflowClient(ran.spec.storage.mlflow)
    for row in table.itertuples():
        run = client.get_run(row.run_id)
        assert run.data.tags["status"] == row.status
        assert float(run.data.params["lr"]) == pytest.approx(row.lr)
        assert int(run.data.params["batch_size"]) == row.batch_size
        assert run.data.metrics["loss"] == pytest.approx(row.loss)
        assert row.params == ran.spec.params(row.scale)
        assert (row.tokens_seen < row.tokens) == (row.status == "pruned")


def test_interrupted_trial_runs_again(ray_runtime: None, tmp_path: Path) -> None:
    """A trial left RUNNING by a killed driver: FAIL (interrupted), run again, its MLflow run deleted."""
    spec = small_ladder(tmp_path, scales=["w8"], trials_per_scale=2)
    spec.output_dir.mkdir(parents=True)
    study = optuna.create_study(study_name=optuna_study_name(spec.name, "default", "w8"),
                                storage=optuna_storage(spec.storage.optuna), direction="minimize")
    killed = study.ask()
    define_space(spec.variant("default").space)(killed)
    client = MlflowClient(spec.storage.mlflow)
    tracker = MlflowTracker(spec.storage.mlflow, spec.name, spec.output_dir / "artifacts")
    parent = tracker.start_scale(ScaleRecord(spec.name, "default", "w8", params=spec.params("w8"),
                                             budget_tokens=3000, seed=0, trials=2),
                                 full_plan("w8", spec.variant("default").space, 2, "search: independent"))
    orphan = tracker.start_trial(parent, TrialStart(0, 1e-3, 16, 0.0))
    killed.set_user_attr("run_id", orphan)

    outcome = run_study(spec)

    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["status"] == INTERRUPTED
    assert outcome.ran == 2 and len(trials) == 3
    assert any(t.params == trials[0].params and t.state.is_finished() and t.number > 0 for t in trials)
    assert client.get_run(orphan).info.lifecycle_stage == "deleted"
    table = load_trials(spec)
    assert len(table) == 2 and 0 not in set(table["trial_number"])
    assert not table["loss"].map(math.isnan).any()


def test_runs_left_running_by_a_killed_driver_are_ended_or_deleted(ray_runtime: None, tmp_path: Path) -> None:
    """Killed after Optuna's ``tell`` but before its MLflow run ended: the run
    gets the trial's status and curve; a run never linked to its trial (left
    RUNNING, so interrupted) is deleted."""
    spec = small_ladder(tmp_path, scales=["w8"], trials_per_scale=2)
    spec.output_dir.mkdir(parents=True)
    study = optuna.create_study(study_name=optuna_study_name(spec.name, "default", "w8"),
                                storage=optuna_storage(spec.storage.optuna), direction="minimize")
    told = study.ask()
    define_space(spec.variant("default").space)(told)
    for step, loss in ((1000, 0.9), (3000, 0.7)):
        told.report(loss, step)
    tracker = MlflowTracker(spec.storage.mlflow, spec.name, spec.output_dir / "artifacts")
    space = spec.variant("default").space
    parent = tracker.start_scale(ScaleRecord(spec.name, "default", "w8", params=spec.params("w8"),
                                             budget_tokens=3000, seed=0, trials=2),
                                 full_plan("w8", space, 2, "search: independent"))
    tags = {"mlflow.parentRunId": parent.id, "kind": "trial", "scale": "w8"}
    client = MlflowClient(spec.storage.mlflow)
    unended = client.create_run(tracker.experiment_id, tags={**tags, "trial_number": "0"}).info.run_id
    unlinked = client.create_run(tracker.experiment_id, tags={**tags, "trial_number": "1"}).info.run_id
    told.set_user_attr("run_id", unended)
    told.set_user_attr("status", "complete")
    study.tell(told, 0.7)
    define_space(spec.variant("default").space)(study.ask())  # trial 1: killed before its run was linked

    outcome = run_study(spec)

    assert outcome.ran == 1
    run = client.get_run(unended)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "complete"
    assert {m.step: m.value for m in client.get_metric_history(unended, "loss")} == {1000: 0.9, 3000: 0.7}
    assert client.get_run(unlinked).info.lifecycle_stage == "deleted"
    runs = client.search_runs([tracker.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    trial_runs = {r.info.run_id for r in runs if r.data.tags.get("kind") == "trial"}
    assert trial_runs == set(load_trials(spec)["run_id"])


def test_stopped_run_raises_and_the_next_run_completes_it(ray_runtime: None, tmp_path: Path) -> None:
    """Stop the search after its first trial (SIGUSR1, as Ctrl+C would), then resume."""
    spec = small_ladder(tmp_path, scales=["w8"], trials_per_scale=4, max_concurrent=1)

    def stop_after_first_trial(update: ScaleProgress) -> None:
        if update.finished == 1:
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(StudyInterrupted, match="run the study again"):
        run_study(spec, progress=stop_after_first_trial)
    assert 1 <= len(load_trials(spec)) < 4
    outcome = run_study(spec)
    assert outcome.scales[0].finished == 4
    table = load_trials(spec)
    assert len(table) == 4 and table["trial_number"].is_unique
    client = MlflowClient(spec.storage.mlflow)
    runs = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
    assert {r.info.run_id for r in runs if r.data.tags.get("kind") == "trial"} == set(table["run_id"])


def test_third_scale_searches_the_space_the_first_two_predict(ray_runtime: None, tmp_path: Path) -> None:
    """Scale-aware search: w8 and w16 run designs of twice their trials, at least the 18 trials a bowl in
    lr and batch size needs, every one to its full budget (a design may cost 10 trials of w32, the mlp's
    scales being close in cost); w32 (the largest scale, so a check) runs the 10 full-budget trials that
    `design_cost` affords there, too few for a design, in a narrowed space: the predicted optimum first,
    then probes that differ from it in lr alone, across its band and beyond, judged from where w16's curves
    ranked its trials as their ends did; a second run keeps the stored plan and runs nothing."""
    search = {"mode": "scale_aware", "trials_share": 0.5, "min_trials": 2, "first_scales_factor": 2,
              "design_cost": 10}
    spec = small_ladder(tmp_path, scales=["w8", "w16", "w32"], trials_per_scale=6, search=search,
                        budget={"tokens": 2000}, fidelity={"grace_tokens": 1000, "reduction_factor": 2})

    outcome = run_study(spec)

    first, second, third = outcome.scales
    assert not first.plan.transferred and not second.plan.transferred
    for scale in ("w8", "w16"):
        design = optuna_trials(spec, scale)
        assert len(design) == 18 and {t.user_attrs.get("origin") for t in design} == {"design"}
        assert all(t.user_attrs["status"] != "pruned" for t in design), "ASHA spares a design's trials"
    assert third.plan.transferred and third.planned == 10 and third.finished == 10
    assert third.plan.judge_from is not None and "rank agreement at w16" in third.plan.reason, \
        "the plan reads where to judge the probes from the smaller scales' curves"
    full, narrowed = spec.variant("default").space.lr, third.plan.space.lr
    assert full.low <= narrowed.low < narrowed.high <= full.high
    assert narrowed.high / narrowed.low < full.high / full.low
    trials = optuna_trials(spec, "w32")
    assert [t.user_attrs.get("origin") for t in trials] == ["predicted"] + ["probe"] * 9
    assert trials[0].user_attrs["lr"] == pytest.approx(third.plan.first["lr"])
    assert any(not narrowed.low <= t.user_attrs["lr"] <= narrowed.high for t in trials[1:])
    assert all(t.user_attrs["batch_size"] == third.plan.first["batch_size"] for t in trials[1:])
    assert third.law is not None and third.law.reason
    client = MlflowClient(spec.storage.mlflow)
    parents = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id],
                                 filter_string="tags.kind = 'scale' and tags.scale = 'w32'")
    assert parents[0].data.tags["search"] == "transferred"
    assert parents[0].data.tags["law_broken"] in ("true", "false")

    again = run_study(spec)
    assert again.ran == 0 and again.scales[2].plan == third.plan
