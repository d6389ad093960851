"""The `gpt` family: a decoder-only transformer language model and its scale ladder.

The model follows GPT-2 (and nanoGPT's ``model.py``): learned token and
position embeddings, pre-norm blocks of causal self-attention and a 4× GELU
MLP, a final LayerNorm and a linear head, tied to the token embedding by
default. Every LayerNorm and every Linear but the head has a bias; there is
no dropout.

Scale ladder: width and depth grow together at a fixed aspect ratio,
``d_model = 32 · n_layer`` with heads of size 32 (``n_head = n_layer``), for
``n_layer`` in 1, 2, 3, 4, 6, 8, 12, 16, 20. A block holds ``12·d² + 13·d``
parameters (``d = d_model``), so a model has about ``12 · n_layer · d_model²``
non-embedding parameters, from ~1e4 to ~1e8.

Parameter counts (Kaplan et al. 2020 convention): ``non_embedding`` leaves out
the token and position embeddings; it counts the blocks, the final LayerNorm
and, when untied, the output head. With V the vocabulary, T = ``seq_len`` and
L = ``n_layer``::

    non_embedding = L · (12·d² + 13·d) + 2·d  (+ V·d when untied)
    total         = non_embedding + V·d + T·d

A scale is named by the non-embedding parameter count of its tied model,
rounded: whole thousands below 1e6 ("13k"), one decimal of a million below
1e7 ("2.7M"), whole millions above ("21M"). The names are fixed by the ladder,
not by the options: 13k, 100k, 336k, 793k, 2.7M, 6.3M, 21M, 50M, 98M.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import data
from models.family import Batch, ModelFamily, ParamCount, Split

HEAD_SIZE = 32
"""Width of one attention head (channels)."""
LADDER_LAYERS = (1, 2, 3, 4, 6, 8, 12, 16, 20)
"""``n_layer`` of each scale, smallest first; ``d_model = HEAD_SIZE · n_layer``."""


@dataclass
class GPTConfig:
    """Every size knob of a `GPT`. ``seq_len`` is the longest input (tokens);
    ``d_model`` must be a multiple of ``n_head``."""

    vocab_size: int = 256
    seq_len: int = 128
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    tie_embeddings: bool = True


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which a token attends only to itself and earlier tokens."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.d_model % config.n_head:
            raise ValueError(f"d_model={config.d_model} is not a multiple of n_head={config.n_head}")
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # batch, time (tokens), channels (d_model)
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 × (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """Position-wise feed-forward network: d_model → 4·d_model → GELU → d_model."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model)
        self.proj = nn.Linear(4 * config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, T, 4C) inside, (B, T, C) out


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model.

    Initialisation follows GPT-2: weights normal with std 0.02, biases zero,
    and the projections that write into the residual stream (``attn.proj``,
    ``mlp.proj``) with std ``0.02 / sqrt(2 · n_layer)``. The global torch RNG
    draws the weights; `GPTFamily.build` seeds it.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, T, vocab_size)`` for token ids ``(B, T)``, T ≤ ``seq_len``."""
        T = inputs.size(1)
        if self.config.seq_len < T:
            raise ValueError(f"inputs have {T} tokens, more than seq_len={self.config.seq_len}")
        positions = torch.arange(T, device=inputs.device)  # (T,)
        x = self.tok_emb(inputs) + self.pos_emb(positions)  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting `targets` ``(B, T)`` from `inputs`
        ``(B, T)``, in nats per token (a scalar tensor)."""
        logits = self.logits(inputs)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def _non_embedding_blocks(n_layer: int, d_model: int) -> int:
    """Parameters of the blocks and the final LayerNorm."""
    return n_layer * (12 * d_model**2 + 13 * d_model) + 2 * d_model


def _scale_name(params: int) -> str:
    if params < 1_000_000:
        return f"{round(params / 1e3)}k"
    if params < 10_000_000:
        return f"{params / 1e6:.1f}M"
    return f"{round(params / 1e6)}M"


SCALES: dict[str, int] = {
    _scale_name(_non_embedding_blocks(n_layer, HEAD_SIZE * n_layer)): n_layer for n_layer in LADDER_LAYERS
}
"""``n_layer`` of each scale, by scale name, smallest first."""


class GPTFamily(ModelFamily):
    """GPT language models on a token corpus (`models.data.load_corpus`).

    Options: `corpus` is ``"stdlib"`` or a path (text file, folder of text
    files, or ``.bin`` of uint16 ids); `seq_len` the tokens per example;
    `tie_embeddings` ties the output head to the token embedding; `val_windows`
    the number of validation windows (``val_windows · seq_len`` eval tokens);
    `vocab_size` overrides the corpus vocabulary (``.bin`` corpora only need
    it to leave room for ids absent from the file). The corpus is read on the
    first call to `batches`; for a ``.bin`` corpus without `vocab_size`, the
    first `param_count` or `build` reads it once for its largest id.
    """

    name = "gpt"

    def __init__(
        self,
        corpus: str = "stdlib",
        seq_len: int = 128,
        tie_embeddings: bool = True,
        val_windows: int = 32,
        vocab_size: int | None = None,
    ) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len={seq_len!r} is invalid: use an integer >= 1")
        if val_windows < 1:
            raise ValueError(f"val_windows={val_windows!r} is invalid: use an integer >= 1")
        data.check_source(corpus)
        self.corpus = corpus
        self.seq_len = seq_len
        self.tie_embeddings = tie_embeddings
        self.val_windows = val_windows
        self.tokens_per_example = seq_len
        self._vocab_size = vocab_size
        self._vocab_resolved: int | None = None
        self._corpus: data.Corpus | None = None

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(SCALES)

    @property
    def vocab_size(self) -> int:
        """Vocabulary size of the models (tokens); reads a ``.bin`` corpus once if not given."""
        if self._vocab_resolved is None:
            self._vocab_resolved = data.vocab_size_of(self.corpus, self._vocab_size)
        return self._vocab_resolved

    def config(self, scale: str) -> GPTConfig:
        """The `GPTConfig` of `scale`."""
        self.check_scale(scale)
        n_layer = SCALES[scale]
        return GPTConfig(
            vocab_size=self.vocab_size,
            seq_len=self.seq_len,
            n_layer=n_layer,
            n_head=n_layer,
            d_model=HEAD_SIZE * n_layer,
            tie_embeddings=self.tie_embeddings,
        )

    def param_count(self, scale: str) -> ParamCount:
        config = self.config(scale)
        d, embedding = config.d_model, config.vocab_size * config.d_model
        non_embedding = _non_embedding_blocks(config.n_layer, d)
        if not config.tie_embeddings:
            non_embedding += embedding
        return ParamCount(total=non_embedding + embedding + config.seq_len * d, non_embedding=non_embedding)

    def width(self, scale: str) -> int:
        """``d_model`` of `scale` (channels): ``32 · n_layer``."""
        return self.config(scale).d_model

    def build(self, scale: str, seed: int) -> GPT:
        """A `GPT` at `scale` on the CPU, its weights drawn from the CPU RNG
        seeded with `seed` inside `fork_rng`, leaving every global RNG as it was."""
        config = self.config(scale)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return GPT(config)

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r} is invalid: use 'train' or 'val'")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid: use an integer >= 1")
        if self._corpus is None:
            self._corpus = data.load_corpus(self.corpus, self._vocab_size)
        if split == "train":
            return data.train_batches(self._corpus.train, self.seq_len, batch_size, seed)
        return data.val_batches(self._corpus.val, self.seq_len, batch_size, self.val_windows)
