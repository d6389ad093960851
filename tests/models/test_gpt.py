"""Tests of the `gpt` family: the model, its scale ladder and its batches."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models.family import Batch, get_family
from models.gpt import GPT, GPTConfig
from models.gpt_family import GPTFamily

SMALL_SCALES = ("13k", "100k", "336k", "793k", "2.7M", "6.3M")


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 40 kB text file of random bytes (vocab 256)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=40_000, dtype=np.uint8).tobytes())
    return str(path)


def _concat(batches: Iterator[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = zip(*batches, strict=True)
    return torch.cat(inputs), torch.cat(targets)


def test_ladder_is_ordered_by_param_count_and_spans_1e4_to_1e8() -> None:
    family = GPTFamily()
    assert family.scales == (*SMALL_SCALES, "21M", "50M", "98M")
    counts = [family.param_count(scale).non_embedding for scale in family.scales]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert 1e4 <= counts[0] < 2e4 and counts[-1] >= 9e7


@pytest.mark.parametrize("tie_embeddings", [True, False])
@pytest.mark.parametrize("scale", SMALL_SCALES)
def test_param_count_is_exact(scale: str, tie_embeddings: bool) -> None:
    family = GPTFamily(tie_embeddings=tie_embeddings)
    model = family.build(scale, seed=0)
    total = sum(p.numel() for p in model.parameters())  # tied weights once
    embeddings = model.tok_emb.weight.numel() + model.pos_emb.weight.numel()
    assert family.param_count(scale) == (total, total - embeddings)
    assert (model.head.weight is model.tok_emb.weight) == tie_embeddings


def test_non_embedding_count_follows_the_ladder_rule() -> None:
    family = GPTFamily()
    for scale in family.scales:
        config = family.config(scale)
        assert config.d_model == 32 * config.n_layer and config.n_head == config.n_layer
        approx = 12 * config.n_layer * config.d_model**2
        assert approx < family.param_count(scale).non_embedding < 1.05 * approx


def test_same_seed_gives_same_weights_whatever_the_global_rng() -> None:
    family = GPTFamily()
    torch.manual_seed(1)
    first = family.build("100k", seed=7).state_dict()
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = family.build("100k", seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), state)  # build leaves the global RNG alone
    other = family.build("100k", seed=8).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["blocks.0.mlp.fc.weight"], other["blocks.0.mlp.fc.weight"])


def test_init_is_gpt2_style() -> None:
    model = GPTFamily().build("2.7M", seed=0)  # 6 layers
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(12), rel=0.02)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(12), rel=0.02)
    assert torch.count_nonzero(model.blocks[0].attn.qkv.bias) == 0


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_initial_loss_is_a_finite_scalar_near_ln_vocab(tie_embeddings: bool) -> None:
    model = GPTFamily(tie_embeddings=tie_embeddings).build("336k", seed=0)
    tokens = torch.randint(0, 256, (4, 129), generator=torch.Generator().manual_seed(0))
    loss = model(tokens[:, :-1], tokens[:, 1:])
    assert loss.shape == () and torch.isfinite(loss)
    assert loss.item() == pytest.approx(math.log(256), abs=0.05)


def test_a_later_token_does_not_change_earlier_logits() -> None:
    model = GPT(GPTConfig(n_layer=2, n_head=2, d_model=64, seq_len=16))
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 256
    with torch.no_grad():
        before, after = model.logits(tokens), model.logits(changed)
    assert before.shape == (2, 16, 256)
    assert torch.allclose(before[:, :10], after[:, :10], atol=1e-6)
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_a_few_adamw_steps_lower_the_loss_on_a_repeated_batch() -> None:
    model = GPTFamily().build("13k", seed=0)
    tokens = torch.arange(33).repeat(8, 1) % 7
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = model(tokens[:, :-1], tokens[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_inputs_longer_than_seq_len_are_rejected() -> None:
    model = GPT(GPTConfig(n_layer=1, n_head=1, d_model=32, seq_len=8))
    with pytest.raises(ValueError, match="seq_len"):
        model.logits(torch.zeros(1, 9, dtype=torch.int64))


def test_family_needs_no_corpus_to_count_and_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path))
    family = get_family("models.gpt_family:GPTFamily", seq_len=64)
    assert family.name == "gpt" and family.tokens_per_example == 64
    family.param_count("98M")
    family.build("13k", seed=0)
    assert family.train_flops("13k", 1000) == 6 * family.param_count("13k").non_embedding * 1000
    assert not any(tmp_path.iterdir())


def test_val_batches_are_the_same_for_every_seed_and_batch_size(text_corpus: str) -> None:
    family = GPTFamily(corpus=text_corpus, seq_len=32, val_windows=10)
    inputs, targets = _concat(family.batches("val", batch_size=4, seed=0))
    assert inputs.shape == targets.shape == (10, 32) and inputs.dtype == torch.int64
    for batch_size, seed in ((4, 1), (1, 0), (64, 3)):
        again = _concat(family.batches("val", batch_size=batch_size, seed=seed))
        assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_train_batches_are_reproducible_per_seed(text_corpus: str) -> None:
    family = GPTFamily(corpus=text_corpus, seq_len=32)
    first, second, other = (family.batches("train", batch_size=8, seed=s) for s in (5, 5, 6))
    for _ in range(3):
        (a, a_targets), (b, b_targets), (c, _) = next(first), next(second), next(other)
        assert a.shape == (8, 32) and torch.equal(a, b) and torch.equal(a_targets, b_targets)
        assert not torch.equal(a, c)


def test_family_trains_on_a_token_file_with_its_vocab(tmp_path: Path) -> None:
    path = tmp_path / "tokens.bin"
    np.random.default_rng(0).integers(0, 1000, size=20_000).astype("<u2").tofile(path)
    family = GPTFamily(corpus=str(path), seq_len=16, tie_embeddings=False)
    model = family.build("13k", seed=0)
    assert model.config.vocab_size == int(np.fromfile(path, dtype="<u2").max()) + 1
    assert family.param_count("13k").total == sum(p.numel() for p in model.parameters())
    inputs, targets = next(family.batches("train", batch_size=2, seed=0))
    assert math.isfinite(model(inputs, targets).item())
    assert GPTFamily(corpus=str(path), vocab_size=1024).build("13k", seed=0).config.vocab_size == 1024


def test_bad_arguments_raise_value_errors_naming_them(text_corpus: str, tmp_path: Path) -> None:
    family = GPTFamily(corpus=text_corpus, seq_len=32)
    with pytest.raises(ValueError, match="scale"):
        family.build("1B", seed=0)
    with pytest.raises(ValueError, match="scale"):
        family.param_count("1B")
    with pytest.raises(ValueError, match="batch_size"):
        family.batches("train", batch_size=0, seed=0)
    with pytest.raises(ValueError, match="split"):
        family.batches("test", batch_size=1, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq_len"):
        GPTFamily(seq_len=0)
    with pytest.raises(ValueError, match="val_windows"):
        GPTFamily(val_windows=0)
    with pytest.raises(ValueError, match="corpus"):
        GPTFamily(corpus=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="seq_len"):  # the val split (~800 bytes) is shorter than a window
        GPTFamily(corpus=text_corpus, seq_len=1000).batches("val", batch_size=1, seed=0)
    with pytest.raises(ValueError, match="n_head"):
        GPT(GPTConfig(d_model=64, n_head=3))
