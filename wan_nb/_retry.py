"""The retry policy, in one place: what is retried, and how long to wait.

Retried: no answer (connect error, timeout, dropped connection), 429 (waiting as long
as ``Retry-After`` / ``reset_at`` say, read on the server's clock: ``rate_limit_wait``),
5xx except ``price_not_configured`` (a setting on the provider's side that no retry
fixes), and tasks that failed with a retryable code (``upstream_unavailable``). Never
retried: 400, 401, 402, 404. A retried submit carries the same Idempotency-Key, so the
server bills it once.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _clock

RETRYABLE_STATUS = (429, 500, 502, 503, 504)
NOT_RETRYABLE_CODES = ("price_not_configured",)
RETRYABLE_TASK_CODES = ("upstream_unavailable",)


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff ("full jitter") with caps."""

    max_attempts: int = 6  # HTTP attempts per call, the first included
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_rate_limit_wait: float = 600.0  # a 429 asking us to wait longer than this is raised
    min_rate_limit_wait: float = 0.5  # the least a 429 is waited out: never a busy loop
    task_retries: int = 2  # new tasks after a retryable task failure (failed tasks are refunded)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry_status(self, status: int, code: str | None) -> bool:
        return status in RETRYABLE_STATUS and code not in NOT_RETRYABLE_CODES

    def should_retry_task(self, code: str | None) -> bool:
        return code in RETRYABLE_TASK_CODES

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1 = first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def rate_limit_wait(
        self, headers: Mapping[str, str], error_extra: Mapping[str, Any], attempt: int,
        server_now: float | None = None,
    ) -> float:
        """How long a 429 asks us to wait; ``attempt``: the 429s in a row for this call (1 = first).

        The server's own words first, each read on the server's clock, never ours:

        1. ``Retry-After``: seconds, or an HTTP date (read against the answer's ``Date``);
        2. ``reset_at`` minus the answer's ``Date``: the server's time when it answered;
        3. ``reset_at`` minus ``server_now`` (our clock corrected by the skew seen in
           earlier ``Date`` headers; the local clock when none was seen).

        Never less than asked (the jitter is added, 0.05-0.25 s), and never a spin: an
        answer that asks for nothing (no advice, or a time already past) waits the
        backoff for ``attempt``, at least ``min_rate_limit_wait``.
        """
        asked = self._asked_wait(headers, error_extra, server_now)
        if asked is None or asked <= 0:
            return max(self.min_rate_limit_wait, self.backoff(attempt))
        return max(asked, self.min_rate_limit_wait) + self.rng.uniform(0.05, 0.25)

    @staticmethod
    def _asked_wait(headers: Mapping[str, str], error_extra: Mapping[str, Any],
                    server_now: float | None) -> float | None:
        """Seconds the server asked for, worked out on its own clock; None when it did not say."""
        date = _clock.http_date(headers.get("date"))
        answered_at = date if date is not None else (server_now if server_now is not None else _clock.now())
        retry_after = (headers.get("retry-after") or "").strip()
        if retry_after:
            try:
                seconds = float(retry_after)
            except ValueError:
                until = _clock.http_date(retry_after)
                if until is not None:
                    return until - answered_at
            else:
                if math.isfinite(seconds):
                    return seconds
        reset_at = error_extra.get("reset_at")  # unix seconds, server clock (_wire.parse_error reads the units)
        if isinstance(reset_at, float):
            return reset_at - answered_at
        return None


DEFAULT_POLICY = RetryPolicy()


class RateGate:
    """One pause shared by every call through a client: after any 429, nobody sends
    until the window resets, instead of each concurrent cell hammering the API alone."""

    def __init__(self) -> None:
        self._until = 0.0  # time.monotonic() before which no request is sent
        self.hits = 0  # 429s seen: the sweep's width estimate backs off on each

    def close_for(self, seconds: float) -> None:
        self.hits += 1
        self._until = max(self._until, time.monotonic() + seconds)

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())


def poll_delays(first: float = 0.5, factor: float = 1.5, cap: float = 5.0) -> Iterator[float]:
    """Adaptive polling: quick at first (most tasks end soon), then slower."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)
