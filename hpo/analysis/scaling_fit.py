"""Everything fitted from a trial table: per-cell optima, then laws across cells, per variant.

`fit_scaling` runs the pipeline once; `extrapolate.recommend` then reads any
number of targets off it. Four ways to get the laws of the optimal
hyperparameters (`method`), and ``"auto"`` (the default), which takes
``"blend"`` for a sweep searched on grids (every cell, `near_best.is_grid`);
otherwise ``"near_best"`` where one loss's noise σ is above `NOISY` × the
tolerance and ``"surface"`` where it is below or cannot be read:

* ``"near_best"``: the relative loss noise σ is estimated once
  per variant from all its cells (`noise`); every cell's optimum is the centre
  of its near-best band (`near_best`: trials within `tolerance` of the best,
  as far as σ tells); h*(N) = a·N^b, or h*(N, D) = a·N^b·D^c when D varies at
  fixed N, is fitted to those centres with every cell counted once, and its
  interval is that of a new cell (`power_law`, equal weights). The cells'
  tuned losses, and the loss law, are the surfaces' with their bootstrap (a
  band says where the good settings are, not how good they are).
* ``"surface"``: every cell's optimum is the minimum of a quadratic surface
  with a bootstrap over its trials; laws weigh cells by that bootstrap
  (Paule–Mandel) and propagate it (the pipeline before issue 14).
  On a random or adaptive search with a quiet loss, a surface fitted to the
  loss values locates the optimum best; where one loss's noise is a few times
  the tolerance, its minimum can land far from every good trial on a flat
  top, while a band's centre stays among them (docs/analysis.md).
* ``"joint"``: one surface over all trials of all cells at once, its centre a
  power law in N and D (`joint_surface`).
* ``"blend"``: the ``"near_best"`` laws of lr and batch size moved halfway
  to the laws through the same cells' surface minima (`power_law.blend_laws`:
  the mean of the two laws' ln a, b and c, both fitted with every cell
  counted once), with the band law's interval about that centre. The two
  locators err differently on a flat, skewed valley (a band's centroid
  follows the plateau's extent, a quadratic's minimum its misfit); on the
  Step Law folds the blend's worst held-out regret is a third of either's,
  its interval as calibrated as the bands' (benchmarks/README.md). The
  surface minima, noisier cell by cell, would widen the interval by their
  own scatter, so the width stays the bands'.

Whatever the method, a law none of whose exponents' intervals excludes 0 is
shrunk towards a constant by its signal-to-noise (`power_law.shrink_exponents`:
each exponent b times κ = b²/(b² + s²), pivoting about the largest size): one
lost in the noise tends to the law's value at the largest size measured
(extrapolating it would multiply the noise by the distance to the target),
one nearly resolved keeps most of its value, where dropping it held
the hyperparameter at the cells' mean even when every cell said it moves with N
(for the recommendation; a search centres its regions on the laws as fitted);
a hyperparameter most cells that searched it put at an exact 0 (weight decay)
gets no law and is held at 0, one no cell located at the value most cells ran;
the learning-rate stability edge gets a law when trials diverged in two or
more sizes; the loss law L(N), or L(N, D), is fitted to the cells' tuned losses
(`loss_law`); and how much steeper the cells' loss rises above the lr (batch
size) optimum than below is measured (`asymmetry`), for `extrapolate` to set
each at its point of least expected loss.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from hpo.analysis.asymmetry import cell_steepness_ratio, pooled_steepness_ratio
from hpo.analysis.estimate import robust_std
from hpo.analysis.joint_surface import fit_joint_laws
from hpo.analysis.loss_law import HUBER_DELTA, LossLaw, fit_loss_law
from hpo.analysis.near_best import DEFAULT_TOLERANCE, is_grid
from hpo.analysis.optimum import Optimum, find_optimum, pooled_noise
from hpo.analysis.power_law import PowerLaw, blend_laws, fit_constant, fit_power_law, shrink_exponents
from hpo.analysis.trials import iter_cells, varies_tokens_independently
from hpo.vocab import COMPLETE, HYPERPARAMETERS

logger = logging.getLogger(__name__)

METHODS = ("auto", "near_best", "surface", "joint", "blend")
_CONTINUOUS = ("lr", "batch_size")
"""Hyperparameters whose loss is continuous in ln h near the optimum, so that their steepness ratio is
measured and their ``"blend"`` law averages band centres and surface minima (weight decay's exact-zero
branch has neither a profile nor a surface minimum: its law stays the bands')."""
NOISY = 3.0
"""On a search that is not a grid, ``"auto"`` locates cells by their near-best bands once one loss's noise
is above 3 × the tolerance (0.3% of the loss by default), by their surfaces below it (module docstring)."""
_UNMOVED_EXPONENT = 1e-9
"""A shrink that moves no exponent by more than this has nothing to report (a law through equal optima)."""
NOT_SEARCHED = "not searched"
"""`VariantFit.held_because` of a hyperparameter every trial ran at one value: the user fixed it."""


@dataclass(frozen=True, eq=False)
class VariantFit:
    """The optima and laws of one variant. Units as in `Optimum`; ``optima[i].method`` says how the
    optima were located (``"near_best"`` or ``"surface"``; ``"blend"`` locates them by their bands)."""

    variant: str
    optima: tuple[Optimum, ...]
    laws: dict[str, PowerLaw]
    """Power law of each scaled hyperparameter (``"lr"``, ``"batch_size"``, ``"weight_decay"``)."""
    fixed: dict[str, float]
    """Hyperparameters not scaled (held fixed, or searched in too few cells): the value to use."""
    held_because: dict[str, str]
    """Why each hyperparameter of `fixed` has no law, in a few words for a report: `NOT_SEARCHED`,
    ``"0 in most cells"``, ``"located in one cell"``, ``"located at one size"`` or ``"no cell located
    it"``."""
    stability_edge: PowerLaw | None
    """Law of the lowest diverging lr, when trials diverged in enough cells."""
    loss_law: LossLaw | None
    uses_tokens: bool
    """True when laws are in (N, D): some model size was trained at several token budgets."""
    notes: tuple[str, ...]
    """Why a law could not be fitted, one line each."""
    searched: dict[str, tuple[float, float]] = field(default_factory=dict)
    """The range [min, max] of each hyperparameter over all the variant's trials (complete, pruned and
    diverged): where it was searched. A recommendation outside it is an extrapolation beyond every trial."""
    method: str = "auto"
    """The method asked for: ``"auto"`` or one of `METHODS`' others (module docstring)."""
    laws_method: str = "surface"
    """The method the laws were fitted by: `method`, or what ``"auto"`` chose for these cells."""
    noise: float | None = None
    """The relative loss noise σ behind the near-best bands (None for ``"surface"``)."""
    steepness: dict[str, float] = field(default_factory=dict)
    """κ_above / κ_below of ``"lr"`` and ``"batch_size"``: how much steeper the cells' loss rises above
    the optimum than below it (`asymmetry`; 1 where the cells cannot tell)."""

    @property
    def params_measured(self) -> np.ndarray:
        """Distinct model sizes N measured, ascending."""
        return np.unique([o.params for o in self.optima])


@dataclass(frozen=True, eq=False)
class ScalingFit:
    """Fits of every variant in a trial table."""

    variants: dict[str, VariantFit]
    level: float


def fit_scaling(
    trials: pd.DataFrame,
    *,
    method: str = "auto",
    tolerance: float = DEFAULT_TOLERANCE,
    noise: float | None = None,
    n_bootstrap: int = 200,
    window: float = 0.01,
    level: float = 0.9,
    seed: int = 0,
    loss_law: bool = True,
    shrink: bool = True,
) -> ScalingFit:
    """Fit optima and laws for every variant of a normalised trial table (`trials.normalize_trials`).

    Args:
        trials: the trial table.
        method: ``"auto"``, ``"near_best"``, ``"surface"``, ``"joint"`` or ``"blend"`` (module docstring).
        tolerance: a loss within this relative distance of its cell's best is as good as the best.
        noise: relative noise σ of one loss; None estimates it per variant from the trials
            (`noise.estimate_noise`), taking `tolerance` when no cell has the trials to tell.
        n_bootstrap: bootstrap replicates of the loss law (and of every cell, for ``"surface"``).
        window: cells' quadratic surfaces are fitted to trials within this relative distance of the best.
        level: confidence level of the intervals.
        seed: seed of every random draw.
        loss_law: False skips the loss law (`VariantFit.loss_law` None), for a caller that reads only
            the hyperparameter laws (`hpo.search.scale_aware`).
        shrink: shrink a law whose exponents are all unresolved towards a constant
            (`power_law.shrink_exponents`), for the recommendation, a point bet whose expected squared
            error the shrinkage lowers; False keeps the laws as fitted, for a search that centres a
            region on them (the law's interval is the region's width, and the search measures where
            the optimum moved).

    Raises:
        ValueError: an unknown method, no complete trial at all, or a variant with complete trials at
            one model size only.
    """
    if method not in METHODS:
        raise ValueError(f"fit_scaling: method must be one of {METHODS}, got {method!r}")
    cells_by_variant: dict[str, list[pd.DataFrame]] = {}
    for variant, _, _, rows in iter_cells(trials):
        if (rows["status"] == COMPLETE).any():
            cells_by_variant.setdefault(variant, []).append(rows)
    if not cells_by_variant:
        raise ValueError("trials: no complete trial in any cell; status must be 'complete' for some rows")
    ranges = trials.groupby("variant")[list(HYPERPARAMETERS)].agg(["min", "max"])
    searched = {str(variant): _searched(row) for variant, row in ranges.iterrows()}
    options = _Options(method, tolerance, n_bootstrap, window, level, seed, loss_law, shrink)
    variants = {
        variant: _fit_variant(variant, cells, noise, searched[variant], options)
        for variant, cells in cells_by_variant.items()
    }
    return ScalingFit(variants=variants, level=level)


@dataclass(frozen=True)
class _Options:
    method: str
    tolerance: float
    n_bootstrap: int
    window: float
    level: float
    seed: int
    loss_law: bool
    shrink: bool


def _searched(ranges: pd.Series) -> dict[str, tuple[float, float]]:
    """``{hyperparameter: (min, max)}`` from one variant's row of the trials' min/max aggregate."""
    return {name: (float(ranges[(name, "min")]), float(ranges[(name, "max")])) for name in HYPERPARAMETERS}


def _fit_variant(
    variant: str,
    cells: list[pd.DataFrame],
    noise: float | None,
    searched: dict[str, tuple[float, float]],
    options: _Options,
) -> VariantFit:
    if len({float(rows["params"].iloc[0]) for rows in cells}) < 2:
        raise ValueError(
            f"trials: variant '{variant}' has complete trials at one model size only; "
            "measure at least two sizes (params) to fit how optima scale"
        )
    method = options.method
    if method != "surface" and noise is None:
        noise = pooled_noise(cells)
    if method == "auto":
        method = _auto_method(cells, noise, options.tolerance)
    if method != "surface" and noise is None:
        noise = options.tolerance
    notes: list[str] = []
    optima = _optima(cells, "surface" if method == "surface" else "near_best", noise, options, method)
    loss_optima = optima
    if method == "near_best" and options.n_bootstrap > 0:
        loss_optima = _optima(cells, "surface", None, options, "surface")
        optima = tuple(replace(o, loss=s.loss) for o, s in zip(optima, loss_optima, strict=True))
    params = np.array([o.params for o in optima])
    uses_tokens = varies_tokens_independently(params, np.array([o.tokens for o in optima]))
    laws = _hyperparameter_laws(optima, uses_tokens, options, notes, blend=method == "blend")
    if method == "joint":
        laws = _joint_laws(cells, optima, laws, uses_tokens, noise or options.tolerance, options, notes)
    held = {
        name: _held_value(optima, column, name, searched)
        for column, name in enumerate(HYPERPARAMETERS)
        if name not in laws
    }
    return VariantFit(
        variant=variant,
        optima=optima,
        laws=laws,
        fixed={name: value for name, (value, _) in held.items()},
        held_because={name: why for name, (_, why) in held.items()},
        stability_edge=_stability_edge_law(optima, uses_tokens, options.level, options.seed),
        loss_law=_loss_law(loss_optima, uses_tokens, options, notes) if options.loss_law else None,
        uses_tokens=uses_tokens,
        notes=tuple(notes),
        searched=searched,
        method=options.method,
        laws_method=method,
        noise=None if method == "surface" else noise,
        steepness={name: _steepness(cells, name) for name in _CONTINUOUS},
    )


def _steepness(cells: list[pd.DataFrame], name: str) -> float:
    """The variant's κ_above / κ_below of `name` over its cells' complete trials (`asymmetry`)."""
    complete = [rows[rows["status"] == COMPLETE] for rows in cells]
    return pooled_steepness_ratio(
        cell_steepness_ratio(rows[name].to_numpy(dtype=float), rows["loss"].to_numpy(dtype=float))
        for rows in complete
    )


def _optima(
    cells: list[pd.DataFrame], locator: str, noise: float | None, options: _Options, method: str
) -> tuple[Optimum, ...]:
    """Every cell's optimum located by `locator` (`optimum.find_optimum`), bootstrapped for `method`
    ``"surface"`` only."""
    return tuple(
        find_optimum(
            rows,
            method=locator,
            tolerance=options.tolerance,
            noise=noise,
            window=options.window,
            n_bootstrap=options.n_bootstrap if method == "surface" else 0,
            level=options.level,
            seed=options.seed + index,
        )
        for index, rows in enumerate(cells)
    )


def _auto_method(cells: list[pd.DataFrame], noise: float | None, tolerance: float) -> str:
    """What ``"auto"`` takes: ``"blend"`` when every cell was searched on a grid (`near_best.is_grid`);
    otherwise ``"near_best"`` when one loss's noise σ, read from the cells that have the trials for a
    polynomial in every hyperparameter they searched (`pooled_noise`; None where none has), is above
    `NOISY` × the tolerance, else ``"surface"``."""
    if all(is_grid(rows) for rows in cells):
        return "blend"
    return "near_best" if noise is not None and noise > NOISY * tolerance else "surface"


def _hyperparameter_laws(
    optima: tuple[Optimum, ...],
    uses_tokens: bool,
    options: _Options,
    notes: list[str],
    *,
    blend: bool = False,
) -> dict[str, PowerLaw]:
    """The law of every hyperparameter that has one (`_hyperparameter_law`)."""
    laws = {}
    for column, name in enumerate(HYPERPARAMETERS):
        law = _hyperparameter_law(optima, column, name, uses_tokens, options, notes,
                                  blend=blend and name in _CONTINUOUS)
        if law is not None:
            laws[name] = law
    return laws


def _joint_laws(
    cells: list[pd.DataFrame],
    optima: tuple[Optimum, ...],
    laws: dict[str, PowerLaw],
    uses_tokens: bool,
    noise: float,
    options: _Options,
    notes: list[str],
) -> dict[str, PowerLaw]:
    """The laws (of the hyperparameters the near-best centres resolve) refitted by one joint surface
    over the cells that searched all of them; the near-best laws where no such cells are enough."""
    names = tuple(laws)
    usable = [k for k, o in enumerate(optima) if all(o.locates(n) for n in names)]
    if not names or len({optima[k].params for k in usable}) < 2:
        return laws
    complete = [cells[k][cells[k]["status"] == COMPLETE] for k in usable]
    params = np.array([optima[k].params for k in usable])
    tokens = np.array([optima[k].tokens for k in usable]) if uses_tokens else None
    try:
        joint = fit_joint_laws(
            complete,
            [optima[k] for k in usable],
            names,
            uses_tokens=uses_tokens,
            noise=noise,
            window=options.window,
            level=options.level,
            seed=options.seed,
        )
        if not options.shrink:
            return joint
        return {name: _shrunk(law, params, tokens, notes) for name, law in joint.items()}
    except (ValueError, np.linalg.LinAlgError) as error:
        notes.append(f"joint surface not fitted ({error}); the near-best laws are used")
        return laws


def _hyperparameter_law(
    optima: tuple[Optimum, ...],
    column: int,
    name: str,
    uses_tokens: bool,
    options: _Options,
    notes: list[str],
    *,
    blend: bool = False,
) -> PowerLaw | None:
    """The law of `name` through the cells that located it, blended with the law through their surface
    minima when `blend` (`power_law.blend_laws`), shrunk when `options` say so (`_shrunk`)."""
    cells = [o for o in optima if o.locates(name)]
    if len({o.params for o in cells}) < 2 or _held_at_zero(optima, name):
        return None
    params = np.array([o.params for o in cells])
    tokens = np.array([o.tokens for o in cells]) if uses_tokens else None
    replicates = np.column_stack([o.replicates[:, column] for o in cells])
    try:
        law = fit_power_law(
            params,
            np.array([o.value(name).value for o in cells]),
            tokens=tokens,
            replicates=replicates if replicates.shape[0] > 1 else None,
            center_variances=np.array([o.center_error.get(name, 0.0) ** 2 for o in cells]),
            name=name,
            level=options.level,
            seed=options.seed,
        )
        if blend:
            minima = np.array([o.surface_minimum[name] for o in cells])
            law = blend_laws(law, fit_power_law(params, minima, tokens=tokens, name=name, seed=options.seed))
    except ValueError as error:
        notes.append(str(error))
        return None
    return _shrunk(law, params, tokens, notes) if options.shrink else law


def _shrunk(law: PowerLaw, params: np.ndarray, tokens: np.ndarray | None, notes: list[str]) -> PowerLaw:
    """`law`, or, when none of its exponents is resolved from 0 (every interval contains 0), `law` with its
    exponents shrunk towards 0 (`power_law.shrink_exponents`) and a note saying so; no note where the
    shrink moves nothing (every cell at one value: an exponent of 0 ± 1e-16)."""
    exponents = [law.exponent("b")] + ([law.exponent("c")] if law.c is not None else [])
    if not all(e.low <= 0 <= e.high for e in exponents):
        return law
    shrunk = shrink_exponents(law, params, tokens)
    after = [shrunk.exponent("b")] + ([shrunk.exponent("c")] if shrunk.c is not None else [])
    if all(abs(e.value - a.value) < _UNMOVED_EXPONENT for e, a in zip(exponents, after, strict=True)):
        return law
    shown = ", ".join(f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}] to {a.value:.3g}"
                      for e, a in zip(exponents, after, strict=True))
    notes.append(f"{law.name}: no exponent resolved from 0; shrunk towards a constant ({shown})")
    return shrunk


