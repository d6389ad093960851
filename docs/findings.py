"""Write docs/findings.md and its plots from the stored results of the four question studies.

Run after the studies (``make findings`` runs them with ``hpo run`` first):

    python docs/findings.py [--studies weight_decay,batch_size,...] [--out docs]

Every number in the page is read here from the studies' own stores: the trial
table `hpo.store.trial_table.load_trials` reads from Optuna, the fits and the
recommendation `hpo.analysis.extrapolate` makes of it (the same call as
``hpo analyze``), the plots `hpo.analysis.plots.write_plots` draws (copied to
``docs/findings/<study>/``), the compute `hpo.study.compute.study_compute` sums, and
each study's wall time from its Optuna trials (first start to last end).
The trial table of each study is kept beside its plots as ``trials.csv``, so
``python -m hpo.analysis docs/findings/<study>/trials.csv --target 9.85e7``
redoes the fits without the stores.
The verdict lines are rules over those numbers, written out below, so a rerun
that measures something else says something else.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pandas as pd

from hpo.analysis import TRIAL_COLUMNS, Estimate, Recommendation, extrapolate, normalize_trials
from hpo.analysis.optimum import pooled_noise
from hpo.analysis.plots import write_plots
from hpo.analysis.report import format_recommendation
from hpo.analysis.trials import iter_cells
from hpo.store.trial_table import load_trials
from hpo.study.compute import StudyCompute, study_compute, target_flops
from hpo.study.spec import StudySpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
NOISE: dict[str, float] = {}
"""``floor``: the noise in % of loss a gap must beat, measured by the crossover study (`noise_floor`), once
loaded."""
STUDIES = ("weight_decay", "batch_size", "learning_rate", "lr_width_crossover")
"""The question studies, in the order the page presents them (studies/<name>.yaml)."""


@dataclass(frozen=True)
class StudyResult:
    """One study's spec, trial table, recommendation, compute, wall time (s) and plot paths."""

    spec: StudySpec
    trials: pd.DataFrame
    recommendation: Recommendation
    compute: StudyCompute
    wall_seconds: float
    plots: tuple[Path, ...]


def load_result(name: str, out: Path) -> StudyResult:
    """Read study `name`'s stores, fit it, and draw its plots into ``out/findings/<name>/``."""
    spec = load_spec(ROOT / "studies" / f"{name}.yaml", output_root=ROOT)
    trials = load_trials(spec, compute=True)
    if trials.empty:
        raise SystemExit(f"study {name} has no trials in {spec.output_dir}: "
                         f"run `hpo run studies/{name}.yaml`")
    recommendation = extrapolate(trials[list(TRIAL_COLUMNS)], target_params=spec.target_params)
    compute = study_compute(trials, devices_per_trial=spec.resources.gpu or spec.resources.cpu,
                            target=target_flops(spec.target_params, spec.target_tokens))
    folder = out / "findings" / name
    plots = tuple(write_plots(recommendation, trials, folder))
    trials.to_csv(folder / "trials.csv", index=False)
    return StudyResult(spec, trials, recommendation, compute, _wall_seconds(spec), plots)


def _wall_seconds(spec: StudySpec) -> float:
    """Seconds from the first trial's start to the last trial's end, over every (variant, scale), from
    Optuna (a resumed study that had nothing left to run adds nothing)."""
    import optuna

    from hpo.store.optuna_store import optuna_storage, optuna_study_name

    storage = optuna_storage(spec.storage.optuna)
    existing = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    starts, ends = [], []
    for variant in spec.variants:
        for scale in spec.scales:
            name = optuna_study_name(spec.name, variant.name, scale)
            if name not in existing:
                continue
            for trial in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
                if trial.datetime_start is not None and trial.datetime_complete is not None:
                    starts.append(trial.datetime_start)
                    ends.append(trial.datetime_complete)
    return (max(ends) - min(starts)).total_seconds() if starts else math.nan


# ---------------------------------------------------------------------------------------------- formatting


