"""``hpo verify``: a recommendation and its neighbours trained beyond the ladder, as trials of the study.

`verify_study` asks the analysis for the recommendation at the chosen scale
(N from the family, D by the study's budget rule), plans it and its
neighbours on several seeds (`hpo.search.verification`), and runs them with
the study's own runner and stores: an Optuna study ``{study}/{variant}/{scale}``
and MLflow runs beside the ladder's. Running it again resumes it (its plan is
stored with it). The scale must lie beyond the ladder: verifying an
extrapolation inside the data it was fitted on tells nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hpo.analysis import Recommendation
from hpo.api import analyze
from hpo.run.cell import ProgressCallback
from hpo.run.runner import run_study
from hpo.search.verification import Verification, VerifyReport, neighbourhood, verdict
from hpo.store.trial_table import load_trials
from hpo.study.spec import StudySpec

__all__ = ["Verifying", "verification_spec", "verify_study"]


@dataclass(frozen=True)
class Verifying:
    """What a verification runs: `spec`, the one-scale study of its trials; `recommendation`, the
    analysis's answer at that scale (its predicted loss is what the trials are compared with)."""

    spec: StudySpec
    recommendation: Recommendation


def verification_spec(spec: StudySpec, scale: str, *, seeds: int) -> Verifying:
    """The study that verifies `spec`'s recommendation at `scale`, each setting on `seeds` seeds.

    Raises:
        ValueError: `scale` is not the family's, lies inside the ladder, or a trial there cannot fit the
            memory `spec` offers one.
    """
    family = spec.load_family()
    family.check_scale(scale)
    params = family.param_count(scale).non_embedding
    largest = max(spec.scale_params.values())
    if params <= largest:
        raise ValueError(f"scale {scale!r} ({params:,} params) is not beyond the ladder's largest "
                         f"({largest:,}): verify at the target or a scale above the ladder")
    if seeds < 2:
        raise ValueError(f"seeds={seeds} cannot tell the noise between seeds: use 2 or more")
    tokens = spec.tokens_for(params)
    recommendation = analyze(spec, target_params=params, target_tokens=tokens)
    variant = spec.variant(recommendation.variant)
    best = recommendation.best
    recommended = {"lr": best.lr.value, "batch_size": float(best.batch_size_power_of_two),
                   "weight_decay": best.weight_decay.value}
    settings = tuple({**setting, "seed": float(spec.seed + k)}
                     for setting in neighbourhood(recommended, variant.space) for k in range(seeds))
    need = family.trial_memory(scale, max(int(setting["batch_size"]) for setting in settings))
    limit = spec.resources.memory_bytes()
    if need > limit:
        raise ValueError(f"a trial at {scale} needs about {need / 2**30:.3g} GiB, more than the "
                         f"{limit / 2**30:.3g} GiB a trial may use: verify at a smaller scale, or set "
                         "resources.memory_gb")
    verifying = replace(spec, scales=(scale,), scale_params={scale: params}, budget_tokens={scale: tokens},
                        trials_per_scale={scale: len(settings)}, variants=(variant,),
                        search=Verification(settings))
    return Verifying(verifying, recommendation)


def verify_study(spec: StudySpec, scale: str, *, seeds: int = 2, address: str | None = None,
                 progress: ProgressCallback | None = None, wait: bool = False
                 ) -> tuple[Verifying, VerifyReport]:
    """Plan, run (or resume) and judge the verification of `spec` at `scale` (`verification_spec`). A
    resumed verification judges the settings it was planned with."""
    verifying = verification_spec(spec, scale, seeds=seeds)
    outcome = run_study(verifying.spec, address=address, progress=progress, wait=wait)
    (ran,) = outcome.scales
    assert ran.plan is not None
    return verifying, verdict(load_trials(verifying.spec), ran.plan.verify)
