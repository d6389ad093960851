"""A model family for the cluster tests that says where each trial attempt trained.

Workers import it by import path (``cluster_families:NodeRecordingMLP``); the
cluster fixture puts this folder on every node's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from models import Batch, MLPFamily, Split


class NodeRecordingMLP(MLPFamily):
    """The mlp family, plus: each trial attempt writes ``attempt-*.json`` to
    `record_dir` (the Ray node and Tune trial it runs in, its pid) and touches
    its ``alive-*`` file at every training step; each step sleeps
    `step_seconds` (s) first, so that trials last long enough to be hit by a
    fault while using little CPU."""

    def __init__(self, record_dir: str, step_seconds: float = 0.0, **options: object) -> None:
        super().__init__(**options)
        self.record_dir = Path(record_dir)
        self.step_seconds = step_seconds
        self._alive: Path | None = None

    def build(self, scale: str, seed: int) -> nn.Module:
        import ray
        from ray import tune

        stamp = f"{time.time_ns()}-{os.getpid()}"
        record = {"node": ray.get_runtime_context().get_node_id(), "trial": tune.get_context().get_trial_id(),
                  "pid": os.getpid(), "alive": f"alive-{stamp}"}
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self._alive = self.record_dir / record["alive"]
        self._alive.touch()
        (self.record_dir / f"attempt-{stamp}.json").write_text(json.dumps(record))
        return super().build(scale, seed)

    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        for batch in super().batches(split, batch_size, seed):
            if split == "train":
                time.sleep(self.step_seconds)
                if self._alive is not None:
                    self._alive.touch()
            yield batch
