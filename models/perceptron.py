"""The networks of the `mlp` family: a ReLU perceptron (the student) and a random tanh teacher."""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["MLP", "random_teacher"]


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


def random_teacher(in_dim: int, width: int, out_dim: int, generator: torch.Generator) -> nn.Module:
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
