"""What `TokenOptunaSearch` takes from Ray Tune's `OptunaSearch` beyond its public API, checked on the
installed Ray: when an upgrade moves it, this fails by name instead of a study failing midway.

`pyproject.toml` caps ``ray`` at the minor version these tests passed on; raising the cap means
running this file first.
"""

from __future__ import annotations

import optuna
import ray
from ray.tune.search.optuna import OptunaSearch

from hpo.search.sampling import define_space
from hpo.search.searcher import TokenOptunaSearch
from hpo.study.space import LogRange, SearchSpace

SPACE = SearchSpace(lr=LogRange(1e-4, 1e-2), batch_size=16, weight_decay=0.0)


def test_optuna_search_keeps_the_private_state_token_search_reads() -> None:
    searcher = TokenOptunaSearch(define_space(SPACE), budget_tokens=1000, study_name="contract",
                                 storage=optuna.storages.InMemoryStorage(),
                                 sampler=optuna.samplers.RandomSampler(seed=0))
    config = searcher.suggest("trial-a")
    assert config is not None and config["origin"] == "search"
    missing = [name for name in ("_ot_trials", "_ot_study", "_completed_trials")
               if not hasattr(searcher, name)]
    assert not missing, f"ray {ray.__version__}: OptunaSearch lost {missing}; adapt hpo.search.searcher"
    assert isinstance(searcher._ot_trials["trial-a"], optuna.Trial)
    assert isinstance(searcher._ot_study, optuna.Study)
    assert isinstance(searcher._completed_trials, set)
    assert "on_trial_complete" in OptunaSearch.__dict__, "OptunaSearch's completion hook moved"
