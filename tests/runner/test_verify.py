"""`hpo verify`: the recommendation and its neighbours trained beyond the ladder, as trials of the study."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from small_studies import run_hpo, write_mlp_study

from hpo.run.runner import run_study
from hpo.run.verify import verification_spec, verify_study
from hpo.store.optuna_store import optuna_storage, optuna_study_name
from hpo.study.spec import StudySpec, load_spec
from hpo.vocab import DIVERGED, VERIFY

# weight decay held: these tests check what verify runs and records, and a wd law fitted to cells of
# 1-2 complete trials once extrapolated six decades, so that every setting diverged
SPACE = {"lr": {"low": 1e-4, "high": 0.3}, "batch_size": {"low": 16, "high": 64}, "weight_decay": 0.01}
LADDER = {"scales": ["w8", "w16", "w32"], "trials_per_scale": 4, "search": "independent",
          "budget": {"tokens": 4_000}, "target": "w256"}


@pytest.fixture(scope="module")
def ladder(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> StudySpec:
    spec = load_spec(write_mlp_study(tmp_path_factory.mktemp("verify"), "verify", **LADDER, space=SPACE))
    run_study(spec)
    return spec


def test_verify_trains_the_recommendation_and_its_neighbours_on_each_seed(ladder: StudySpec) -> None:
    verifying, report = verify_study(ladder, "w64", seeds=2)

    labels = [m.label for m in report.measured]  # a batch neighbour outside the searched sizes is left out
    assert labels[:3] == ["recommended", "lr ×2", "lr ÷2"] and set(labels[3:]) <= {"batch ×2", "batch ÷2"}
    assert all(len(m.losses) == 2 for m in report.measured) and report.seeds == 2
    assert math.isfinite(report.noise) and report.margin > 0
    assert report.within_noise == (report.recommended.mean - report.best.mean <= report.margin)
    recommended = report.recommended.setting
    assert recommended["lr"] == pytest.approx(verifying.recommendation.lr.value)
    name = optuna_study_name(ladder.name, verifying.recommendation.variant, "w64")
    trials = optuna.load_study(study_name=name, storage=optuna_storage(ladder.storage.optuna)).get_trials()
    assert len(trials) == 2 * len(labels) and {t.user_attrs["origin"] for t in trials} == {VERIFY}
    assert sorted(t.user_attrs["seed"] for t in trials) == sorted([0, 1] * len(labels))
    budget = verifying.spec.tokens("w64")
    stopped = [(t.params, t.user_attrs["status"], t.user_attrs["tokens_seen"]) for t in trials
               if t.user_attrs["status"] != DIVERGED and t.user_attrs["tokens_seen"] < budget]
    assert not stopped, f"early stopping cut verify trials short: {stopped}"  # a lr x2 may diverge, no more
    client = MlflowClient(ladder.storage.mlflow)
    experiment = client.get_experiment_by_name(ladder.name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'trial' and tags.scale = 'w64'")
    assert sorted(r.info.run_id for r in runs) == sorted(t.user_attrs["run_id"] for t in trials)

    _, again = verify_study(ladder, "w64", seeds=2)  # a second call resumes: nothing runs twice
    assert again == report


def test_verify_refuses_a_scale_inside_the_ladder(ladder: StudySpec) -> None:
    with pytest.raises(ValueError, match="is not beyond the ladder's largest"):
        verify_study(ladder, "w32")


def test_hpo_verify_prints_predicted_against_measured(ladder: StudySpec) -> None:
    assert ladder.source is not None
    result = run_hpo("verify", str(ladder.source), "--scale", "w64", cwd=Path(ladder.output_dir).parent,
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "predicted loss" in result.stdout and "recommended" in result.stdout and "lr ÷2" in result.stdout
    assert "the seed noise of the best" in result.stdout and "to run at w64: " in result.stdout
    assert not verification_spec(ladder, "w64", seeds=2).recommendation.out_of_range
    assert "warning: " not in result.stdout


def test_hpo_verify_warns_when_it_trains_a_setting_beyond_the_searched_range(ladder: StudySpec,
                                                                             tmp_path: Path) -> None:
    """The same stores read through a study file whose lr range stops at 0.003, below where the laws put
    lr: verify trains it as extrapolated and says so, one line per hyperparameter."""
    shutil.copytree(ladder.output_dir, tmp_path / "out")
    narrow_lr = {"low": 1e-4, "high": 0.003}
    narrow = write_mlp_study(tmp_path, "verify", **LADDER, space={**SPACE, "lr": narrow_lr})
    beyond = verification_spec(load_spec(narrow), "w64", seeds=2).recommendation.out_of_range
    assert [o.hyperparameter for o in beyond] == ["lr"]

    result = run_hpo("verify", str(narrow), "--scale", "w64", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line for line in result.stdout.splitlines() if line.startswith("warning: ")] == [
        f"warning: {beyond[0].describe()}"]
