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

import torch
from torch import nn

from models.family import Batch, ModelFamily, ParamCount, Split


class MLP(nn.Module):
    """A ReLU perceptron with `depth` hidden layers of `width` units, trained
    with the mean squared error."""

    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int) -> None:
        super().__init__()
        dims = [in_dim] + [width] * depth
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(dims):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.net(inputs), targets)


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
        generator = torch.Generator().manual_seed(teacher_seed)
        self._teacher = _random_teacher(in_dim, teacher_width, out_dim, generator)
        probe = torch.randn(8192, in_dim, generator=generator)
        self._teacher_scale = 1.0 / float(self._teacher(probe).std())
        self._val = self._examples(val_examples, torch.Generator().manual_seed(teacher_seed + 1))

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(f"w{w}" for w in self.widths)

    def param_count(self, scale: str) -> ParamCount:
        width = self._width(scale)
        dims = [self.in_dim] + [width] * self.depth + [self.out_dim]
        total = sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(dims))
        return ParamCount(total=total, non_embedding=total)

    def width(self, scale: str) -> int:
        """Hidden units per layer of the student at `scale`."""
        return self._width(scale)

    def build(self, scale: str, seed: int) -> nn.Module:
        width = self._width(scale)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MLP(self.in_dim, width, self.depth, self.out_dim)

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid: use an integer >= 1")
        if split == "val":
            inputs, targets = self._val
            return ((inputs[i:i + batch_size], targets[i:i + batch_size])
                    for i in range(0, len(inputs), batch_size))
        if split == "train":
            return self._train_stream(batch_size, torch.Generator().manual_seed(seed))
        raise ValueError(f"split={split!r} is invalid: use 'train' or 'val'")

    def _train_stream(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        while True:
            yield self._examples(batch_size, generator)

    @torch.no_grad()
    def _examples(self, count: int, generator: torch.Generator) -> Batch:
        inputs = torch.randn(count, self.in_dim, generator=generator)
        clean = self._teacher(inputs) * self._teacher_scale
        return inputs, clean + self.noise * torch.randn(clean.shape, generator=generator)

    def _width(self, scale: str) -> int:
        self.check_scale(scale)
        return int(scale[1:])


def _random_teacher(in_dim: int, width: int, out_dim: int, generator: torch.Generator) -> nn.Module:
    """A two-hidden-layer tanh network with Gaussian weights of variance 2/fan_in."""
    teacher = nn.Sequential(
        nn.Linear(in_dim, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, out_dim)
    )
    with torch.no_grad():
        for layer in teacher:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, (2.0 / layer.in_features) ** 0.5, generator=generator)
                layer.bias.normal_(0.0, 0.1, generator=generator)
    return teacher.requires_grad_(False)
