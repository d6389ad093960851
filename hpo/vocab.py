"""One vocabulary: the names every part of `hpo` uses, and the small helpers each defined once.

* **Hyperparameters** a study searches: `HYPERPARAMETERS`, ``lr`` (the peak
  learning rate), ``batch_size`` (sequences, or examples, per step; a power
  of two) and ``weight_decay`` (decoupled, AdamW's).
* **Trial statuses**, the ``status`` column of the trial table, the Optuna
  user attribute and the MLflow tag: `FINAL_STATUSES` are how a trial ends
  (``complete``: its full token budget; ``pruned``: stopped early by ASHA;
  ``diverged``: its loss blew up; ``failed``: its code raised or its process
  died, every retry spent); `INTERRUPTED` marks a trial whose driver was
  killed while it ran (it runs again on resume and never counts).
* **Trial origins**, why a trial runs (`ORIGINS`): ``search`` (the
  sampler's), ``predicted`` (a scale's predicted optimum), ``design`` (a
  setting of a full-budget design), ``explore`` (drawn from the full space
  beside a narrowed one), ``probe`` (the prediction at another lr, judged
  early), ``verify`` (a recommendation or its neighbour, trained by ``hpo
  verify``). ASHA never stops a trial of a `PROTECTED` origin.
* **Helpers**: powers of two (`is_power_of_two`, `powers_of_two`,
  `nearest_power_of_two`), numbers for people (`format_number`,
  `format_short`) and one retry loop (`retry`).

Pure and import-free beyond the standard library: every package may use it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Literal, TypeVar

__all__ = [
    "COMPLETE", "DESIGN", "DIVERGED", "EXPLORE", "FAILED", "FINAL_STATUSES", "HYPERPARAMETERS", "INTERRUPTED",
    "ORIGINS", "PREDICTED", "PROBE", "PROTECTED", "PRUNED", "SEARCH", "VERIFY", "FinalStatus",
    "Hyperparameter", "format_number", "format_short", "is_power_of_two", "nearest_power_of_two",
    "powers_of_two", "retry",
]

logger = logging.getLogger(__name__)

Hyperparameter = Literal["lr", "batch_size", "weight_decay"]
HYPERPARAMETERS: tuple[Hyperparameter, ...] = ("lr", "batch_size", "weight_decay")
"""What a study searches, in the order every table shows them."""

FinalStatus = Literal["complete", "pruned", "diverged", "failed"]
COMPLETE: FinalStatus = "complete"
PRUNED: FinalStatus = "pruned"
DIVERGED: FinalStatus = "diverged"
FAILED: FinalStatus = "failed"
FINAL_STATUSES: tuple[FinalStatus, ...] = (COMPLETE, PRUNED, DIVERGED, FAILED)
"""How a trial ends, in the order every table shows them."""
INTERRUPTED = "interrupted"
"""The status of a trial whose driver was killed while it ran: its configuration runs again."""

SEARCH = "search"
PREDICTED = "predicted"
DESIGN = "design"
EXPLORE = "explore"
PROBE = "probe"
VERIFY = "verify"
ORIGINS = (SEARCH, PREDICTED, DESIGN, EXPLORE, PROBE, VERIFY)
"""Why a trial runs (its Optuna user attribute ``origin``)."""
PROTECTED = (PREDICTED, DESIGN, EXPLORE, VERIFY)
"""Origins whose trials always train to their full budget: they test a prediction or locate an optimum."""

T = TypeVar("T")


def is_power_of_two(value: int) -> bool:
    """Whether `value` is 1, 2, 4, 8, ..."""
    return value >= 1 and value & (value - 1) == 0


def powers_of_two(low: int, high: int) -> tuple[int, ...]:
    """Every power of two from `low` to `high` (powers of two themselves), smallest first."""
    return tuple(2**k for k in range(low.bit_length() - 1, high.bit_length()))


def nearest_power_of_two(value: float) -> int:
    """The power of two nearest to `value` > 0 in log space (96 -> 128, 90 -> 64), at least 1."""
    return 2 ** max(0, round(math.log2(value)))


def format_number(value: float | None) -> str:
    """Three significant digits (``0.00316``, ``1.2e+05``); ``-`` for None."""
    return "-" if value is None else f"{value:.3g}"


def format_short(value: float) -> str:
    """Two significant digits, exponent without padding, for run names: 0.0032 → ``3.2e-3``, 0.1 → ``0.1``."""
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.2g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def retry(call: Callable[[], T], *, attempts: int, delay: float, retryable: Callable[[Exception], bool],
          what: str) -> T:
    """``call()``, again after `delay` seconds while it raises an error that `retryable` accepts,
    `attempts` tries in all; the last error, or one `retryable` refuses, propagates. `what` names
    the operation in the log line of each retry (e.g. two processes creating one store at once)."""
    attempt = 1
    while True:
        try:
            return call()
        except Exception as error:
            if attempt >= attempts or not retryable(error):
                raise
            attempt += 1
            logger.info("%s: %s; try %d of %d", what, type(error).__name__, attempt, attempts)
        time.sleep(delay)
