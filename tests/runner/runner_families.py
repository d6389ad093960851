"""A model family for the runner tests whose training data raises at one batch size."""

from __future__ import annotations

from collections.abc import Iterator

from models import Batch, MLPFamily, Split

FAILING_BATCH_SIZE = 16
"""Training at this batch size raises, as a bug in model code would."""


class FlakyMLP(MLPFamily):
    """The mlp family, except that training batches of `FAILING_BATCH_SIZE` raise `RuntimeError`."""

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        if split == "train" and batch_size == FAILING_BATCH_SIZE:
            raise RuntimeError(f"no training data at batch size {batch_size}")
        return super().batches(split, batch_size, seed)
