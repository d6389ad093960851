"""Trial tables generated from known laws, to check that the fits recover them.

The loss of a trial at model size N, token budget D, learning rate lr and
batch size B is

    L = L*(N, D) · (1 + κ_lr·(ln lr - ln lr*)² + κ_B·(ln B - ln B*)²) · (1 + σ·ε),

with ``L*(N, D) = E + A·N^-α + B_D·D^-β``, ``lr*(N, D) = a_lr·N^b_lr·D^c_lr``,
``B*(N, D) = a_B·N^b_B·D^c_B`` and ε standard normal. Trials with
``lr > divergence_ratio · lr*`` diverge (loss NaN). A share of trials is
pruned: stopped at a quarter of the budget, with a higher loss that must not be
mistaken for a full-budget one.

Each scale searches lr log-uniformly over ``[lr*/w, lr*·w]`` and batch sizes
over the powers of two in ``[B*/w, B*·w]``, with the range's centre shifted
off the truth by up to a factor ``e^0.5`` (an imperfect guess).

`make_grid_sweep` is the other kind of sweep, the one published scaling
studies run: every cell the same grid of learning rates × batch sizes, a
landscape steeper above the best learning rate than below it (by
`high_lr_steepness`), every setting run once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from hpo.vocab import COMPLETE, DIVERGED, PRUNED


@dataclass(frozen=True)
class SyntheticVariant:
    """Known laws of one variant. Units: N parameters, D tokens, batch size in sequences per step."""

    name: str = "default"
    lr_a: float = 30.0
    lr_b: float = -0.5
    lr_c: float = 0.0
    batch_a: float = 0.5
    batch_b: float = 0.3
    batch_c: float = 0.0
    E: float = 1.8
    A: float = 400.0
    alpha: float = 0.34
    B: float = 0.0
    beta: float = 0.3
    lr_curvature: float = 0.01
    batch_curvature: float = 0.004
    divergence_ratio: float = 6.0

    def optimal_lr(self, params: float, tokens: float) -> float:
        """lr*(N, D) = a·N^b·D^c."""
        return self.lr_a * params**self.lr_b * tokens**self.lr_c

    def optimal_batch_size(self, params: float, tokens: float) -> float:
        """B*(N, D) = a·N^b·D^c, sequences per step."""
        return self.batch_a * params**self.batch_b * tokens**self.batch_c

    def optimal_loss(self, params: float, tokens: float) -> float:
        """L*(N, D) = E + A·N^-α + B·D^-β: the loss at the optimal setting."""
        return self.E + self.A * params**-self.alpha + self.B * tokens**-self.beta


def crossing_variants(
    crossing_params: float, *, baseline: SyntheticVariant | None = None, tokens_per_param: float = 20.0
) -> tuple[SyntheticVariant, SyntheticVariant]:
    """A baseline and a ``"challenger"`` whose tuned losses intersect at N = `crossing_params`.

    The challenger scales worse (α = 0.28 against the baseline's 0.34) but
    starts lower: its irreducible loss E sits 40% of the way from the
    baseline's E to the baseline's loss at the crossing, and A is solved so the
    two curves meet there (along D = `tokens_per_param`·N). It leads below
    the crossing and trails above it. Its best lr is a third lower.
    """
    baseline = baseline or SyntheticVariant(name="baseline")
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
    variants: Sequence[SyntheticVariant],
    params: Sequence[float],
    *,
    tokens: Sequence[Sequence[float]] | None = None,
    tokens_per_param: float = 20.0,
    trials_per_cell: int = 40,
    noise: float = 0.002,
    search_width: float = 8.0,
    pruned_share: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """A trial table (the contract's columns) for every variant at every model size in `params`.

    Args:
        variants: the known laws, one per variant.
        params: model sizes N.
        tokens: token budgets D per model size (several per size to vary D
            independently); by default one budget, ``tokens_per_param·N``.
        tokens_per_param: D/N when `tokens` is None.
        trials_per_cell: trials per (variant, N, D).
        noise: relative standard deviation σ of the loss noise.
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
                rows += _cell_rows(variant, n, d, trials_per_cell, noise, search_width, pruned_share, rng)
    table = pd.DataFrame(rows)
    table["trial_number"] = np.arange(len(table))
    table["run_id"] = [f"synthetic-{i}" for i in range(len(table))]
    return table


def _cell_rows(
    variant: SyntheticVariant,
    params: float,
    tokens: float,
    n_trials: int,
    noise: float,
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
    shape = (
        1.0
        + variant.lr_curvature * np.log(lrs / best_lr) ** 2
        + variant.batch_curvature * np.log(batches / best_batch) ** 2
    )
    losses = variant.optimal_loss(params, tokens) * shape * (1.0 + noise * rng.standard_normal(n_trials))
    pruned = rng.random(n_trials) < pruned_share
    tokens_seen = np.where(pruned, tokens / 4, tokens)
    losses = np.where(pruned, losses + variant.B * (tokens / 4) ** -variant.beta + 0.1, losses)
    diverged = lrs > variant.divergence_ratio * best_lr
    losses = np.where(diverged, np.nan, losses)
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
    variant: SyntheticVariant,
    cells: Sequence[tuple[float, float]],
    *,
    lrs: Sequence[float],
    batch_sizes: Sequence[float],
    noise: float = 0.001,
    high_lr_steepness: float = 3.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A trial table with every (lr, batch size) of a grid in every cell ``(N, D)`` of `cells`.

    The loss is the module's, except that the lr penalty above lr* is
    `high_lr_steepness` times the one below: ``κ_lr·s·ln²(lr/lr*)``, s = 1
    below lr*, `high_lr_steepness` above. Trials above the divergence edge
    diverge (loss NaN).
    """
    rng = np.random.default_rng(seed)
    lr_grid, batch_grid = (
        np.ravel(g) for g in np.meshgrid(np.asarray(lrs, float), np.asarray(batch_sizes, float))
    )
    frames = []
    for params, tokens in cells:
        lr_offset = np.log(lr_grid / variant.optimal_lr(params, tokens))
        steepness = np.where(lr_offset > 0, high_lr_steepness, 1.0)
        shape = (
            1.0
            + variant.lr_curvature * steepness * lr_offset**2
            + variant.batch_curvature * np.log(batch_grid / variant.optimal_batch_size(params, tokens)) ** 2
        )
        losses = (
            variant.optimal_loss(params, tokens) * shape * (1.0 + noise * rng.standard_normal(shape.size))
        )
        diverged = lr_offset > np.log(variant.divergence_ratio)
        frames.append(
            pd.DataFrame(
                {
                    "variant": variant.name,
                    "params": params,
                    "tokens": tokens,
                    "lr": lr_grid,
                    "batch_size": batch_grid,
                    "loss": np.where(diverged, np.nan, losses),
                    "status": np.where(diverged, DIVERGED, COMPLETE),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