def num(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant figures, "-" when missing."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def est(estimate: Estimate) -> str:
    """An estimate as ``value [low, high]``; "fixed" for a fixed setting."""
    if estimate.level == 1.0:
        return f"{num(estimate.value)} (fixed)"
    if not math.isfinite(estimate.low) or estimate.low == estimate.high:
        return f"{num(estimate.value)} (no interval)"
    return f"{num(estimate.value)} [{num(estimate.low)}, {num(estimate.high)}]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def interval_sign(estimate: Estimate) -> str:
    """``"> 0"``, ``"< 0"`` or ``"spans 0"``: where a 90% interval of an exponent lies."""
    if not math.isfinite(estimate.low) or estimate.low == estimate.high:
        return "has no interval"
    if estimate.low > 0:
        return "> 0"
    if estimate.high < 0:
        return "< 0"
    return "spans 0"


# ------------------------------------------------------------------------------------------- page sections


def setup_section(result: StudyResult) -> list[str]:
    """What the study ran: scales, N, D, trials per variant, and its variants."""
    spec = result.spec
    counts = result.trials.groupby(["variant", "scale"]).size()
    rows = [[scale, f"{spec.params(scale):,}", f"{spec.tokens(scale):,}",
             " / ".join(str(int(counts.get((v.name, scale), 0))) for v in spec.variants)]
            for scale in spec.scales]
    variants = ", ".join(f"`{v.name}`" for v in spec.variants)
    return [f"`studies/{spec.name}.yaml`: family `{spec.family}` {dict(spec.family_options)}, variants "
            f"{variants}, search `{spec.search.name}`, target N = {spec.target_params:.3g}.", "",
            *table(["scale", "N (non-embedding)", "D (tokens per trial)",
                    "trials run (" + " / ".join(v.name for v in spec.variants) + ")"], rows)]


def cells_section(result: StudyResult) -> list[str]:
    """Per (variant, scale): trial outcomes, the best trial, the fitted optimum and the stability edge."""
    rows = []
    for variant, fit in result.recommendation.fit.variants.items():
        for o in sorted(fit.optima, key=lambda o: o.params):
            trials = result.trials
            cell = trials[(trials["variant"] == variant) & (trials["params"] == o.params)]
            complete = cell[cell["status"] == "complete"]
            best = complete["loss"].min() if len(complete) else math.nan
            flags = [f"{name} at {side} edge" for name, side in o.at_edge.items()]
            flags += ["too few trials"] * o.too_few_trials + ["no bowl: best trial"] * (not o.surface_fitted)
            space = result.spec.variant(variant).space
            cells = [est(o.value(name)) if name in o.searched else
                     f"{num(o.value(name).value)} (fixed)" if isinstance(getattr(space, name), int | float)
                     else f"{num(o.value(name).value)} (best trial; < 3 values tried)"
                     for name in ("lr", "batch_size", "weight_decay")]
            rows.append([variant, o.scale, f"{o.n_complete}/{o.n_pruned}/{o.n_diverged}", num(best, 4),
                         *cells, num(o.stability_edge_lr), "; ".join(flags) or "-"])
    return table(["variant", "scale", "complete/pruned/diverged", "best loss", "optimum lr (90%)",
                  "optimum batch", "optimum wd", "lowest diverged lr", "notes"], rows)


def laws_section(result: StudyResult) -> list[str]:
    """Every fitted law with its exponent interval, and why a law is missing."""
    lines = []
    for variant, fit in result.recommendation.fit.variants.items():
        for name, law in fit.laws.items():
            lines.append(f"- `{variant}`: {name}\\*(N) = {num(law.a)} · N^b, b = {est(law.exponent('b'))} "
                         f"(90%), scatter τ = {num(law.tau, 2)}")
        if fit.stability_edge is not None:
            edge = fit.stability_edge
            lines.append(f"- `{variant}`: lowest diverging lr(N) = {num(edge.a)} · N^b, "
                         f"b = {est(edge.exponent('b'))}")
        for name, value in fit.fixed.items():
            lines.append(f"- `{variant}`: {name} has no law ({fit.held_because[name]}): {num(value)} is used")
        if fit.loss_law is not None:
            law = fit.loss_law
            lines.append(f"- `{variant}`: L(N) = {num(law.E, 4)} + {num(law.A)} · N^-{num(law.alpha)} "
                         f"(rms log residual {num(law.rms_log_residual, 2)})")
        lines += [f"- `{variant}`: {note}" for note in fit.notes]
    return [*lines, ""]


def crossover_section(result: StudyResult) -> list[str]:
    """Variant crossovers (verdict, where, P(flip)) and flagged hyperparameter crossovers."""
    rec = result.recommendation
    if len(rec.fit.variants) < 2:
        return ["One variant: no variant crossover to look for.", ""]
    if not rec.crossovers:
        return ["No crossover verdict: it needs a loss law per variant, and a loss law needs four model "
                "sizes (see the laws above).", ""]
    rows = [[f"{c.variant_a} / {c.variant_b}", c.verdict, est(c.params), num(c.p_flip, 2),
             c.leader_at_largest, c.leader_at_target] for c in rec.crossovers]
    return table(["variants", "verdict", "crossing at N (90%)", "P(ranking flips)", "leads at largest N",
                  "leads at target"], rows)


def compute_section(result: StudyResult) -> list[str]:
    """Tuning FLOPs, share of one target run, device-seconds and wall time."""
    c = result.compute
    return [f"Tuning compute: {num(c.flops)} FLOPs = {num(100 * c.fraction_of_target)}% of one run at the "
            f"target ({num(c.target_flops)} FLOPs); {c.device_seconds:,.0f} CPU-seconds in training loops; "
            f"{num(result.wall_seconds / 60, 2)} minutes of wall time from the first trial's start to the "
            "last one's end (Ray start-up not counted), on two CPU cores shared with other work.", ""]


def plots_section(result: StudyResult, out: Path) -> list[str]:
    """The plots `hpo analyze --plots` draws, embedded."""
    table_path = (out / "findings" / result.spec.name / "trials.csv").relative_to(out).as_posix()
    return [f"![{path.stem}]({path.relative_to(out).as_posix()})" for path in result.plots] + [
        "", f"Trial table: [{table_path}]({table_path}).", ""]


# ---------------------------------------------------------------------------------------- verdict rules


def best_losses(result: StudyResult, variant: str) -> dict[str, float]:
    """Best complete loss per scale of `variant`."""
    rows = result.trials[(result.trials["variant"] == variant) & (result.trials["status"] == "complete")]
    return {str(scale): float(group["loss"].min()) for scale, group in rows.groupby("scale", sort=False)}


def weight_decay_verdict(result: StudyResult) -> list[str]:
    """Tuned wd vs wd = 0: the loss gap per scale, the fitted wd optimum, the crossover verdict."""
    tuned, zero = best_losses(result, "tuned"), best_losses(result, "zero")
    gaps = {s: 100 * (zero[s] - tuned[s]) / zero[s] for s in result.spec.scales if s in tuned and s in zero}
    lines = ["- Loss gain of tuned weight decay over wd = 0, best trial per scale (positive: decay helps): "
             + ", ".join(f"{s}: {g:+.2f}%" for s, g in gaps.items()) + "."]
    fit = result.recommendation.fit.variants.get("tuned")
    if fit is not None:
        zero_cells = [o.scale for o in fit.optima if o.weight_decay.value == 0]
        if zero_cells:
            lines.append("- The tuned variant's fitted optimum is wd = 0 at " + ", ".join(zero_cells) + ".")
    floor = NOISE.get("floor")
    if floor is not None and all(abs(g) < floor for g in gaps.values()):
        lines.append(f"- Every gap is under {floor:.2f}%, the noise measured in lr_width_crossover: at "
                     "these scales and budgets the study cannot tell whether weight decay helps.")
    elif all(g > 0 for g in gaps.values()):
        lines.append("- Tuned weight decay is ahead at every scale measured.")
    elif all(g < 0 for g in gaps.values()):
        lines.append("- wd = 0 is ahead at every scale measured.")
    else:
        lines.append("- The sign of the gap changes across scales: no consistent benefit of weight decay.")
    if floor is not None and any(abs(g) >= floor for g in gaps.values()):
        lines.append(f"- For comparison, the noise measured in lr_width_crossover is {floor:.2f}%; "
                     "only gaps beyond it are more than noise.")
    if floor is not None and not all(abs(g) >= floor and g > 0 for g in gaps.values()):
        lines.append("- What it would take: gaps this small need less noise than one trial has; k seeds of "
                     "each setting cut it by √k (four seeds halve it), and weight decay acts late in a run, "
                     "so budgets nearer 20 tokens per parameter (the study file's GPU ladder) would show "
                     "more of it.")
    lines += _crossover_lines(result)
    return lines


def batch_size_verdict(result: StudyResult) -> list[str]:
    """Where the batch optimum sits and whether its law grows; small-batch edge flags."""
    fit = next(iter(result.recommendation.fit.variants.values()))
    lines = ["- Optimum batch size per scale (sequences of 64 tokens): "
             + ", ".join(f"{o.scale} (D = {o.tokens:,.0f}): {num(o.batch_size.value)}"
                         for o in sorted(fit.optima, key=lambda o: o.params)) + "."]
    low_edge = [o.scale for o in fit.optima if o.at_edge.get("batch_size") == "low"]
    space = result.spec.variants[0].space.batch_size
    smallest = getattr(space, "low", None)
    if smallest is not None and all(o.batch_size.value == smallest for o in fit.optima):
        lines.append(f"- The smallest batch searched ({smallest} sequences) won at every scale: with "
                     "budgets this short, more optimizer steps beat larger batches throughout, and no "
                     "growth of the optimum is visible over this span.")
    elif low_edge:
        lines.append("- At " + ", ".join(low_edge) + " the optimum sits at the smallest batch searched: "
                     "there, smaller was better as far as the range went.")
    law = fit.laws.get("batch_size")
    if law is None:
        lines.append("- No batch-size law could be fitted.")
    else:
        b = law.exponent("b")
        sign = interval_sign(b)
        reading = {"> 0": "the optimum batch grows along the ladder (N and D together)",
                   "< 0": "the optimum batch shrinks along the ladder",
                   "spans 0": "the evidence is too weak to say whether it grows or shrinks"}.get(
                       sign, "every cell's optimum is a single best trial, so the direction is not "
                       "established")
        lines.append(f"- Law B\\*(N) ∝ N^{b.value:+.2f}, 90% interval of the exponent {sign}: {reading}.")
        if sign not in ("> 0", "< 0"):
            lines.append("- What it would take: budgets long enough that more optimizer steps stop paying "
                         "for a smaller batch (the study file's GPU ladder, 20 tokens per parameter), and a "
                         "second study at another tokens_per_param to separate N from D.")
    return lines


def learning_rate_verdict(result: StudyResult) -> list[str]:
    """Optimum lr against the lowest diverging lr per scale, and the direction of the lr law."""
    fit = next(iter(result.recommendation.fit.variants.values()))
    rows = []
    for o in sorted(fit.optima, key=lambda o: o.params):
        ratio = o.stability_edge_lr / o.lr.value if o.stability_edge_lr else math.nan
        rows.append(f"{o.scale}: optimum {num(o.lr.value)}, edge {num(o.stability_edge_lr)}"
                    + ("" if math.isnan(ratio) else f" ({ratio:.1f}× the optimum)"))
    lines = ["- Optimum lr against the lowest lr that diverged: " + "; ".join(rows) + "."]
    undiverged = [o.scale for o in fit.optima if o.stability_edge_lr is None]
    if undiverged:
        tried = result.trials[result.trials["scale"].isin(undiverged)]["lr"].max()
        lines.append(f"- No trial diverged at {', '.join(undiverged)} (highest lr tried there: "
                     f"{num(tried)}): the edge lies above what was tried, and the optimum well below it.")
    near = [o.scale for o in fit.optima if o.near_stability_edge]
    far = [o.scale for o in fit.optima if o.stability_edge_lr and not o.near_stability_edge]
    if near:
        lines.append("- Within 2× of the edge (the optimum is about the largest stable lr) at "
                     + ", ".join(near) + ".")
    if far:
        lines.append("- More than 2× below the edge (a moderate lr, not the largest stable one) at "
                     + ", ".join(far) + ".")
    law = fit.laws.get("lr")
    if law is not None:
        b = law.exponent("b")
        sign = interval_sign(b)
        reading = {"> 0": "it grows with N", "< 0": "it shrinks with N",
                   "spans 0": "too weak to say whether it shrinks with N"}.get(
                       sign, "every cell's optimum is a single best trial, so the trend is not established")
        lines.append(f"- lr\\*(N) ∝ N^{b.value:+.2f}, 90% interval of the exponent {sign}: {reading}.")
        if sign not in ("> 0", "< 0"):
            lines.append(f"- What it would take: more sizes ({len(fit.optima)} cells leave the exponent "
                         f"{len(fit.optima) - 2} degree(s) of freedom) and more complete trials near each "
                         "optimum, where early stopping now spends most of them past the edge.")
    if fit.stability_edge is not None:
        edge = fit.stability_edge.exponent("b")
        lines.append(f"- The edge moves as N^{edge.value:+.2f} (interval {interval_sign(edge)}).")
    return lines


def crossover_verdict(result: StudyResult) -> list[str]:
    """Constant vs c/width: tuned loss gap per scale, the c and lr laws, the crossover verdict."""
    constant, scaled = best_losses(result, "constant"), best_losses(result, "c_over_width")
    gaps = {s: 100 * (constant[s] - scaled[s]) / constant[s]
            for s in result.spec.scales if s in constant and s in scaled}
    lines = ["- Loss of c/width relative to a constant lr, best trial per scale (positive: c/width "
             "better): " + ", ".join(f"{s}: {g:+.2f}%" for s, g in gaps.items()) + "."]
    fits = result.recommendation.fit.variants
    if "lr" in fits.get("constant", _NO_FIT).laws and "lr" in fits.get("c_over_width", _NO_FIT).laws:
        b_constant = fits["constant"].laws["lr"].exponent("b")
        b_scaled = fits["c_over_width"].laws["lr"].exponent("b")
        lines.append(f"- Exponents of the tuned constants: lr\\* ∝ N^{est(b_constant)} for `constant`, "
                     f"c\\* ∝ N^{est(b_scaled)} for `c_over_width`. Width grows as N^(1/3) on this ladder, "
                     "so if both variants find the same effective lr the second exponent is the first "
                     f"plus 1/3 (here the difference is {b_scaled.value - b_constant.value:+.2f}).")
    floor = noise_floor(result)
    if floor is not None:
        lines.append(f"- Noise a gap must beat: {floor[1]:.2f}%, {floor[0]}; gaps of that size at other "
                     "scales say nothing.")
    lines += _crossover_lines(result)
    return lines


class _NoFit:
    laws: dict[str, object] = {}  # noqa: RUF012 (a read-only stand-in)


_NO_FIT = _NoFit()


def _crossover_lines(result: StudyResult) -> list[str]:
    lines = []
    for c in result.recommendation.crossovers:
        fits = result.recommendation.fit.variants
        thin = [f"{o.variant} {o.scale}" for name in (c.variant_a, c.variant_b) for o in fits[name].optima
                if o.too_few_trials or not o.surface_fitted]
        lines.append(f"- Crossover verdict `{c.verdict}` for {c.variant_a} / {c.variant_b}: "
                     f"{c.leader_at_largest} leads at the largest size, {c.leader_at_target} is predicted "
                     f"to lead at the target; P(ranking flips) = {c.p_flip:.2f}.")
        if thin:
            lines.append(f"- That verdict is not evidence: {len(thin)} of the cells behind it ("
                         + ", ".join(thin) + ") rest on their single best trial, which the bootstrap "
                         "cannot vary, so the intervals and P(ranking flips) above understate the "
                         "uncertainty; the loss laws' fit warnings below say the same.")
        elif 0.2 < c.p_flip < 0.8:
            lines.append("- P(ranking flips) between 0.2 and 0.8: the bootstrap cannot settle the ranking.")
        if thin or 0.2 < c.p_flip < 0.8:
            lines.append(_loss_law_needs(result, (c.variant_a, c.variant_b)))
    return lines


def _loss_law_needs(result: StudyResult, variants: tuple[str, str]) -> str:
    """What a crossover verdict would need: a tuned loss that falls with N, and cells that locate it."""
    rising = []
    for name in variants:
        best = best_losses(result, name)
        losses = [best[s] for s in result.spec.scales if s in best]
        if any(later > earlier for earlier, later in pairwise(losses)):
            rising.append(name)
    if rising:
        return ("- What it would take: a tuned loss that falls with N: here the best loss of "
                + ", ".join(f"`{n}`" for n in rising) + " rises from one size to the next at this budget, "
                "which no L(N) = E + A·N^-α fits; budgets that grow with N (D ∝ N, the study file's GPU "
                "ladder) and a located optimum in every cell.")
    return ("- What it would take: more sizes and seeds, so that the loss laws' bootstrap separates the "
            "variants; or a target nearer the measured span.")


def noise_floor(result: StudyResult) -> tuple[str, float] | None:
    """The noise a gap between two variants' best losses must beat, in %, and where it was measured.

    In the crossover study the variants coincide at the reference width (lr factor 1): the gap between
    their best losses there is search noise. Where the two ran the very same trials there (one design,
    one seed: training is deterministic), that gap is 0 and measures nothing; the floor is then the
    run-to-run noise σ of one trial's loss that the analysis estimates from the scatter of the study's
    trials about each cell's surface (`pooled_noise`), the lower of the two variants' estimates."""
    if result.spec.name != "lr_width_crossover":
        return None
    family = result.spec.load_family()
    variant = result.spec.variant("c_over_width")
    reference = variant.train.get("lr_width_ref") or family.width(family.scales[0])
    same = [s for s in result.spec.scales if family.width(s) == reference]
    constant, scaled = best_losses(result, "constant"), best_losses(result, "c_over_width")
    if not same or same[0] not in constant or same[0] not in scaled:
        return None
    gap = 100 * abs(constant[same[0]] - scaled[same[0]]) / constant[same[0]]
    if gap > 0:
        return f"the gap at {same[0]}, where the two variants train identically", gap
    cells: dict[str, list[pd.DataFrame]] = {}
    for name, _, _, rows in iter_cells(normalize_trials(result.trials)):
        cells.setdefault(name, []).append(rows)
    sigmas = [s for rows in cells.values() if (s := pooled_noise(rows)) is not None]
    if not sigmas:
        return None
    return (f"the run-to-run noise of one trial's loss estimated from its trials (at {same[0]} the two "
            "variants ran the very same trials, a gap of 0 that measures nothing)"), 100 * min(sigmas)


DESIGNS: dict[str, str] = {
    "weight_decay": (
        "Two variants, each tuned at every scale over lr: `tuned` also searches AdamW's decoupled weight "
        "decay (log range plus an exact 0), `zero` holds it at 0; batch size is fixed. Weight decay "
        "helping means `tuned` reaching a lower loss than `zero`; a crossover verdict needs a loss law "
        "per variant, hence four sizes."),
    "batch_size": (
        "One variant searching lr and batch size together. A study has one budget rule and variants "
        "cannot override it, so D moves with the rule D = tokens_per_param·N (the table above): the "
        "budget grows with the model, and the fitted B\\*(N) is the optimum's path along D ∝ N, N and D "
        "confounded. Separating them needs a second study at another tokens_per_param (then the "
        "analysis fits B\\*(N, D) = a·N^b·D^c from the two trial tables joined, with "
        "`python -m hpo.analysis`). ASHA compares trials at equal tokens, where small batches lead "
        "early; its first rung is placed late to limit that bias."),
    "learning_rate": (
        "One variant; every scale searches lr from clearly too low to past the divergence edge (search: "
        "independent, so no scale's range is narrowed away from the edge), with batch size and weight "
        "decay fixed, no gradient clipping, and a run counted as diverged once its smoothed training "
        "loss climbs 20% above its first step's. Diverged trials mark each scale's stability edge, the "
        "lowest lr that diverged."),
    "lr_width_crossover": (
        "`constant` searches the lr itself; `c_over_width` searches c and trains at width w with "
        "lr = c·(32/w) (`train.lr_width_exponent: 1`). Both are tuned at every scale, so once each "
        "variant finds its optimum the two are the same family of runs written in two coordinates: any "
        "gap between their tuned losses is search noise or a range edge, and the known crossover of "
        "the two rules appears when c is tuned small and kept, which `hpo analyze` reports as a "
        "hyperparameter crossover. The check here is whether the service reports a variant crossover "
        "between them, and whether the two lr laws differ by width's exponent, 1/3 on this ladder. "
        "In the tables, `c_over_width`'s lr is c: the lr it trains with at width w is c·(32/w)."),
}


VERDICTS: dict[str, tuple[str, Callable[[StudyResult], list[str]]]] = {
    "weight_decay": ("Is explicit weight decay still helping at scale?", weight_decay_verdict),
    "batch_size": ("Is a small batch still better, or is the best batch moderate and growing?",
                   batch_size_verdict),
    "learning_rate": ("Is the best learning rate the largest stable one, or moderate and shrinking?",
                      learning_rate_verdict),
    "lr_width_crossover": ("Does a method that wins small lose large? Constant lr vs c/width",
                           crossover_verdict),
}


def study_page(result: StudyResult, out: Path) -> list[str]:
    """The section of one study."""
    question, verdict = VERDICTS[result.spec.name]
    return [f"## {question}", "", *setup_section(result), DESIGNS[result.spec.name], "",
            "### What the service concluded", "",
            *verdict(result), "", "### Cells: outcome and fitted optimum per scale", "",
            *cells_section(result), "### Fitted laws (90% intervals)", "", *laws_section(result),
            "### Crossovers", "", *crossover_section(result), "### Recommendation at the target "
            "(`hpo analyze`)", "", "```", format_recommendation(result.recommendation), "```", "",
            "### Compute", "", *compute_section(result), "### Plots", "", *plots_section(result, out)]


HEADER = """# Findings: the scaling-era questions, asked of the built-in `gpt` family

Generated by `make findings` (runs the four studies below with `hpo run`, then
`python docs/findings.py`); do not edit by hand. Every number is read from the
studies' stores under `runs/<study>/` — the same ones `hpo status`, `hpo
analyze` and `hpo ui` show. The model ladder is the byte-level `gpt` family on
the Python standard library's sources, at the CPU scales that finish here
(13k to 793k non-embedding parameters, 64-byte sequences); losses are eval
losses in nats per byte. Each study file also carries, commented, the ladder
for a GPU cluster (2.7M to 98M, 20 tokens per parameter, 1B target).

Read these as what the service concludes from about ten minutes of two CPU
cores per study (each study's Compute section gives its time): every scale runs
16 to 24 trials, most of them to their full budget, so each cell's optimum is
located, but the budgets are short and the 98M target lies far beyond the
measured span (every recommendation carries that warning). Where the evidence
is still too weak to answer, the page says what it would take.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", default=",".join(STUDIES), help="comma-separated study names")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder of findings.md and findings/")
    args = parser.parse_args(argv)
    out = Path(args.out)
    lines = [HEADER]
    results = [load_result(name, out) for name in args.studies.split(",") if name]
    for result in results:
        if (floor := noise_floor(result)) is not None:
            NOISE["floor"] = floor[1]
    for result in results:
        lines += study_page(result, out)
    (out / "findings.md").write_text("\n".join(lines).rstrip() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
