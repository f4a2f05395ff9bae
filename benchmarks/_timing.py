"""The one way the benchmarks time a call: the best of a few runs (the least disturbed by
other work on a shared machine)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
