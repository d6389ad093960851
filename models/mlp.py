"""`mlp`: a teacher–student regression family, fast enough for tests and demos.

A fixed random teacher network maps inputs x ~ N(0, I) to targets
y = f_teacher(x) / std + ε, ε ~ N(0, σ²), scaled so y has unit variance
before the noise. Students are multilayer perceptrons of growing width w in
standard parameterization (PyTorch's default initialisation, one learning
rate for every layer). Wider students approximate the teacher better, so the
loss falls towards σ² as w grows, and with Adam the best learning rate
shrinks roughly like 1/w — the shift that muP removes and that `hpo` tracks.

A *token* of this family is one example; the loss is the mean squared error.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from models.family import Batch, ModelFamily, ParamCount, Split

if TYPE_CHECKING:  # torch loads when a model is built or data drawn, not to read the ladder
    import torch
    from torch import nn


class MLPFamily(ModelFamily):
    """Students of widths `widths` (scale names ``"w{width}"``) learning one
    fixed teacher of width `teacher_width` with `depth` hidden layers."""

    name = "mlp"
    tokens_per_example = 1

    def __init__(
        self,
        widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512),
        depth: int = 2,
        in_dim: int = 16,
        out_dim: int = 1,
        teacher_width: int = 256,
        noise: float = 0.1,
        val_examples: int = 2048,
        teacher_seed: int = 0,
    ) -> None:
        if not widths or any(w < 1 for w in widths) or list(widths) != sorted(set(widths)):
            raise ValueError(f"widths={widths!r} is invalid: use increasing positive integers")
        for name, value in (("depth", depth), ("in_dim", in_dim), ("out_dim", out_dim),
                            ("teacher_width", teacher_width), ("val_examples", val_examples)):
            if value < 1:
                raise ValueError(f"{name}={value!r} is invalid: use an integer >= 1")
        if noise < 0:
            raise ValueError(f"noise={noise!r} is invalid: use a standard deviation >= 0")
        self.widths = tuple(widths)
        self.depth, self.in_dim, self.out_dim, self.noise = depth, in_dim, out_dim, noise
        self.val_examples = val_examples
        self.teacher_width, self.teacher_seed = teacher_width, teacher_seed
        self._teacher: tuple[nn.Module, float] | None = None
        self._val: Batch | None = None

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(f"w{w}" for w in self.widths)

    def param_count(self, scale: str) -> ParamCount:
        width = self._width(scale)
        dims = [self.in_dim] + [width] * self.depth + [self.out_dim]
        total = sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(dims))
        return ParamCount(total=total, non_embedding=total)

    def trial_memory(self, scale: str, batch_size: int) -> int:
        """The student's share (`ModelFamily.trial_memory`) plus the fixed teacher's weights and the
        validation set, fp32; the teacher is what makes a huge ``teacher_width`` unaffordable."""
        teacher = self.in_dim * self.teacher_width + self.teacher_width**2 + self.teacher_width * self.out_dim
        validation = self.val_examples * (self.in_dim + self.out_dim)
        return super().trial_memory(scale, batch_size) + 4 * (teacher + validation)

    def activation_memory(self, scale: str, batch_size: int) -> int:
        """fp32 activations of the student and of the teacher that labels the batch, about three values
        per unit (pre-activation, activation, gradient)."""
        return 4 * 3 * batch_size * (self._width(scale) * self.depth + 2 * self.teacher_width)

    def width(self, scale: str) -> int:
        """Hidden units per layer of the student at `scale`."""
        return self._width(scale)

    def build(self, scale: str, seed: int) -> nn.Module:
        import torch

        from models.perceptron import MLP

        width = self._width(scale)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MLP(self.in_dim, width, self.depth, self.out_dim)

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid: use an integer >= 1")
        import torch

        if split == "val":
            if self._val is None:
                generator = torch.Generator().manual_seed(self.teacher_seed + 1)
                self._val = self._examples(self.val_examples, generator)
            inputs, targets = self._val
            return ((inputs[i:i + batch_size], targets[i:i + batch_size])
                    for i in range(0, len(inputs), batch_size))
        if split == "train":
            return self._train_stream(batch_size, torch.Generator().manual_seed(seed))
        raise ValueError(f"split={split!r} is invalid: use 'train' or 'val'")

    def _train_stream(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        while True:
            yield self._examples(batch_size, generator)

    def _examples(self, count: int, generator: torch.Generator) -> Batch:
        import torch

        teacher, scale = self._scaled_teacher()
        with torch.no_grad():
            inputs = torch.randn(count, self.in_dim, generator=generator)
            clean = teacher(inputs) * scale
            return inputs, clean + self.noise * torch.randn(clean.shape, generator=generator)

    def _scaled_teacher(self) -> tuple[nn.Module, float]:
        """The teacher and the factor that gives its outputs unit variance, made on first use
        (a study file's checks read the ladder without building it)."""
        if self._teacher is None:
            import torch

            from models.perceptron import random_teacher

            generator = torch.Generator().manual_seed(self.teacher_seed)
            teacher = random_teacher(self.in_dim, self.teacher_width, self.out_dim, generator)
            with torch.no_grad():
                probe = torch.randn(8192, self.in_dim, generator=generator)
                self._teacher = teacher, 1.0 / float(teacher(probe).std())
        return self._teacher

    def _width(self, scale: str) -> int:
        self.check_scale(scale)
        return int(scale[1:])
