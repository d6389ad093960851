"""Trial tables drawn from known landscapes (`landscape.Landscape`), to check that the fits recover them.

Each trial's loss is its landscape's full-budget loss at its setting, times
``1 + σ·ε`` (σ the landscape's noise); a trial above the landscape's
divergence edge diverges (loss NaN, status ``diverged``).

`make_synthetic_trials` is the kind of sweep an adaptive study leaves: each
scale searches lr log-uniformly over ``[lr*/w, lr*·w]`` and batch sizes over
the powers of two in ``[B*/w, B*·w]``, with the range's centre shifted off the
truth by up to a factor ``e^0.5`` (an imperfect guess); a share of trials is
pruned: stopped at a quarter of the budget, with a higher loss that must not
be mistaken for a full-budget one.

`make_grid_sweep` is the other kind, the one published scaling studies run:
every cell the same grid of learning rates × batch sizes, every setting run
once (give the landscape a `Landscape.high_lr_steepness` above 1 for a loss
steeper above the best learning rate than below it, as real ones are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from hpo.evaluation.landscape import Landscape
from hpo.vocab import COMPLETE, DIVERGED, PRUNED


def crossing_variants(
    crossing_params: float, *, baseline: Landscape | None = None, tokens_per_param: float = 20.0
) -> tuple[Landscape, Landscape]:
    """A baseline and a ``"challenger"`` whose tuned losses intersect at N = `crossing_params`.

    The challenger scales worse (α = 0.28 against the baseline's 0.34) but
    starts lower: its irreducible loss E sits 40% of the way from the
    baseline's E to the baseline's loss at the crossing, and A is solved so the
    two curves meet there (along D = `tokens_per_param`·N). It leads below
    the crossing and trails above it. Its best lr is a third lower.
    """
    baseline = baseline or Landscape(name="baseline")
    tokens = tokens_per_param * crossing_params
    loss_at_crossing = baseline.optimal_loss(crossing_params, tokens)
    alpha = 0.28
    irreducible = baseline.E + 0.4 * (loss_at_crossing - baseline.E)
    data_term = baseline.B * tokens**-baseline.beta
    prefactor = (loss_at_crossing - data_term - irreducible) * crossing_params**alpha
    challenger = replace(
        baseline, name="challenger", E=irreducible, A=prefactor, alpha=alpha, lr_a=baseline.lr_a * 2 / 3
    )
    return baseline, challenger


def make_synthetic_trials(
    variants: Sequence[Landscape],
    params: Sequence[float],
    *,
    tokens: Sequence[Sequence[float]] | None = None,
    tokens_per_param: float = 20.0,
    trials_per_cell: int = 40,
    search_width: float = 8.0,
    pruned_share: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """A trial table (the contract's columns) for every variant at every model size in `params`.

    Args:
        variants: the known landscapes, one per variant (`Landscape.name`).
        params: model sizes N.
        tokens: token budgets D per model size (several per size to vary D
            independently); by default one budget, ``tokens_per_param·N``.
        tokens_per_param: D/N when `tokens` is None.
        trials_per_cell: trials per (variant, N, D).
        search_width: factor w of the searched range on each side of the guess.
        pruned_share: share of trials stopped at a quarter of their budget.
        seed: seed of everything random.
    """
    rng = np.random.default_rng(seed)
    budgets = tokens if tokens is not None else [[tokens_per_param * n] for n in params]
    rows = []
    for variant in variants:
        for n, cell_budgets in zip(params, budgets, strict=True):
            for d in cell_budgets:
                rows += _cell_rows(variant, n, d, trials_per_cell, search_width, pruned_share, rng)
    table = pd.DataFrame(rows)
    table["trial_number"] = np.arange(len(table))
    table["run_id"] = [f"synthetic-{i}" for i in range(len(table))]
    return table


def _cell_rows(
    variant: Landscape,
    params: float,
    tokens: float,
    n_trials: int,
    width: float,
    pruned_share: float,
    rng: np.random.Generator,
) -> list[dict[str, object]]:
    best_lr = variant.optimal_lr(params, tokens)
    best_batch = variant.optimal_batch_size(params, tokens)
    lr_guess = best_lr * np.exp(rng.uniform(-0.5, 0.5))
    batch_guess = best_batch * np.exp(rng.uniform(-0.5, 0.5))
    lrs = np.exp(rng.uniform(np.log(lr_guess / width), np.log(lr_guess * width), n_trials))
    powers = np.arange(np.ceil(np.log2(batch_guess / width)), np.floor(np.log2(batch_guess * width)) + 1)
    batches = np.maximum(1.0, 2.0 ** rng.choice(powers, n_trials))
    losses = _losses(variant, params, tokens, lrs, batches, rng)
    pruned = rng.random(n_trials) < pruned_share
    tokens_seen = np.where(pruned, tokens / 4, tokens)
    losses = np.where(pruned, losses + variant.B * (tokens / 4) ** -variant.beta + 0.1, losses)
    diverged = np.isnan(losses)
    return [
        {
            "variant": variant.name,
            "params": params,
            "tokens": tokens,
            "tokens_seen": seen,
            "lr": lr,
            "batch_size": batch,
            "weight_decay": 0.0,
            "loss": loss,
            "status": DIVERGED if is_diverged else PRUNED if is_pruned else COMPLETE,
        }
        for lr, batch, loss, seen, is_diverged, is_pruned in zip(
            lrs, batches, losses, tokens_seen, diverged, pruned, strict=True
        )
    ]


def make_grid_sweep(
    variant: Landscape,
    cells: Sequence[tuple[float, float]],
    *,
    lrs: Sequence[float],
    batch_sizes: Sequence[float],
    seed: int = 0,
) -> pd.DataFrame:
    """A trial table with every (lr, batch size) of a grid in every cell ``(N, D)`` of `cells`, each
    run once on the landscape `variant` (weight decay 0); diverged trials have loss NaN."""
    rng = np.random.default_rng(seed)
    lr_grid, batch_grid = (
        np.ravel(g) for g in np.meshgrid(np.asarray(lrs, float), np.asarray(batch_sizes, float))
    )
    frames = []
    for params, tokens in cells:
        losses = _losses(variant, params, tokens, lr_grid, batch_grid, rng)
        frames.append(
            pd.DataFrame(
                {
                    "variant": variant.name,
                    "params": params,
                    "tokens": tokens,
                    "lr": lr_grid,
                    "batch_size": batch_grid,
                    "loss": losses,
                    "status": np.where(np.isnan(losses), DIVERGED, COMPLETE),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _losses(
    variant: Landscape,
    params: float,
    tokens: float,
    lrs: np.ndarray,
    batches: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One noisy full-budget loss per (lr, batch size) at weight decay 0 (`Landscape.true_loss` times
    ``1 + σ·ε``, one draw per trial); NaN where the run diverges."""
    clean = np.array(
        [
            variant.true_loss(params, tokens, {"lr": lr, "batch_size": batch, "weight_decay": 0.0})
            for lr, batch in zip(lrs, batches, strict=True)
        ]
    )
    noisy = clean * (1.0 + variant.noise * rng.standard_normal(clean.size))
    return np.where(np.isfinite(clean), noisy, np.nan)
