from __future__ import annotations

import pytest
import torch

from models import MLPFamily, TrainConfig, train


@pytest.fixture(scope="module")
def family() -> MLPFamily:
    return MLPFamily()


def test_parameter_counts_are_exact(family: MLPFamily) -> None:
    for scale in family.scales:
        model = family.build(scale, seed=0)
        count = family.param_count(scale)
        assert count.total == sum(p.numel() for p in model.parameters())
        assert count.non_embedding == count.total


def test_scales_are_ordered_by_size(family: MLPFamily) -> None:
    sizes = [family.param_count(s).total for s in family.scales]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_same_seed_builds_the_same_student(family: MLPFamily) -> None:
    first, again, other = (family.build("w16", seed) for seed in (1, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters(), strict=True))
    assert not torch.equal(next(first.parameters()), next(other.parameters()))


def test_validation_set_is_fixed_across_seeds_and_batch_sizes(family: MLPFamily) -> None:
    small = torch.cat([x for x, _ in family.batches("val", 100, seed=0)])
    large = torch.cat([x for x, _ in family.batches("val", 1000, seed=7)])
    assert torch.equal(small, large) and len(small) == family.val_examples


def test_train_stream_is_reproducible_per_seed(family: MLPFamily) -> None:
    first = next(family.batches("train", 8, seed=5))
    again = next(family.batches("train", 8, seed=5))
    other = next(family.batches("train", 8, seed=6))
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


def test_loss_falls_with_width_at_a_fixed_budget(family: MLPFamily) -> None:
    config = TrainConfig(lr=3e-3, batch_size=64, tokens=30_000)
    losses = [train(family, scale, config).eval_loss for scale in ("w8", "w32", "w128")]
    assert losses[0] > losses[1] > losses[2]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"widths": ()}, "widths"), ({"widths": (32, 8)}, "widths"), ({"depth": 0}, "depth"),
     ({"noise": -1.0}, "noise")],
)
def test_bad_options_raise_an_error_naming_the_option(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}="):
        MLPFamily(**options)  # type: ignore[arg-type]


def test_bad_batch_arguments_raise_an_error_naming_the_argument(family: MLPFamily) -> None:
    with pytest.raises(ValueError, match="^batch_size=0"):
        next(family.batches("train", 0, seed=0))
    with pytest.raises(ValueError, match="^split='test'"):
        family.batches("test", 8, seed=0)  # type: ignore[arg-type]
