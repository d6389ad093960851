"""Scalable model families and the one training loop that trains them all."""

from __future__ import annotations

from models.family import (
    Batch,
    ModelFamily,
    ParamCount,
    Split,
    family_names,
    get_family,
    register_family,
)
from models.gpt import GPTFamily
from models.mlp import MLPFamily
from models.train import Progress, ReportCallback, TrainConfig, TrainResult, lr_at, train

__all__ = [
    "Batch",
    "GPTFamily",
    "MLPFamily",
    "ModelFamily",
    "ParamCount",
    "Progress",
    "ReportCallback",
    "Split",
    "TrainConfig",
    "TrainResult",
    "family_names",
    "get_family",
    "lr_at",
    "register_family",
    "train",
]

register_family("gpt", GPTFamily)
register_family("mlp", MLPFamily)
