"""The simulator's books: what was held, billed and refunded, and what happened.

Money is the thing a client most needs to get right (a retried submit must not bill
twice, a failed task must be refunded), so the simulator keeps an account that tests
and notebooks can read back (``GET /sim/ledger``) and compare with what the client
believes it spent. Counters for requests, injected faults and callbacks live here too,
so one snapshot tells the whole story of a session.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Ledger:
    """Thread-safe counters. Quota moves hold → bill or hold → refund, never elsewhere."""

    def __init__(self, balance_quota: int | None = None) -> None:
        self._lock = threading.Lock()
        self.balance_quota = balance_quota
        self.submitted = 0
        self.idempotent_replays = 0
        self.held_quota = 0
        self.billed_quota = 0
        self.billed_images = 0
        self.refunded_quota = 0
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.callbacks: Counter[str] = Counter()

    # -- money -------------------------------------------------------------------------
    def left(self) -> int | None:
        """Quota still spendable (None = unlimited). Held quota is not spendable."""
        if self.balance_quota is None:
            return None
        with self._lock:
            return self.balance_quota - self.billed_quota - self.held_quota

    def hold(self, quota: int) -> None:
        with self._lock:
            self.submitted += 1
            self.held_quota += quota

    def bill(self, held: int, images: int) -> None:
        with self._lock:
            self.held_quota -= held
            self.billed_quota += held
            self.billed_images += images

    def refund(self, held: int) -> None:
        with self._lock:
            self.held_quota -= held
            self.refunded_quota += held

    # -- counters ----------------------------------------------------------------------
    def count(self, what: str, key: str, by: int = 1) -> None:
        """Bump ``requests``, ``responses``, ``faults`` or ``callbacks`` by key."""
        with self._lock:
            getattr(self, what)[key] += by

    def replayed(self) -> None:
        with self._lock:
            self.idempotent_replays += 1

    def snapshot(self, by_status: dict[str, int]) -> dict[str, Any]:
        with self._lock:
            left = None if self.balance_quota is None else (
                self.balance_quota - self.billed_quota - self.held_quota
            )
            return {
                "submitted": self.submitted,
                "idempotent_replays": self.idempotent_replays,
                "held_quota": self.held_quota,
                "billed_quota": self.billed_quota,
                "billed_images": self.billed_images,
                "refunded_quota": self.refunded_quota,
                "balance_quota": self.balance_quota,
                "balance_left": left,
                "by_status": dict(by_status),
                "requests": dict(self.requests),
                "responses": dict(self.responses),
                "faults": dict(self.faults),
                "callbacks": dict(self.callbacks),
            }
