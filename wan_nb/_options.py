"""Options that are not request fields (budgets, durations, counts): one rule each.

The request's fields have their rules in ``_request``; the options around a run
(``budget_usd=``, ``timeout=``, ``concurrency=``, a page's ``limit``) are checked here,
so each is refused the same way wherever it is given.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._exceptions import Problem, RequestError


def is_whole(value: Any, least: int = 1) -> bool:
    """A whole number (numpy integers too, never a bool) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= least


def check_usd(name: str, value: Any) -> float | None:
    """A budget in dollars: None (no limit) or a finite number ≥ 0; else RequestError naming ``name``."""
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) < 0:
        raise RequestError([Problem(name, "usd", "must be a finite number of dollars, 0 or more, or None for "
                                                  f"no limit (got {value!r})")])
    return float(value)


def check_seconds(name: str, value: Any) -> float | None:
    """A duration: None (the default) or a positive finite number of seconds; else RequestError."""
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:
        raise RequestError([Problem(name, "seconds", f"must be a positive number of seconds (got {value!r})")])
    return float(value)
