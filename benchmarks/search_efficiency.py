"""Search efficiency: regret at the target scale against total tuning compute, scale-aware search vs peers.

Surrogate ground truth (`hpo.evaluation.surrogate.Surrogate`): a loss landscape with
   known optima lr*(N) = 0.75·N^-0.4, B*(D) = 0.05·D^0.4 sequences,
   wd*(N) = 0.04·N^0.04, Chinchilla's L*(N, D), learning curves whose early
   optimum drifts (higher lr, smaller batch), 0.3% evaluation noise and a
   divergence edge at 4·lr*. Ladder: N = 250k, 1M, 4M, 16M, 64M (×4), D = 20·N
   tokens; target N = 1e9, D = 2e10. Every method searches the same space
   (lr 1e-4..3e-2, batch 8..1024, wd 1e-2..0.3) on the same ladder, with T
   trials per scale, T swept over `BUDGETS` (the peers also over `PEER_BUDGETS`, and on, T doubled, while
   they have not reached our regret: `sweep_peers_on`; not with ``--quick``), each trial evaluated at
   D/27, D/9, D/3 and D (rungs of reduction factor 3; `grace` = D/27). Methods:

   * ``scale_aware`` (ours), with every `hpo.search.scale_aware.ScaleAware` setting at its
     default: `hpo.search.scale_aware.plan_scale` before each scale (given the scale's
     cost ratio, N·D over the largest scale's), `check_law` after it, the
     plan's predicted, design, exploring and probe trials enqueued as the
     runner enqueues them, the rest (after a broken law) TPE, under
     successive halving that judges every trial but never stops the
     predicted, design and exploring ones (as the runner's
     `hpo.search.scheduler.ProtectedASHA`, whose rungs hold their losses too). Here
     the first two scales and 4M run 3·T-trial Latin hypercubes, 16M a
     design of 24 trials (``design_cost`` 1.5 × a 64M trial buys 24 of 1/16
     its cost), every trial to its full budget, and 64M a check: the
     prediction to its full budget and probes at other learning rates
     judged early;
   * ``independent``: the same TPE + successive halving at every scale, full space, T trials;
   * ``asha_random``: random search under successive halving;
   * ``tpe_hyperband``: TPE under Optuna's `HyperbandPruner`;
   * ``tpe``: TPE, every trial to its full budget;
   * ``naive_transfer``: the ``independent`` search, but the target reuses
     the best complete trial of the largest scale as it is.

   All but ``naive_transfer`` recommend the target's setting with
   `hpo.analysis.extrapolate` (its lr, its power-of-two batch size, its weight
   decay). Since regret is measured against the optimum of the space, every
   method's target setting is chosen within the space, by one rule: the
   extrapolated one is clipped into it (`extrapolate`'s opt-in ``clip_to``,
   with the space's ranges; a clipped batch size is the nearest power of two
   inside), and ``naive_transfer``'s is a trial of the space already;
   `target_regret` refuses any setting outside it. The ``clipped`` column
   counts the hyperparameters clipped per repetition (mean over seeds).
   Successive halving is Optuna's `SuccessiveHalvingPruner`
   (asynchronous successive halving: the algorithm of Ray Tune's
   `ASHAScheduler`), run in process, one trial at a time: hundreds of study
   repetitions through real Ray Tuners are not feasible. Compute of a trial is
   6·N·tokens_seen FLOPs; the compute fraction is the sum over all trials of
   all scales over one target run, 6·N_T·D_T. Regret is the true (noise-free)
   loss of the recommended setting at the target over the true optimum of the
   space there, in %.

Real ground truth (``--real mlp`` or ``--real gpt``, `tabular_ladder.TabularLadder`): the same
   methods, rungs and recommendation on a committed table of real learning
   curves (``benchmarks/data/``, made by ``real_mlp_ladder.py`` and
   ``real_gpt_ladder.py``), replayed without training: the table's largest
   scale is the target, the others the ladder, each scale at the table's budget
   D; the space is the smallest one holding the table's grids; a sampled
   setting reads its nearest grid point, a trial one of the grid's seeds, and
   its loss at a rung the curve's evaluation there. Regret is the recommended
   setting's grid point's final loss at the target, mean over the seeds, over
   the grid's best such mean. ``--quick`` runs `REAL_QUICK` seeds and budgets,
   else `REAL_FULL` (peers also `PEER_BUDGETS`); it runs instead of the
   surrogate and ends with ``RESULT real_{name}_*`` lines. A reference line
   follows the table: every grid point of every ladder scale run once, its seed
   drawn, recommended as the searches are (`every_grid_point`): the whole
   table at one run per setting. ``--target SCALE``
   drops the scales above SCALE and makes it the target (``RESULT
   real_{name}_{SCALE}_*``): the defaults were chosen on the full ladders, and a
   scale they were not chosen on is a second, held-out check.

Usage: ``python benchmarks/search_efficiency.py [--quick] [--real mlp|gpt [--table PATH] [--target SCALE]]
[--jobs 2] [--plot PATH]``
from the repository root. Ends with ``RESULT`` lines for the surrogate (``real_*`` with ``--real``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import multiprocessing
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from tabular_ladder import SETTING, TABLES, TabularLadder

from hpo.analysis import extrapolate
from hpo.analysis.trials import scale_name
from hpo.evaluation.surrogate import Surrogate
from hpo.search.sampling import define_space, fixed_params
from hpo.search.scale_aware import ScaleAware, check_law, plan_scale
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from hpo.vocab import PROBE, PROTECTED

LADDER = tuple(2.5e5 * 4**k for k in range(5))
TOKENS_PER_PARAM = 20
TARGET_PARAMS = 1e9
TARGET_TOKENS = TOKENS_PER_PARAM * TARGET_PARAMS
SPACE = SearchSpace(lr=LogRange(1e-4, 3e-2), batch_size=PowerOfTwoRange(8, 1024),
                    weight_decay=WeightDecayRange(1e-2, 0.3))
TRANSFER = ScaleAware()
"""What a study's ``search: scale_aware`` gets: every setting at its default."""


