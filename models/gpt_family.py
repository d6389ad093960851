"""The `gpt` family: the GPT ladder of `models.gpt`, trained on a byte or token corpus.

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

from collections.abc import Iterator
from typing import TYPE_CHECKING

from models import data
from models.family import Batch, ModelFamily, ParamCount, Split

if TYPE_CHECKING:
    from models.gpt import GPT, GPTConfig

HEAD_SIZE = 32
"""Width of one attention head (channels)."""
LADDER_LAYERS = (1, 2, 3, 4, 6, 8, 12, 16, 20)
"""``n_layer`` of each scale, smallest first; ``d_model = HEAD_SIZE · n_layer``."""


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
        from models.gpt import GPTConfig

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
        d = self.width(scale)
        embedding = self.vocab_size * d
        non_embedding = _non_embedding_blocks(SCALES[scale], d)
        if not self.tie_embeddings:
            non_embedding += embedding
        return ParamCount(total=non_embedding + embedding + self.seq_len * d, non_embedding=non_embedding)

    def activation_memory(self, scale: str, batch_size: int) -> int:
        """fp32 activations of a step, without recomputation (Korthikanti et al. 2022, doubled for
        fp32): ``68·d`` bytes per token and layer, d = ``d_model`` (the attention kernel keeps no
        T × T score matrix), plus the logits and their gradient, ``8·V`` bytes per token."""
        tokens = batch_size * self.seq_len
        return tokens * (SCALES[scale] * 68 * self.width(scale) + 8 * self.vocab_size)

    def width(self, scale: str) -> int:
        """``d_model`` of `scale` (channels): ``32 · n_layer``."""
        self.check_scale(scale)
        return HEAD_SIZE * SCALES[scale]

    def build(self, scale: str, seed: int) -> GPT:
        """A `GPT` at `scale` on the CPU, its weights drawn from the CPU RNG
        seeded with `seed` inside `fork_rng`, leaving every global RNG as it was."""
        import torch

        from models.gpt import GPT

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