def _held_at_zero(optima: tuple[Optimum, ...], name: str) -> bool:
    """Whether most of the cells that searched `name` (more than half) put its optimum at exactly 0
    (weight decay's "none"): then 0 is held, and the few cells that located a positive value neither
    make a law nor set the held value."""
    at_zero = [o.value(name).value == 0 for o in optima if name in o.searched]
    return 2 * sum(at_zero) > len(at_zero)


def _held_value(
    optima: tuple[Optimum, ...], column: int, name: str, searched: dict[str, tuple[float, float]]
) -> tuple[float, str]:
    """The value of a hyperparameter without a law, and why it has none (`VariantFit.held_because`): 0
    where most cells that searched it found 0 (`_held_at_zero`); over the cells that located it (two or
    more, all at one size), their optima weighted by how well each is located (`fit_constant`, the law's
    own weighting); the optimum of the one cell that located it (the others ran it at a value a search
    chose for them, which measures nothing); else the value most cells ran at their optimum
    (`_most_chosen`), which is the one value every trial ran where it was not searched."""
    if _held_at_zero(optima, name):
        return 0.0, "0 in most cells"
    cells = [o for o in optima if o.locates(name)]
    if len(cells) == 1:
        return cells[0].value(name).value, "located in one cell"
    if not cells:
        low, high = searched.get(name, (math.nan, math.nan))
        return _most_chosen(optima, name), NOT_SEARCHED if low == high else "no cell located it"
    replicates = np.column_stack([o.replicates[:, column] for o in cells])
    value = fit_constant(
        np.array([o.value(name).value for o in cells]),
        replicates if replicates.shape[0] > 1 else None,
    )
    return value, "located at one size"