@dataclass(frozen=True)
class Ladder:
    """What every method searches and where it is judged: the scales' N (parameters, smallest first), the
    budget D of a trial at each (tokens), the target's N_T and D_T, and the search space."""

    params: tuple[float, ...]
    tokens: tuple[float, ...]
    target_params: float
    target_tokens: float
    space: SearchSpace

    def budget(self, params: float) -> float:
        """D of a trial at the scale of `params` parameters, tokens."""
        return self.tokens[self.params.index(params)]

    @property
    def target_flops(self) -> float:
        """One target run, 6·N_T·D_T FLOPs."""
        return 6.0 * self.target_params * self.target_tokens

    def cost_ratio(self, params: float) -> float:
        """FLOPs of a full trial at the scale of `params` over one at the ladder's largest: N·D / max N·D."""
        largest = max(n * d for n, d in zip(self.params, self.tokens, strict=True))
        return params * self.budget(params) / largest


SURROGATE_LADDER = Ladder(LADDER, tuple(TOKENS_PER_PARAM * n for n in LADDER), TARGET_PARAMS, TARGET_TOKENS,
                          SPACE)
BUDGETS = (6, 10, 16, 24)
"""Trials per scale T swept for every method."""
PEER_BUDGETS = (32, 48, 64, 96)
"""Further T for the peers only, so that their regret curves reach ours and the speedup is read off a
curve, not bounded by the sweep's end (where a curve still never reaches it, the speedup is a lower bound:
the most compute the peer tried over ours)."""
SPEEDUP_READ_TO = 4.0
"""A peer whose curve has not reached our median regret is swept on (`sweep_peers_on`) while it has spent
less than this many times our compute and less than another peer was measured to need: its speedup is
then read off its curve, or bounded at no less than this (or than the best peer's)."""
MAX_PEER_BUDGET = 768
"""The largest T a peer is swept to (`sweep_peers_on`), whatever its compute."""
REDUCTION_FACTOR = 3
RUNGS = (1, 3, 9, 27)
"""Evaluations of a trial, in units of grace = D/27: the rungs of successive halving, the last one D."""
DIVERGENCE_PENALTY = 3.0
"""A diverged trial is told to Optuna as COMPLETE with this × the best loss at its first rung (as the
runner tells the trainable's penalty), so TPE learns the stability edge."""
EXTRAPOLATE_BOOTSTRAP = 20
"""Replicates behind `extrapolate`'s intervals: only its point values are used here."""
REGRET_TARGET_PCT = 0.5
"""The surrogate's target median regret (issue 5)."""
REAL_TARGET_PCT = (1.0, 2.0)
"""A real ladder's targets (issue 15): median regret and worst seed's regret, % at the largest scale."""
OURS = "scale_aware"
PEERS = ("independent", "asha_random", "tpe_hyperband", "tpe", "naive_transfer")
SEARCHES = ("scale_aware", "independent", "asha_random", "tpe_hyperband", "tpe")
"""Searches run; ``naive_transfer`` reuses the ``independent`` search of the same seed and budget."""
REAL_QUICK = (4, (8, 16))
REAL_FULL = (20, (8, 16, 24))
"""Seeds and trials per scale T on a real ladder's table (``--real``), with and without ``--quick``. Twenty
seeds, not ten: on the `mlp` table ten read our median regret at T = 16 as 0.35% where forty read 1.15%
and twenty 2.15% (benchmarks/README.md), a headline that moved with the draw rather than the method."""
Truth = Surrogate | TabularLadder
Search = tuple[str, int, int]
"""One search to run: (method, trials per scale T, seed)."""


@dataclass(frozen=True)
class Outcome:
    """One repetition of one method at one budget: target regret (%) and tuning compute / one target run."""

    method: str
    budget: int
    seed: int
    regret_pct: float
    compute_fraction: float
    law_broken: int = 0
    clipped: int = 0
    """Hyperparameters of the target setting that `extrapolate` extrapolated outside the space and
    `recommend` clipped into it."""


