from __future__ import annotations

import pytest

from models import MLPFamily, TrainConfig, train


@pytest.fixture(scope="module")
def family() -> MLPFamily:
    return MLPFamily()


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
