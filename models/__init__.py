"""Scalable model families and the one training loop that trains them all.

Reading a family's ladder (scale names, parameter counts, widths) loads no
torch: the families are registered by import path, and the names below are
imported on first use, so a study file is checked without torch. Building a
model, drawing batches and training load it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models.family import (
    Batch,
    ModelFamily,
    ParamCount,
    Split,
    family_names,
    get_family,
    register_family,
)
from models.train_config import Progress, TrainConfig

if TYPE_CHECKING:
    from models.gpt_family import GPTFamily
    from models.mlp import MLPFamily
    from models.training import ReportCallback, TrainResult, lr_at, train

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

_HOMES = {"GPTFamily": "models.gpt_family", "MLPFamily": "models.mlp", "ReportCallback": "models.training",
          "TrainResult": "models.training", "lr_at": "models.training", "train": "models.training"}

register_family("gpt", "models.gpt_family:GPTFamily")
register_family("mlp", "models.mlp:MLPFamily")


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
