"""`Registry`: the named implementations of one extension point (search strategies, trackers).

An entry is the implementation itself or the import path of one,
``"package.module:attr"``, imported on first use: naming the built-in
implementations costs no import, so a study file is checked without loading
Optuna, Ray or MLflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Generic, TypeVar, cast

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """The implementations of the extension point `kind` by name, `builtins` first."""

    def __init__(self, kind: str, builtins: Mapping[str, T | str]) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(builtins)

    def register(self, name: str, implementation: T | str) -> None:
        """Make `implementation` (or its import path ``"module:attr"``) available as `name`."""
        self._entries[name] = implementation

    def names(self) -> tuple[str, ...]:
        """Every registered name, the built-in ones first."""
        return tuple(self._entries)

    def get(self, name: str) -> T:
        """The implementation registered as `name`; `ValueError` naming the choices if there is none."""
        if name not in self._entries:
            raise ValueError(f"{self.kind} {name!r} is unknown: use one of {', '.join(self.names())}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return cast(T, entry)
