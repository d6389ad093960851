from __future__ import annotations

import math

import pytest

from models import MLPFamily, Progress, TrainConfig, get_family, lr_at, train
from models.training import evaluate, make_optimizer


@pytest.fixture(scope="module")
def family() -> MLPFamily:
    return MLPFamily(widths=(8, 32), val_examples=512)


def quick(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {"lr": 3e-3, "batch_size": 32, "tokens": 8_000}
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def test_loss_goes_down_within_a_small_budget(family: MLPFamily) -> None:
    untrained = evaluate(family.build("w32", seed=0), family, batch_size=256, device="cpu")
    result = train(family, "w32", quick(eval_every_tokens=2_000))
    assert result.status == "complete"
    assert result.eval_loss < 0.6 * untrained
    assert result.curve[-1].eval_loss < result.curve[0].eval_loss


def test_same_seed_gives_the_same_losses_and_another_seed_does_not(family: MLPFamily) -> None:
    first = train(family, "w8", quick(seed=3))
    again = train(family, "w8", quick(seed=3))
    other = train(family, "w8", quick(seed=4))
    assert [p.eval_loss for p in first.curve] == [p.eval_loss for p in again.curve]
    assert first.eval_loss != other.eval_loss


def test_absurd_learning_rate_ends_as_diverged_not_an_exception(family: MLPFamily) -> None:
    result = train(family, "w32", quick(lr=1e4, grad_clip=None, tokens=20_000))
    assert result.status == "diverged"
    assert result.tokens_seen < 20_000


def test_budget_and_reports_are_in_tokens(family: MLPFamily) -> None:
    result = train(family, "w8", quick(batch_size=50, tokens=1_000, eval_every_tokens=300))
    assert result.tokens_seen == 1_000
    assert [p.tokens_seen for p in result.curve] == [300, 600, 900, 1_000]


def test_report_callback_can_stop_the_run(family: MLPFamily) -> None:
    seen: list[Progress] = []

    def stop_at_second_report(progress: Progress) -> bool:
        seen.append(progress)
        return len(seen) == 2

    result = train(family, "w8", quick(eval_every_tokens=1_000), report=stop_at_second_report)
    assert result.status == "stopped"
    assert result.tokens_seen == 2_016
    assert len(seen) == 2 and math.isfinite(seen[-1].eval_loss)


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedule_warms_up_to_the_peak_and_ends_at_its_floor(schedule: str) -> None:
    config = quick(lr=1.0, tokens=1_000, warmup_fraction=0.1, final_lr_fraction=0.1, schedule=schedule)
    assert lr_at(0, config) == pytest.approx(0.01)
    assert lr_at(100, config) == pytest.approx(1.0)
    end = 1.0 if schedule == "constant" else 0.1
    assert lr_at(1_000, config) == pytest.approx(end)


def test_wsd_is_flat_until_its_decay_phase() -> None:
    config = quick(lr=1.0, tokens=1_000, warmup_fraction=0.0, decay_fraction=0.2, schedule="wsd")
    assert lr_at(799, config) == 1.0
    assert lr_at(900, config) == pytest.approx(0.55)


def test_weight_decay_applies_only_to_matrices_by_default(family: MLPFamily) -> None:
    model = family.build("w8", seed=0)
    decayed = make_optimizer(model, quick(weight_decay=0.1)).param_groups
    assert all(p.dim() >= 2 for p in decayed[0]["params"]) and decayed[0]["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in decayed[1]["params"]) and decayed[1]["weight_decay"] == 0.0
    everything = make_optimizer(model, quick(weight_decay=0.1, decay_matrices_only=False)).param_groups
    assert len(everything) == 1 and len(everything[0]["params"]) == len(list(model.parameters()))


def test_weight_decay_shrinks_weights(family: MLPFamily) -> None:
    def matrix_norm_after_steps(weight_decay: float) -> float:
        model = family.build("w8", seed=0)
        optimizer = make_optimizer(model, quick(weight_decay=weight_decay, lr=0.01))
        for inputs, targets in list(family.batches("val", 64, seed=0))[:8]:
            optimizer.zero_grad()
            model(inputs, targets).backward()
            optimizer.step()
        return sum(float(p.detach().norm()) for p in model.parameters() if p.dim() >= 2)

    assert matrix_norm_after_steps(10.0) < matrix_norm_after_steps(0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tokens", 0), ("tokens", -5), ("batch_size", 0), ("lr", 0.0), ("lr", math.nan),
     ("weight_decay", -1.0), ("schedule", "linear"), ("eval_every_tokens", 0)],
)
def test_bad_settings_raise_an_error_naming_the_setting(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field}="):
        quick(**{field: value})


def test_unknown_scale_raises_an_error_naming_the_scale(family: MLPFamily) -> None:
    with pytest.raises(ValueError, match="scale 'w9999' is not a scale of family 'mlp'"):
        train(family, "w9999", quick())


@pytest.mark.parametrize(("name", "scale", "options", "lr"),
                         [("gpt", "13k", {"seq_len": 32}, 1e-2), ("mlp", "w32", {}, 3e-3)])
def test_every_family_learns_within_a_small_budget(
    name: str, scale: str, options: dict[str, object], lr: float
) -> None:
    family = get_family(name, **options)
    untrained = evaluate(family.build(scale, seed=0), family, batch_size=64, device="cpu")
    result = train(family, scale, quick(lr=lr, batch_size=16, tokens=60 * 16 * family.tokens_per_example))
    assert result.status == "complete"
    assert result.eval_loss < 0.75 * untrained
