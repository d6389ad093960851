"""`lr_width_exponent`: the learning rate a run trains with is lr · (w_ref / w)^e."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from torch import nn

from models import GPTFamily, MLPFamily, ModelFamily, ParamCount, Progress, TrainConfig, train
from models.family import Batch, Split
from models.training import width_lr_factor


@pytest.fixture(scope="module")
def mlp() -> MLPFamily:
    return MLPFamily(widths=(8, 32), val_examples=256)


def config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {"lr": 1e-2, "batch_size": 16, "tokens": 640, "schedule": "constant",
                                   "warmup_fraction": 0.0, "eval_every_tokens": 320}
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def test_gpt_width_is_d_model_and_mlp_width_is_its_hidden_units() -> None:
    gpt = GPTFamily()
    assert [gpt.width(scale) for scale in ("13k", "100k", "336k", "793k")] == [32, 64, 96, 128]
    assert MLPFamily(widths=(8, 64)).width("w64") == 64


def test_factor_is_reference_over_width_to_the_exponent(mlp: MLPFamily) -> None:
    assert width_lr_factor(mlp, "w32", config()) == 1.0
    assert width_lr_factor(mlp, "w32", config(lr_width_exponent=1.0)) == pytest.approx(8 / 32)
    assert width_lr_factor(mlp, "w8", config(lr_width_exponent=1.0)) == 1.0
    assert width_lr_factor(mlp, "w32", config(lr_width_exponent=0.5, lr_width_ref=128)) == pytest.approx(2.0)


def test_a_run_trains_with_the_scaled_lr_at_every_step(mlp: MLPFamily) -> None:
    plain = train(mlp, "w32", config(lr=2.5e-3))
    scaled = train(mlp, "w32", config(lr=1e-2, lr_width_exponent=1.0))  # c = 1e-2 at width 8 → 2.5e-3 at 32
    assert [p.lr for p in scaled.curve] == pytest.approx([2.5e-3, 2.5e-3])
    assert [p.eval_loss for p in scaled.curve] == pytest.approx([p.eval_loss for p in plain.curve])


def test_the_reported_lr_follows_the_schedule_times_the_factor(mlp: MLPFamily) -> None:
    seen: list[Progress] = []
    train(mlp, "w32", config(schedule="cosine", lr_width_exponent=1.0), report=seen.append)
    unscaled: list[Progress] = []
    train(mlp, "w32", config(schedule="cosine"), report=unscaled.append)
    assert [p.lr for p in seen] == pytest.approx([p.lr / 4 for p in unscaled])


class _NoWidth(ModelFamily):
    name = "no_width"
    tokens_per_example = 1
    scales = ("s",)

    def param_count(self, scale: str) -> ParamCount:
        return ParamCount(2, 2)

    def build(self, scale: str, seed: int) -> nn.Module:
        raise AssertionError("not reached")

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        raise AssertionError("not reached")


def test_width_scaling_on_a_family_without_width_is_a_clear_error() -> None:
    assert width_lr_factor(_NoWidth(), "s", config()) == 1.0
    with pytest.raises(ValueError, match="does not define width.*lr_width_exponent"):
        train(_NoWidth(), "s", config(lr_width_exponent=1.0))


@pytest.mark.parametrize(("field", "value"), [("lr_width_exponent", float("nan")), ("lr_width_ref", 0.0),
                                              ("lr_width_ref", -32.0)])
def test_invalid_width_settings_are_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        config(**{field: value})
