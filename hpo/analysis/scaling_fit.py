"""Everything fitted from a trial table: per-cell optima, then laws across cells, per variant.

`fit_scaling` runs the pipeline once; `extrapolate.recommend` then reads any
number of targets off it. Per variant:

* the optimum of every cell (variant, N, D) with its bootstrap (`optimum`);
* h*(N) = a·N^b, or h*(N, D) = a·N^b·D^c when D varies at fixed N, for every
  hyperparameter that was searched (`power_law`); a law fitted to more cells
  than it has coefficients none of whose exponents' intervals excludes 0 is
  dropped, and the hyperparameter held constant (extrapolating a
  slope lost in the noise multiplies the noise by the distance to the
  target), weighted as a law weighs its cells (`power_law.fit_constant`: an
  echo of a poorly located cell counts less than a well-located optimum); and
  the same law for the
  learning-rate stability edge when trials diverged in two or more cells;
* the loss law L(N), or L(N, D), of the cells' tuned losses (`loss_law`).

All laws of one variant share the same bootstrap replicates over trials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hpo.analysis.loss_law import LossLaw, fit_loss_law
from hpo.analysis.optimum import HYPERPARAMETERS, Optimum, find_optimum
from hpo.analysis.power_law import PowerLaw, fit_constant, fit_power_law
from hpo.analysis.trials import iter_cells, varies_tokens_independently

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class VariantFit:
    """The optima and laws of one variant. Units as in `Optimum`."""

    variant: str
    optima: tuple[Optimum, ...]
    laws: dict[str, PowerLaw]
    """Power law of each scaled hyperparameter (``"lr"``, ``"batch_size"``, ``"weight_decay"``)."""
    fixed: dict[str, float]
    """Hyperparameters not scaled (held fixed, or searched in too few cells): the value to use."""
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
    n_bootstrap: int = 200,
    window: float = 0.01,
    level: float = 0.9,
    seed: int = 0,
    loss_law: bool = True,
) -> ScalingFit:
    """Fit optima and laws for every variant of a normalised trial table (`trials.normalize_trials`).

    `loss_law` False skips the loss law (`VariantFit.loss_law` None), by far the
    slowest fit (a multi-start least-squares fit per bootstrap replicate), for a
    caller that reads only the hyperparameter laws (`hpo.search.scale_aware`).

    Raises:
        ValueError: no complete trial at all, or a variant with complete trials at one model size only.
    """
    optima_by_variant: dict[str, list[Optimum]] = {}
    for index, (variant, _, _, rows) in enumerate(iter_cells(trials)):
        if (rows["status"] == "complete").any():
            optimum = find_optimum(
                rows, window=window, n_bootstrap=n_bootstrap, level=level, seed=seed + index
            )
            optima_by_variant.setdefault(variant, []).append(optimum)
    if not optima_by_variant:
        raise ValueError("trials: no complete trial in any cell; status must be 'complete' for some rows")
    ranges = trials.groupby("variant")[list(HYPERPARAMETERS)].agg(["min", "max"])
    searched = {str(variant): _searched(row) for variant, row in ranges.iterrows()}
    variants = {
        variant: _fit_variant(variant, tuple(optima), level, seed, loss_law, searched[variant])
        for variant, optima in optima_by_variant.items()
    }
    return ScalingFit(variants=variants, level=level)


def _searched(ranges: pd.Series) -> dict[str, tuple[float, float]]:
    """``{hyperparameter: (min, max)}`` from one variant's row of the trials' min/max aggregate."""
    return {name: (float(ranges[(name, "min")]), float(ranges[(name, "max")])) for name in HYPERPARAMETERS}


def _fit_variant(
    variant: str,
    optima: tuple[Optimum, ...],
    level: float,
    seed: int,
    loss_law: bool,
    searched: dict[str, tuple[float, float]],
) -> VariantFit:
    params = np.array([o.params for o in optima])
    tokens = np.array([o.tokens for o in optima])
    if np.unique(params).size < 2:
        raise ValueError(
            f"trials: variant '{variant}' has complete trials at one model size only; "
            "measure at least two sizes (params) to fit how optima scale"
        )
    uses_tokens = varies_tokens_independently(params, tokens)
    notes: list[str] = []
    laws: dict[str, PowerLaw] = {}
    fixed: dict[str, float] = {}
    for column, name in enumerate(HYPERPARAMETERS):
        law = _hyperparameter_law(optima, column, name, uses_tokens, level, seed, notes)
        if law is None:
            fixed[name] = _held_value(optima, column, name)
        else:
            laws[name] = law
    return VariantFit(
        variant=variant,
        optima=optima,
        laws=laws,
        fixed=fixed,
        stability_edge=_stability_edge_law(optima, uses_tokens, level, seed),
        loss_law=_loss_law(optima, uses_tokens, level, seed, notes) if loss_law else None,
        uses_tokens=uses_tokens,
        notes=tuple(notes),
        searched=searched,
    )


def _hyperparameter_law(
    optima: tuple[Optimum, ...],
    column: int,
    name: str,
    uses_tokens: bool,
    level: float,
    seed: int,
    notes: list[str],
) -> PowerLaw | None:
    cells = [o for o in optima if name in o.searched and o.value(name).value > 0]
    if len({o.params for o in cells}) < 2:
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
            name=name,
            level=level,
            seed=seed,
        )
    except ValueError as error:
        notes.append(str(error))
        return None
    exponents = [law.exponent("b")] + ([law.exponent("c")] if law.c is not None else [])
    if len(cells) > len(exponents) + 1 and all(e.low <= 0 <= e.high for e in exponents):
        shown = ", ".join(f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}]" for e in exponents)
        notes.append(f"{name}: no exponent resolved from 0 ({shown}); held at the cells' weighted mean")
        return None
    return law


def _held_value(optima: tuple[Optimum, ...], column: int, name: str) -> float:
    """The value of a hyperparameter without a law: over the cells that searched it (two or more),
    their optima weighted by how well each is located (`fit_constant`, the law's own weighting);
    else (held fixed, or searched in one cell) the median of the cells' values."""
    cells = [o for o in optima if name in o.searched and o.value(name).value > 0]
    if len(cells) < 2:
        return float(np.median([o.value(name).value for o in optima]))
    replicates = np.column_stack([o.replicates[:, column] for o in cells])
    return fit_constant(
        np.array([o.value(name).value for o in cells]),
        replicates if replicates.shape[0] > 1 else None,
    )


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
    optima: tuple[Optimum, ...], uses_tokens: bool, level: float, seed: int, notes: list[str]
) -> LossLaw | None:
    replicates = np.column_stack([o.replicates[:, 3] for o in optima])
    try:
        return fit_loss_law(
            np.array([o.params for o in optima]),
            np.array([o.loss.value for o in optima]),
            tokens=np.array([o.tokens for o in optima]) if uses_tokens else None,
            replicates=replicates if replicates.shape[0] > 1 else None,
            level=level,
            seed=seed,
        )
    except ValueError as error:
        notes.append(str(error))
        logger.info("no loss law: %s", error)
        return None