def _most_chosen(optima: tuple[Optimum, ...], name: str) -> float:
    """The value of `name` most cells ran at their optimum, a tie going to the largest cell's (the one
    nearest the target): a hyperparameter no cell located (held fixed, or tried at too few values, as a
    grid's weight decay {0, 0.01, 0.1}) is held at a value the cells chose. Their median was not one: 0.005
    from four grid cells split between 0 and 0.01."""
    counts = Counter(o.value(name).value for o in optima)
    most = max(counts.values())
    nearest_target_first = sorted(optima, key=lambda o: (o.params, o.tokens), reverse=True)
    return next(value for o in nearest_target_first if counts[value := o.value(name).value] == most)


def _stability_edge_law(
    optima: tuple[Optimum, ...], uses_tokens: bool, level: float, seed: int
) -> PowerLaw | None:
    cells = [o for o in optima if o.stability_edge_lr is not None]
    if len({o.params for o in cells}) < 2:
        return None
    tokens = np.array([o.tokens for o in cells]) if uses_tokens else None
    try:
        return fit_power_law(
            np.array([o.params for o in cells]),
            np.array([o.stability_edge_lr for o in cells]),
            tokens=tokens,
            name="stability edge lr",
            level=level,
            seed=seed,
        )
    except ValueError:
        return None


