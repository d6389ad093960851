"""Loss laws: L(N) = E + A·N^-α, L(N, D) = E + A/N^α + B/D^β, L(C) = E + A·C^-α."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.analysis import fit_compute_loss_law, fit_loss_law


def chinchilla_loss(params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Besiroglu et al.'s refit of Chinchilla: E 1.82, A 482, B 2085, α 0.348, β 0.366."""
    return 1.82 + 482.0 * params**-0.348 + 2085.0 * tokens**-0.366


def test_loss_in_params_is_recovered_from_noiseless_points() -> None:
    params = np.geomspace(1e7, 1e9, 6)
    law = fit_loss_law(params, 1.8 + 400.0 * params**-0.34, n_bootstrap=5)
    assert abs(law.E - 1.8) < 0.018
    assert law.alpha == pytest.approx(0.34, abs=0.01)
    assert law.predict(1e10) == pytest.approx(1.8 + 400.0 * 1e10**-0.34, rel=0.002)


def test_loss_in_params_and_tokens_is_recovered_from_noisy_isoflop_points() -> None:
    rng = np.random.default_rng(0)
    compute = np.repeat(np.geomspace(1e18, 1e21, 7), 8)
    params = compute**0.5 / 10 * np.exp(np.tile(np.linspace(-1.5, 1.5, 8), 7))
    tokens = compute / (6 * params)
    loss = chinchilla_loss(params, tokens) * (1 + 0.002 * rng.standard_normal(params.size))
    law = fit_loss_law(params, loss, tokens=tokens, n_bootstrap=20)
    assert law.alpha == pytest.approx(0.348, abs=0.05)
    assert law.beta == pytest.approx(0.366, abs=0.05)
    assert abs(law.E - 1.82) < 0.1
    held_out = chinchilla_loss(np.array(1e10), np.array(2e11))
    assert law.estimate(1e10, 2e11).covers(float(held_out))


def test_compute_optimal_allocation_minimises_the_loss_at_fixed_compute() -> None:
    params = np.geomspace(1e7, 1e10, 12)
    tokens = params * np.tile([5.0, 20.0, 80.0], 4)
    law = fit_loss_law(params, chinchilla_loss(params, tokens), tokens=tokens, n_bootstrap=5)
    best_params, best_tokens = law.compute_optimal(1e22)
    assert 6 * best_params * best_tokens == pytest.approx(1e22)
    candidates = best_params * np.geomspace(0.5, 2.0, 41)
    losses = law.predict(candidates, 1e22 / (6 * candidates))
    assert candidates[np.argmin(losses)] == pytest.approx(best_params, rel=0.05)


def test_loss_against_compute_is_recovered() -> None:
    compute = np.geomspace(1e17, 1e20, 8)
    law = fit_compute_loss_law(compute, 2.0 + 60.0 * compute**-0.1, n_bootstrap=5)
    assert law.variable == "compute"
    assert law.alpha == pytest.approx(0.1, abs=0.01)


def test_too_few_points_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 4 scales"):
        fit_loss_law(np.array([1e7, 1e8, 1e9]), np.array([3.0, 2.6, 2.3]))
