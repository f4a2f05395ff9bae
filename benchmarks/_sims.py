"""Simulators for the benchmarks, each in its own process.

A simulator in a subprocess keeps its rendering out of the client's CPU time and
memory, which is what the client figures measure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx


@contextlib.contextmanager
def simulator(latency: float, concurrency: int, *extra: str) -> Iterator[str]:
    """``python -m wan_nb.sim`` on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wan_nb.sim", "--port", "0", "--latency", str(latency),
         "--concurrency", str(concurrency), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the simulator did not start (said {url!r})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ledger(base_url: str) -> dict[str, Any]:
    """The simulator's books (requests by endpoint, tasks by status, money)."""
    origin = base_url.rsplit("/v1", 1)[0]
    books: dict[str, Any] = httpx.get(origin + "/sim/ledger", timeout=10).json()
    return books


def requests_made(before: dict[str, Any], after: dict[str, Any]) -> int:
    """HTTP requests the client sent between two ledger snapshots (the ledger reads not counted)."""
    keys = set(before["requests"]) | set(after["requests"])
    total: int = sum(after["requests"].get(k, 0) - before["requests"].get(k, 0) for k in keys)
    return total - 1  # the `after` snapshot's own GET /sim/ledger is counted before it answers
