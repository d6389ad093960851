"""Edit a nested study mapping at dotted paths (``space.lr.low``), for the spec tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

DELETE = object()
"""A change's value that removes the key instead of setting it."""


def edited(data: Mapping[str, Any], changes: Mapping[str, object]) -> dict[str, Any]:
    """A deep copy of `data` with the value at each dotted path of `changes` replaced (or deleted)."""
    copied = copy.deepcopy(dict(data))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = copied
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return copied