# ---------------------------------------------------------------- one scale, one trial


def run_trial(truth: Truth, params: float, tokens: float, setting: dict[str, float],
              trial: optuna.Trial, study: optuna.Study, prune: bool, rng: np.random.Generator,
              protected: bool = False, judge_from: float = 0.0,
              curve: list[tuple[float, float]] | None = None, seed: int | None = None,
              margin: float | None = None, rung_best: dict[int, float] | None = None) -> dict[str, object]:
    """Train `setting` on `truth`, reporting at every rung; tell `study` the final state.

    With `prune`, the study's pruner judges the trial at every rung but the last; a `protected`
    trial is judged too, so that its losses enter the rungs as the yardstick other trials are cut by
    (as Ray Tune's ASHA records a `hpo.search.scheduler.ProtectedASHA` trial's results), but never stopped,
    and neither is any trial before `judge_from` (a share of the budget: a probe of a plan whose
    `judge_from` is set), nor, given a `margin`, one whose loss is within it of the best recorded at the
    rung in `rung_best` (the scale's best loss per rung, which every trial's loss enters). Each rung's
    (tokens seen, loss) is appended to `curve`. A trial with its own `seed` (a plan's repeated setting)
    reads that seed's run of a table (the surrogate's evaluations are independent draws whatever the
    seed).
    Returns the trial's row (trial-table columns; FLOPs in ``flops``).
    """
    grace = tokens / RUNGS[-1]
    status, loss, seen = "complete", math.nan, 0.0
    for step in RUNGS:
        seen = grace * step
        if seed is not None and isinstance(truth, TabularLadder):
            loss = truth.loss(params, tokens, setting, seen, rng, seed=seed)
        else:
            loss = truth.loss(params, tokens, setting, seen, rng)
        if math.isnan(loss):
            status = "diverged"
            penalty = DIVERGENCE_PENALTY * truth.optimal_loss(params, grace)
            study.tell(trial, penalty)
            break
        trial.report(loss, step)
        if curve is not None:
            curve.append((seen, loss))
        best = math.inf if rung_best is None else rung_best.get(step, math.inf)
        if rung_best is not None:
            rung_best[step] = min(best, loss)
        judged = (not protected and step >= judge_from * RUNGS[-1] - 1e-9
                  and (margin is None or loss > best * (1 + margin)))
        if prune and step < RUNGS[-1] and trial.should_prune() and judged:
            status = "pruned"
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            break
    if status == "complete":
        study.tell(trial, loss)
    return {"params": params, "tokens": tokens, "tokens_seen": seen, **setting, "loss": loss,
            "status": status, "flops": 6.0 * params * seen}