def _loss_law(
    optima: tuple[Optimum, ...], uses_tokens: bool, options: _Options, notes: list[str]
) -> LossLaw | None:
    """L(N[, D]) through the cells' tuned losses: refitted on their bootstrap replicates (``"surface"``)
    or on cells resampled with replacement."""
    replicates = np.column_stack([o.replicates[:, 3] for o in optima])
    delta = max(HUBER_DELTA, _loss_noise(optima))
    try:
        return fit_loss_law(
            np.array([o.params for o in optima]),
            np.array([o.loss.value for o in optima]),
            tokens=np.array([o.tokens for o in optima]) if uses_tokens else None,
            replicates=replicates if replicates.shape[0] > 1 else None,
            n_bootstrap=options.n_bootstrap,
            huber_delta=delta,
            level=options.level,
            seed=options.seed,
        )
    except ValueError as error:
        notes.append(str(error))
        logger.info("no loss law: %s", error)
        return None


def _loss_noise(optima: tuple[Optimum, ...]) -> float:
    """The typical relative noise of the cells' tuned losses: the median over cells of the robust spread
    of their bootstrap losses (``"surface"``; a resample's quadratic extrapolated to a loss at or below 0
    says nothing of the noise and is left out); 0 without replicates."""
    positive = [o.replicates[:, 3][o.replicates[:, 3] > 0] for o in optima]
    spreads = [robust_std(np.log(losses)) for losses in positive if len(losses) > 1]
    return float(np.median(spreads)) if spreads else 0.0
