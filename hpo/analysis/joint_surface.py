"""One loss surface over the trials of every cell at once, its centre a power law in N and D.

For the near-best trials of every cell c (within `window` of its best loss,
topped up to three per coefficient), x = ln h over the hyperparameters scaled
(`names`), and

    L_i / L_best,c = m_c + (x_i − μ(N_c, D_c))ᵀ A_c (x_i − μ(N_c, D_c)),
    μ_k(N, D) = ln a_k + b_k·ln N [+ c_k·ln D],

so every hyperparameter's optimum h*_k = a_k·N^b_k·D^c_k is one power law
shared by all cells, while each cell keeps its own floor m_c and its own
symmetric curvature A_c (how flat it is). For given law coefficients the
cells' m_c and A_c solve linear least squares; the coefficients are found by
minimising the cells' residuals over them alone (variable projection), with a
soft-L1 loss at the scale of the run-to-run noise so that a stray trial does
not pull the law. The search starts from the equal-weight fit of the cells'
near-best centres (`power_law`).

The laws' intervals are those of a new cell around the joint law: the
scatter of the cells' near-best centres about it, and the distance of the
target from the cells (`power_law.power_law_about`). Divergence is not
modelled here: the stability-edge law caps every method's learning rate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from hpo.analysis.optimum import Optimum
from hpo.analysis.power_law import PowerLaw, power_law_about
from hpo.analysis.surface import TRIALS_PER_COEFFICIENT, n_coefficients, polynomial_features
from hpo.vocab import HYPERPARAMETERS

logger = logging.getLogger(__name__)


def fit_joint_laws(
    cells: Sequence[pd.DataFrame],
    optima: Sequence[Optimum],
    names: tuple[str, ...],
    *,
    uses_tokens: bool,
    noise: float,
    window: float = 0.01,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, PowerLaw]:
    """Power laws of the hyperparameters `names` from one surface over the complete trials of `cells`.

    Args:
        cells: each cell's complete trials (rows of a normalised trial table), in the order of `optima`.
        optima: each cell's near-best optimum (`find_optimum`): the start, and the scatter of the intervals.
        names: hyperparameters searched in every cell and positive there.
        uses_tokens: laws in (N, D) rather than N.
        noise: relative loss noise σ, the scale of the soft-L1 loss.
        window: trials within this relative distance of a cell's best loss are fitted.
        level: confidence level of the intervals.
        seed: seed of the intervals' draws.
    """
    columns = [HYPERPARAMETERS.index(name) for name in names]
    design = _design(optima, uses_tokens)
    centres = np.log([[o.value(name).value for name in names] for o in optima])
    start = np.linalg.lstsq(design, centres, rcond=None)[0]
    near = [_near_best_trials(rows, columns, window) for rows in cells]

    def residuals(flat: np.ndarray) -> np.ndarray:
        centre = design @ flat.reshape(start.shape)
        return np.concatenate([_cell_residuals(x - mu, y) for (x, y), mu in zip(near, centre, strict=True)])

    fit = least_squares(residuals, start.ravel(), loss="soft_l1", f_scale=noise, x_scale=1.0)
    coefficients = fit.x.reshape(start.shape)
    logger.debug("joint surface: %d trials, cost %.3g, %d evaluations", fit.fun.size, fit.cost, fit.nfev)
    params = np.array([o.params for o in optima])
    tokens = np.array([o.tokens for o in optima]) if uses_tokens else None
    return {
        name: power_law_about(
            coefficients[:, k],
            params,
            np.exp(centres[:, k]),
            tokens=tokens,
            center_variances=np.array([o.center_error.get(name, 0.0) ** 2 for o in optima]),
            name=name,
            level=level,
            seed=seed,
        )
        for k, name in enumerate(names)
    }


def _design(optima: Sequence[Optimum], uses_tokens: bool) -> np.ndarray:
    columns = [np.ones(len(optima)), np.log([o.params for o in optima])]
    if uses_tokens:
        columns.append(np.log([o.tokens for o in optima]))
    return np.column_stack(columns)


def _near_best_trials(rows: pd.DataFrame, columns: list[int], window: float) -> tuple[np.ndarray, np.ndarray]:
    """ln of the scaled hyperparameters and loss / best loss of a cell's trials within `window` of its
    best (at least three per coefficient of its own floor and curvature)."""
    settings = rows.loc[:, list(HYPERPARAMETERS)].to_numpy(dtype=float)[:, columns]
    losses = rows["loss"].to_numpy(dtype=float)
    keep = np.all(settings > 0, axis=1)
    settings, losses = settings[keep], losses[keep]
    relative = losses / losses.min()
    needed = TRIALS_PER_COEFFICIENT * (n_coefficients(len(columns)) - len(columns))
    near = relative <= 1.0 + window
    if near.sum() < needed:
        near = np.zeros_like(near)
        near[np.argsort(relative)[:needed]] = True
    return np.log(settings[near]), relative[near]


def _cell_residuals(offsets: np.ndarray, relative_loss: np.ndarray) -> np.ndarray:
    """Residuals of one cell's best floor and curvature, ``m + uᵀAu``, u the offsets from the law's centre."""
    features = polynomial_features(offsets, 2)
    quadratic = np.column_stack([features[:, 0], features[:, 1 + offsets.shape[1] :]])
    coefficients = np.linalg.lstsq(quadratic, relative_loss, rcond=None)[0]
    return quadratic @ coefficients - relative_loss