def run_scale(truth: Truth, params: float, *, sampler: optuna.samplers.BaseSampler,
              pruner: optuna.pruners.BasePruner | None, space: SearchSpace, trials: int,
              enqueued: list[tuple[dict[str, object], dict[str, object]]], seed: int,
              ladder: Ladder = SURROGATE_LADDER, judge_from: float | None = None, margin: float = 0.0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`trials` trials at model size `params` (D from `ladder`), enqueued ones first; their rows, and their
    curves (one row per rung: ``scale``, ``trial_number``, ``tokens_seen``, ``loss``). Probes are not
    stopped before `judge_from` of the budget (a plan's `judge_from`), nor within `margin` of a rung's
    best loss (its `probe_margin`)."""
    tokens = ladder.budget(params)
    # A fixed name: Optuna's HyperbandPruner assigns trials to brackets by a hash of the study name,
    # which create_study would otherwise draw at random, and the run would not repeat.
    study = optuna.create_study(study_name=f"scale-{seed}", direction="minimize", sampler=sampler,
                                pruner=pruner or optuna.pruners.NopPruner())
    for sampler_params, attrs in enqueued:
        study.enqueue_trial(sampler_params, user_attrs=attrs)
    sample = define_space(space, ladder.space)
    rng = np.random.default_rng(seed)
    rows, curves = [], []
    rung_best: dict[int, float] = {}
    for number in range(trials):
        trial = study.ask()
        setting = sample(trial)
        origin = trial.user_attrs.get("origin")
        protected = origin in PROTECTED
        probe = origin == PROBE
        start = judge_from if probe and judge_from is not None else 0.0
        curve: list[tuple[float, float]] = []
        seed_of = trial.user_attrs.get("seed")
        row = run_trial(truth, params, tokens, setting, trial, study, pruner is not None, rng, protected,
                        start, curve, None if seed_of is None else int(seed_of),
                        margin if probe else None, rung_best)
        rows.append({"variant": "default", "scale": scale_name(params), "trial_number": number, **row})
        curves += [{"scale": scale_name(params), "trial_number": number, "tokens_seen": seen, "loss": loss}
                   for seen, loss in curve]
    return pd.DataFrame(rows), pd.DataFrame(curves, columns=["scale", "trial_number", "tokens_seen", "loss"])


# ---------------------------------------------------------------- one method, one repetition


def study_seed(method: str, seed: int, params: float) -> int:
    return (seed * 1_000_003 + zlib.crc32(f"{method}/{params:.0f}".encode())) % 2**32


def sampler_for(method: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    if method == "asha_random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, trials // 3))


def pruner_for(method: str) -> optuna.pruners.BasePruner | None:
    if method in ("scale_aware", "independent", "asha_random"):
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=RUNGS[0],
                                                      reduction_factor=REDUCTION_FACTOR)
    if method == "tpe_hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=RUNGS[0], max_resource=RUNGS[-1],
                                              reduction_factor=REDUCTION_FACTOR)
    return None


def search_ladder(truth: Truth, method: str, trials: int, seed: int,
                  ladder: Ladder = SURROGATE_LADDER, transfer: ScaleAware = TRANSFER
                  ) -> tuple[pd.DataFrame, int]:
    """Every scale of `ladder`, smallest first, searched by `method`; all trial rows and the broken laws."""
    history, curves = pd.DataFrame(), pd.DataFrame()
    broken, n_broken = False, 0
    for params in ladder.params:
        scale_seed = study_seed(method, seed, params)
        space, n_trials, enqueued, plan = ladder.space, trials, [], None
        if method == OURS:
            plan = plan_scale(history, scale=scale_name(params), params=params,
                              tokens=ladder.budget(params), space=ladder.space, trials=trials,
                              settings=transfer, seed=seed, law_broken=broken,
                              cost_ratio=ladder.cost_ratio(params), curves=curves)
            space, n_trials = plan.space, plan.trials
            enqueued += [(fixed_params(setting, within),
                          {"origin": origin, **({"seed": int(setting["seed"])} if "seed" in setting else {})})
                         for origin, setting, within in plan.enqueued()]
        rows, scale_curves = run_scale(truth, params, sampler=sampler_for(method, scale_seed, n_trials),
                                       pruner=pruner_for(method), space=space, trials=n_trials,
                                       enqueued=enqueued, seed=scale_seed, ladder=ladder,
                                       judge_from=None if plan is None else plan.judge_from,
                                       margin=0.0 if plan is None else plan.probe_margin)
        if plan is not None:
            broken = check_law(plan, rows, seed=seed).broken
            n_broken += broken
        history = pd.concat([history, rows], ignore_index=True)
        curves = pd.concat([curves, scale_curves], ignore_index=True)
    return history, n_broken


def recommend(history: pd.DataFrame, seed: int, ladder: Ladder = SURROGATE_LADDER,
              clipped: list[str] | None = None) -> dict[str, float]:
    """The target's setting extrapolated from the ladder's trials, clipped into the ladder's space; the
    names of the hyperparameters clipped are appended to `clipped`."""
    ranges = ladder.space.ranges()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = extrapolate(history.drop(columns="flops"), target_params=ladder.target_params,
                          target_tokens=ladder.target_tokens, n_bootstrap=EXTRAPOLATE_BOOTSTRAP, seed=seed,
                          searched=ranges, clip_to=ranges)
    if clipped is not None:
        clipped += [o.hyperparameter for o in rec.out_of_range if o.clipped is not None]
    return {"lr": rec.lr.value, "batch_size": rec.batch_size_power_of_two,
            "weight_decay": rec.weight_decay.value}


def inside_space(setting: dict[str, float], space: SearchSpace) -> bool:
    """Whether every hyperparameter of `setting` lies in `space`'s range for it."""
    ranges = space.ranges()
    return all(low * (1 - 1e-9) <= float(setting[name]) <= high * (1 + 1e-9)
               for name, (low, high) in ranges.items())


def reuse_largest(history: pd.DataFrame) -> dict[str, float]:
    """The best complete trial of the largest scale, as it is."""
    largest = history[(history["params"] == history["params"].max()) & (history["status"] == "complete")]
    best = largest.loc[largest["loss"].idxmin()]
    return {"lr": float(best["lr"]), "batch_size": int(best["batch_size"]),
            "weight_decay": float(best["weight_decay"])}


def target_regret(truth: Truth, choose: Callable[[], dict[str, float]],
                  ladder: Ladder = SURROGATE_LADDER) -> float:
    """Regret (%) at the target of the chosen setting; inf when no setting could be chosen.

    Raises:
        RuntimeError: the setting lies outside the ladder's space (regret is defined within it).
    """
    try:
        setting = choose()
    except (ValueError, KeyError):
        return math.inf
    if not all(math.isfinite(float(value)) for value in setting.values()):
        return math.inf
    if not inside_space(setting, ladder.space):
        raise RuntimeError(f"target setting {setting} lies outside the benchmark's space {ladder.space}")
    return truth.regret_pct(ladder.target_params, ladder.target_tokens, setting, ladder.space)


def repetition(truth: Truth, method: str, trials: int, seed: int,
               ladder: Ladder = SURROGATE_LADDER) -> list[Outcome]:
    """One search by `method` with `trials` per scale; ``independent`` also yields ``naive_transfer``."""
    history, n_broken = search_ladder(truth, method, trials, seed, ladder)
    fraction = float(history["flops"].sum()) / ladder.target_flops
    clipped: list[str] = []
    regret = target_regret(truth, lambda: recommend(history, seed, ladder, clipped), ladder)
    outcomes = [Outcome(method, trials, seed, regret, fraction, n_broken, len(clipped))]
    if method == "independent":
        outcomes.append(Outcome("naive_transfer", trials, seed,
                                target_regret(truth, lambda: reuse_largest(history), ladder), fraction))
    return outcomes


# ---------------------------------------------------------------- summary


def searches(outcomes: list[Outcome]) -> int:
    """How many searches gave `outcomes` (``naive_transfer``'s outcome is its ``independent`` search's)."""
    return sum(o.method != "naive_transfer" for o in outcomes)


def summarize(outcomes: list[Outcome], target: float = REGRET_TARGET_PCT) -> pd.DataFrame:
    """Median, IQR and worst seed of regret, and compute fraction, per (method, budget); the share of seeds
    within `target` (% regret)."""
    frame = pd.DataFrame([o.__dict__ for o in outcomes])
    rows = []
    for (method, budget), group in frame.groupby(["method", "budget"], sort=False):
        regret = group["regret_pct"].to_numpy()
        compute = group["compute_fraction"].to_numpy()
        rows.append({
            "method": method, "budget": budget, "seeds": len(group),
            "regret_median": float(np.median(regret)),
            "regret_q25": _percentile(regret, 25), "regret_q75": _percentile(regret, 75),
            "regret_mean_finite": float(np.mean(regret[np.isfinite(regret)])) if np.isfinite(regret).any()
            else math.inf,
            "regret_max": float(np.max(regret)),
            "share_within_target": float(np.mean(regret <= target)),
            "failed": int(np.sum(~np.isfinite(regret))),
            "compute_median": float(np.median(compute)),
            "compute_q25": float(np.percentile(compute, 25)),
            "compute_q75": float(np.percentile(compute, 75)),
            "law_broken": float(group["law_broken"].mean()),
            "clipped": float(group["clipped"].mean()),
        })
    return pd.DataFrame(rows)


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile`` of regrets that may be ``inf`` (a failed search): between two ``inf`` it is
    ``inf``, not the NaN (and RuntimeWarning) of interpolating ``inf - inf``."""
    with np.errstate(invalid="ignore"):
        value = float(np.percentile(values, q))
    return math.inf if math.isnan(value) else value


def operating_point(summary: pd.DataFrame, target: float = REGRET_TARGET_PCT,
                    worst: float = math.inf) -> pd.Series:
    """Ours at the cheapest budget whose median regret meets `target` and whose worst seed meets `worst`,
    else at its lowest median regret."""
    ours = summary[summary["method"] == OURS].sort_values("compute_median")
    meeting = ours[(ours["regret_median"] <= target) & (ours["regret_max"] <= worst)]
    return meeting.iloc[0] if not meeting.empty else ours.loc[ours["regret_median"].idxmin()]


def compute_needed(curve: pd.DataFrame, regret: float) -> tuple[float, str]:
    """Compute fraction a method needs for median regret ≤ `regret`, reading its curve by compute.

    Between two budgets the regret is interpolated linearly in log compute.
    Returns the compute and how it was read: ``"="`` interpolated, ``"<="``
    already met at the cheapest budget (the true need may be lower), ``">="``
    never met in the sweep (a lower bound: the most compute tried).
    """
    points = curve.sort_values("compute_median")[["compute_median", "regret_median"]].to_numpy()
    if points[0, 1] <= regret:
        return float(points[0, 0]), "<="
    for (c0, r0), (c1, r1) in itertools.pairwise(points):
        if r1 <= regret:
            share = (r0 - regret) / (r0 - r1) if math.isfinite(r0) else 1.0
            return float(math.exp(math.log(c0) + share * (math.log(c1) - math.log(c0)))), "="
    return float(points[-1, 0]), ">="


def peers_to_sweep_on(summary: pd.DataFrame, target: float = REGRET_TARGET_PCT,
                      worst: float = math.inf) -> dict[str, int]:
    """The searches to run next and their T: every peer whose curve has not reached our median regret at
    our operating point (`operating_point`), while its most compute is below `SPEEDUP_READ_TO` times
    ours and below the compute a peer was measured to need, at twice its largest T (at most
    `MAX_PEER_BUDGET`); ``naive_transfer`` by its ``independent`` search."""
    ours = operating_point(summary, target, worst)
    needs = {peer: compute_needed(summary[summary["method"] == peer], ours["regret_median"])
             for peer in PEERS}
    measured = min((needed for needed, how in needs.values() if how != ">="), default=math.inf)
    limit = min(measured, SPEEDUP_READ_TO * ours["compute_median"])
    short = {"independent" if peer == "naive_transfer" else peer
             for peer, (needed, how) in needs.items() if how == ">=" and needed < limit}
    budgets = {search: 2 * int(summary.loc[summary["method"] == search, "budget"].max()) for search in short}
    return {search: budget for search, budget in budgets.items() if budget <= MAX_PEER_BUDGET}


def sweep_peers_on(outcomes: list[Outcome], run: Callable[[list[Search]], list[Outcome]],
                   seeds: int, target: float = REGRET_TARGET_PCT, worst: float = math.inf) -> list[Outcome]:
    """`outcomes` with the peers swept on (`peers_to_sweep_on`, `run` doing the searches) until each has
    reached our median regret or spent enough compute to bound the speedup."""
    while next_budgets := peers_to_sweep_on(summarize(outcomes, target), target, worst):
        outcomes = outcomes + run([(search, budget, seed) for search, budget in sorted(next_budgets.items())
                                   for seed in range(seeds)])
    return outcomes


def run_searches(pool: Pool, job: Callable[[Search], list[Outcome]], work: list[Search], seeds: int, *,
                 sweep_on: bool, target: float = REGRET_TARGET_PCT, worst: float = math.inf) -> list[Outcome]:
    """The outcomes of `work`'s searches, each done by `job` in `pool`; with `sweep_on`, the peers then
    swept on (`sweep_peers_on`)."""
    def run(searches: list[Search]) -> list[Outcome]:
        return [o for done in pool.imap(job, searches, chunksize=1) for o in done]

    outcomes = run(work)
    return sweep_peers_on(outcomes, run, seeds, target, worst) if sweep_on else outcomes


def speedup(summary: pd.DataFrame, ours: pd.Series) -> tuple[str, float, str, list[list[str]]]:
    """The best peer (least compute for our median regret) and compute it needs / ours."""
    rows, best = [], None
    for peer in PEERS:
        needed, how = compute_needed(summary[summary["method"] == peer], ours["regret_median"])
        ratio = needed / ours["compute_median"]
        rows.append([peer, f"{how} {needed:.4f}", f"{how} {ratio:.2f}x"])
        if best is None or needed < best[1]:
            best = (peer, needed, how)
    peer, needed, how = best
    return peer, needed / ours["compute_median"], how, rows


# ---------------------------------------------------------------- output


def show_speedup(summary: pd.DataFrame, title: str, target: float = REGRET_TARGET_PCT,
                 worst: float = math.inf) -> tuple[pd.Series, float, str]:
    """Print the compute each peer needs for our median regret; our operating point (`operating_point`),
    the speedup over the best peer and how it was read."""
    ours = operating_point(summary, target, worst)
    peer, ratio, how, rows = speedup(summary, ours)
    print_table(
        f"{title} each peer needs for our median regret {ours['regret_median']:.3f}% "
        f"(ours: {ours['budget']} trials/scale, compute {ours['compute_median']:.4f})",
        ["peer", "compute needed", "vs ours"], rows,
    )
    return ours, ratio, f"{how} ({peer})"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def show_summary(summary: pd.DataFrame, seeds: int, title: str | None = None,
                 target: float = REGRET_TARGET_PCT) -> None:
    rows = [[r.method, str(r.budget), f"{r.compute_median:.4f} [{r.compute_q25:.4f}, {r.compute_q75:.4f}]",
             f"{r.regret_median:.3f} [{r.regret_q25:.3f}, {r.regret_q75:.3f}]", f"{r.regret_max:.3f}",
             f"{r.share_within_target:.2f}", str(r.failed),
             f"{r.law_broken:.2f}" if r.method == OURS else "", f"{r.clipped:.2f}"]
            for r in summary.itertuples()]
    print_table(
        title or f"Surrogate: regret at N={TARGET_PARAMS:.0e}, D={TARGET_TOKENS:.0e} vs tuning compute "
        f"(ladder {', '.join(scale_name(n) for n in LADDER)}, D = {TOKENS_PER_PARAM}·N; "
        f"median [IQR] over {seeds} seeds)",
        ["method", "trials/scale", "compute / target run", "regret %", "worst", f"P(regret<={target:g})",
         "failed", "laws broken", "clipped"],
        rows,
    )


def save_plot(summary: pd.DataFrame, path: Path, ours: pd.Series) -> None:
    """Median regret vs median compute fraction per method (IQR bars), log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    floor = 1e-3
    for method, curve in summary.groupby("method", sort=False):
        curve = curve.sort_values("compute_median")
        y = np.clip(curve["regret_median"], floor, 1e3)
        yerr = [y - np.clip(curve["regret_q25"], floor, 1e3), np.clip(curve["regret_q75"], floor, 1e3) - y]
        x = curve["compute_median"]
        xerr = [x - curve["compute_q25"], curve["compute_q75"] - x]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", capsize=2,
                    label=method, linewidth=2.5 if method == OURS else 1.2, alpha=0.9)
        for row in curve.itertuples():
            ax.annotate(str(row.budget), (row.compute_median, max(row.regret_median, floor)), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.axhline(REGRET_TARGET_PCT, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(0.05, color="grey", linestyle=":", linewidth=0.8)
    ax.plot([ours["compute_median"]], [ours["regret_median"]], marker="*", markersize=16, color="black",
            linestyle="none", label="our operating point")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("total tuning compute / one target run (6·N·D FLOPs)")
    ax.set_ylabel(f"regret at N={TARGET_PARAMS:.0e} (% of the optimum's loss)")
    ax.set_title("Surrogate ladder 250k-64M -> 1B: median [IQR] over seeds; labels = trials/scale",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _job(job: Search) -> list[Outcome]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("hpo").setLevel(logging.ERROR)
    return repetition(Surrogate(), *job)


def surrogate_benchmark(seeds: int, budgets: tuple[int, ...], plot: Path, jobs: int, sweep_on: bool = True
                        ) -> tuple[pd.Series, float, str]:
    """Every search on the surrogate ladder; with `sweep_on`, the peers swept on (`sweep_peers_on`)."""
    started = time.perf_counter()
    work = [(method, budget, seed) for budget in budgets for method in SEARCHES for seed in range(seeds)]
    work += [(method, budget, seed) for budget in PEER_BUDGETS if budget > max(budgets)
             for method in SEARCHES if method != OURS for seed in range(seeds)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        outcomes = run_searches(pool, _job, work, seeds, sweep_on=sweep_on)
    print(f"  {searches(outcomes)} searches of the ladder in {time.perf_counter() - started:.0f} s",
          flush=True)
    summary = summarize(outcomes)
    show_summary(summary, seeds)
    ours, ratio, how = show_speedup(summary, "Compute")
    save_plot(summary, plot, ours)
    print(f"\nplot saved to {plot}")
    return ours, ratio, how


# ---------------------------------------------------------------- a real ladder's table, replayed


def table_ladder(truth: TabularLadder) -> Ladder:
    """A table's ladder (every scale but the largest, each at its D), target (the largest) and space."""
    target = truth.target_scale
    return Ladder(tuple(truth.params(s) for s in truth.ladder_scales),
                  tuple(float(truth.tokens(s)) for s in truth.ladder_scales),
                  truth.params(target), float(truth.tokens(target)), truth.space())


_TABLE: TabularLadder | None = None
"""The table every worker replays: loaded once in the parent, inherited by the forked workers."""


def _table_job(job: Search) -> list[Outcome]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("hpo").setLevel(logging.ERROR)
    assert _TABLE is not None
    return repetition(_TABLE, *job, ladder=table_ladder(_TABLE))


def every_grid_point(truth: TabularLadder, seed: int, ladder: Ladder) -> Outcome:
    """Every grid point of every ladder scale trained once to its full budget, each reading one of the
    grid's seeds drawn with `seed`, recommended as the searches are (`recommend`): everything the table
    holds at one run per setting, a reference for a search's regret (a search matching it has left
    little to the search; what remains is the table's noise and the analysis)."""
    rng = np.random.default_rng(seed)
    final = truth.final_losses()
    final = final[final["scale"].isin(truth.ladder_scales)]
    runs = final.groupby(["scale", *SETTING], sort=True)
    rows = []
    for _, group in runs:
        run = group.iloc[int(rng.integers(len(group)))]
        rows.append({"variant": "default", "scale": run["scale"], "params": float(run["params"]),
                     "tokens": float(run["tokens"]), "tokens_seen": float(run["tokens"]),
                     **{name: float(run[name]) for name in SETTING}, "loss": float(run["loss"]),
                     "status": run["status"], "flops": 6.0 * float(run["params"]) * float(run["tokens"])})
    history = pd.DataFrame(rows)
    fraction = float(history["flops"].sum()) / ladder.target_flops
    regret = target_regret(truth, lambda: recommend(history, seed, ladder), ladder)
    return Outcome("every_grid_point", len(history), seed, regret, fraction)


def _grid_job(seed: int) -> Outcome:
    logging.getLogger("hpo").setLevel(logging.ERROR)
    assert _TABLE is not None
    return every_grid_point(_TABLE, seed, table_ladder(_TABLE))


def table_benchmark(name: str, seeds: int, budgets: tuple[int, ...], peer_budgets: tuple[int, ...],
                    jobs: int, path: Path | None = None, target: str | None = None
                    ) -> tuple[pd.Series, float, str, pd.Series]:
    """The same methods on the real ladder table `name` (`tabular_ladder.TABLES`, or the table at `path`),
    replayed; with `target`, the scales above it dropped and it the target (`TabularLadder.up_to`)."""
    global _TABLE
    started = time.perf_counter()
    path = path or TABLES[name]
    if not path.exists():
        raise SystemExit(f"no {name} table at {path}: make it with "
                         f"`python benchmarks/real_{name}_ladder.py{' grid' if name == 'gpt' else ''}`")
    _TABLE = truth = TabularLadder.from_csv(path)
    if target is not None:
        try:
            _TABLE = truth = truth.up_to(target)
        except ValueError as error:
            raise SystemExit(f"--target: {error}") from None
    ladder = table_ladder(truth)
    best, best_loss = truth.best(truth.target_scale)
    print(f"  {name} table: ladder {', '.join(truth.ladder_scales)}, target {truth.target_scale} "
          f"(N = {ladder.target_params:,.0f}, D = {ladder.target_tokens:,.0f}); space {ladder.space}; "
          f"target grid optimum {best}, mean final loss {best_loss:.4f}", flush=True)
    work = [(method, budget, seed) for budget in budgets for method in SEARCHES for seed in range(seeds)]
    work += [(method, budget, seed) for budget in peer_budgets if budget > max(budgets)
             for method in SEARCHES if method != OURS for seed in range(seeds)]
    target, worst = REAL_TARGET_PCT
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        outcomes = run_searches(pool, _table_job, work, seeds, sweep_on=bool(peer_budgets), target=target,
                                worst=worst)
        every_point = pool.map(_grid_job, range(seeds))
    print(f"  {searches(outcomes)} searches of the {name} table in {time.perf_counter() - started:.0f} s",
          flush=True)
    summary = summarize(outcomes, target)
    show_summary(summary, seeds, title=(
        f"Real {name} ladder, replayed: regret at {truth.target_scale} (N={ladder.target_params:,.0f}) vs "
        f"tuning compute (ladder {', '.join(truth.ladder_scales)}; median [IQR] and worst over {seeds} "
        "seeds)"), target=target)
    bound = summarize(every_point, target).iloc[0]
    print(f"\nEvery grid point of every ladder scale, once, each run's seed drawn ({bound['budget']} runs, "
          f"compute {bound['compute_median']:.3g} target runs), recommended as the searches are: regret "
          f"{bound['regret_median']:.3f}% [{bound['regret_q25']:.3f}, {bound['regret_q75']:.3f}], worst "
          f"{bound['regret_max']:.3f}% over {seeds} draws (the whole table at one run per setting)")
    return (*show_speedup(summary, f"Real {name} ladder: compute", target, worst), bound)


# ---------------------------------------------------------------- entry point


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds and 2 budgets instead of 10 and 4")
    parser.add_argument("--seeds", type=int, default=None, help="repetitions per (method, budget)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (repetitions run in parallel)")
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/search_efficiency.png"))
    parser.add_argument("--real", choices=sorted(TABLES), default=None,
                        help=f"replay that real ladder's table instead of the surrogate ({REAL_QUICK[0]} "
                        f"seeds and budgets {REAL_QUICK[1]} with --quick, else {REAL_FULL[0]} and "
                        f"{REAL_FULL[1]}, peers also {PEER_BUDGETS})")
    parser.add_argument("--table", type=Path, default=None,
                        help="with --real: replay the ladder table at this path instead of the committed one")
    parser.add_argument("--target", default=None, metavar="SCALE",
                        help="with --real: drop the scales above SCALE and make it the target (a held-out "
                             "check of the defaults on a scale they were not chosen on)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.real:
        return real_main(args)
    seeds = args.seeds or (4 if args.quick else 10)
    budgets = (6, 16) if args.quick else BUDGETS
    started = time.perf_counter()
    ours, ratio, how = surrogate_benchmark(seeds, budgets, args.plot, args.jobs, sweep_on=not args.quick)
    print(f"\nspeedup read {how}")
    print(f"ran in {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'})\n")
    print(f"RESULT regret_pct={ours['regret_median']:.4f}")
    print(f"RESULT compute_fraction={ours['compute_median']:.4f}")
    print(f"RESULT speedup_vs_best_peer={ratio:.2f}")
    return 0


def real_main(args: argparse.Namespace) -> int:
    seeds, budgets = REAL_QUICK if args.quick else REAL_FULL
    peer_budgets = () if args.quick else PEER_BUDGETS
    started = time.perf_counter()
    ours, ratio, how, bound = table_benchmark(args.real, args.seeds or seeds, budgets, peer_budgets,
                                              args.jobs, args.table, args.target)
    print(f"\nspeedup read {how}")
    print(f"ran in {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'}, "
          f"{args.real} table replayed)\n")
    name = f"real_{args.real}" + (f"_{args.target}" if args.target else "")
    print(f"RESULT {name}_regret_pct={ours['regret_median']:.4f}")
    print(f"RESULT {name}_worst_regret_pct={ours['regret_max']:.4f}")
    print(f"RESULT {name}_compute_fraction={ours['compute_median']:.4f}")
    print(f"RESULT {name}_speedup_vs_best_peer={ratio:.2f}")
    print(f"RESULT {name}_every_grid_point_regret_pct={bound['regret_median']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
