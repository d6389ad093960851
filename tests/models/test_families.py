"""Every registered model family through one conformance suite: the `models.ModelFamily` contract.

A family's ladder is ordered by size with exact parameter counts, its models
are reproducible from a seed without touching the global RNG, its training
stream is reproducible per seed and its validation set the same for every
seed and batch size, its model maps a batch to a finite scalar loss, and one
short trial trains end to end, reported in tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models import ModelFamily, TrainConfig, family_names, get_family, train
from models.family import Batch

OPTIONS: dict[str, Callable[[Path], dict[str, object]]] = {
    "gpt": lambda folder: {"corpus": str(folder / "corpus.txt"), "seq_len": 32, "val_windows": 4},
    "mlp": lambda folder: {"val_examples": 256},
}
"""Options that make each family small and quick for these tests (a corpus file in `folder` for gpt)."""


def test_every_registered_family_has_options_for_these_tests() -> None:
    assert set(family_names()) <= set(OPTIONS)


@pytest.fixture(params=family_names())
def family(request: pytest.FixtureRequest, tmp_path: Path) -> ModelFamily:
    corpus = np.random.default_rng(0).integers(0, 256, 20_000, np.uint8)  # random bytes: a vocab of 256
    (tmp_path / "corpus.txt").write_bytes(corpus.tobytes())
    return get_family(request.param, **OPTIONS[request.param](tmp_path))


def concat(batches: Iterator[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = zip(*batches, strict=True)
    return torch.cat(inputs), torch.cat(targets)


def test_the_ladder_grows_and_counts_parameters_exactly(family: ModelFamily) -> None:
    counts = [family.param_count(scale) for scale in family.scales]
    assert [c.non_embedding for c in counts] == sorted({c.non_embedding for c in counts})
    model = family.build(family.scales[0], seed=0)
    assert counts[0].total == sum(p.numel() for p in model.parameters())  # tied weights once
    assert 0 < counts[0].non_embedding <= counts[0].total
    assert family.train_flops(family.scales[0], 1_000) == 6.0 * counts[0].non_embedding * 1_000


def test_a_seed_builds_the_same_model_and_leaves_the_global_rng_alone(family: ModelFamily) -> None:
    scale = family.scales[0]
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first, again, other = (family.build(scale, seed) for seed in (3, 3, 4))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters(), strict=True))


def test_training_batches_are_reproducible_per_seed(family: ModelFamily) -> None:
    first, again, other = (next(family.batches("train", 8, seed)) for seed in (5, 5, 6))
    assert len(first[0]) == 8
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


def test_the_validation_set_is_the_same_for_every_seed_and_batch_size(family: ModelFamily) -> None:
    small, large = concat(family.batches("val", 3, seed=0)), concat(family.batches("val", 64, seed=9))
    assert torch.equal(small[0], large[0]) and torch.equal(small[1], large[1])


def test_a_model_maps_a_batch_to_a_finite_scalar_loss(family: ModelFamily) -> None:
    inputs, targets = next(family.batches("train", 4, seed=0))
    loss = family.build(family.scales[0], seed=0)(inputs, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_a_short_trial_trains_end_to_end_in_tokens(family: ModelFamily) -> None:
    tokens = 40 * family.tokens_per_example * 8
    result = train(family, family.scales[0], TrainConfig(lr=1e-3, batch_size=8, tokens=tokens,
                                                         eval_every_tokens=tokens // 4))
    assert result.status == "complete" and result.tokens_seen >= tokens
    assert [p.tokens_seen for p in result.curve] == sorted(p.tokens_seen for p in result.curve)
    assert len(result.curve) >= 4 and all(np.isfinite(p.eval_loss) for p in result.curve)
