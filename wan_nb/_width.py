"""How many tasks to keep in flight: the server's width, found as congestion control finds it.

The hosted API does not publish how many tasks an account may have processing at
once, and it differs per account. Too few in flight and a sweep takes twice as long
as it needs; too many and tasks wait queued on the server (or are refused with 429).
So the window of tasks in flight moves with what the server does (additive
increase, multiplicative decrease, as TCP does):

* it starts at ``START`` (what any account takes) and grows by ``SLOW_START_STEP``
  per task that came back without queueing ("slow start"), never past twice the most
  tasks seen in flight without a queue; after the first sign of queueing, by one task
  per window's worth of tasks;
* a task queued when it took more than ``QUEUED_FACTOR`` × the slowest task sent
  with at most ``START`` in flight (those cannot have queued). ``QUEUED_SIGNALS``
  such tasks, sent since the last decrease, shrink the window to ``DECREASE`` of
  itself, but not below the server's width estimated by Little's law (tasks
  completed per second × the median no-queue task time): a queue at the server
  costs nothing as long as every slot stays busy. Above twice that width (plus
  ``QUEUE_ALLOWANCE``) it never grows: more in flight would only wait;
* a 429 halves it.

Pure arithmetic on times the caller passes in: no clock, no I/O, no asyncio. The
sweep's gate (``_sweep``) calls it; one estimate serves all of a session's sweeps.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import NamedTuple

START = 4  # tasks in flight before anything is known (the old fixed default)
CEILING = 64  # never more in flight without an explicit concurrency=
DECREASE = 0.7  # multiplicative decrease on queueing
QUEUED_FACTOR = 1.5  # a task this much slower than the slowest no-queue task waited in a queue
QUEUED_SIGNALS = 2  # ... and it takes two such tasks to say so (task times vary 0.5–1.5×)
SLOW_START_STEP = 2.0  # window growth per task in slow start (1: doubles each round)
QUEUE_ALLOWANCE = 2.0  # tasks allowed to wait at the server above twice its estimated width
SAFE_SAMPLES = 32  # task times kept for the no-queue baseline


class Ticket(NamedTuple):
    """What ``sent`` hands out and ``ended`` takes back."""

    ahead: int  # tasks in flight with this one, itself included
    epoch: int  # decreases of the window before it was sent


class WidthEstimate:
    """The window of tasks in flight, moved by the outcome of each task."""

    def __init__(self, start: int = START, ceiling: int = CEILING) -> None:
        self.start = start
        self.ceiling = ceiling
        self.window = float(start)
        self.slow_start = True
        self.in_flight = 0
        self._safe: deque[float] = deque(maxlen=SAFE_SAMPLES)  # task times with ≤ start in flight
        self._recent: deque[tuple[float, int]] = deque(maxlen=CEILING)  # (end time, in flight when sent)
        self._epoch = 0  # bumped by each decrease
        self.confirmed = start  # most tasks seen in flight with none of them queueing (start: assumed)
        self._queued = 0  # tasks that took more than QUEUED_FACTOR × the no-queue time, since the last decrease

    def __repr__(self) -> str:
        est = self.estimate()
        seen = f", server width ≈ {est:.1f}" if est is not None else ""
        return f"<WidthEstimate window {self.window:.1f}{seen}, {self.in_flight} in flight>"

    def limit(self, cap: int | None = None) -> int:
        """Tasks that may be in flight now: the window, never above ``cap`` (or the ceiling)."""
        return max(1, min(int(self.window), cap if cap is not None else self.ceiling))

    def trust(self, cap: int) -> None:
        """The user said ``concurrency=cap``: start there rather than at ``START``, unless
        the server has already shown it is narrower (queueing or 429 seen)."""
        if self.slow_start:
            self.window = max(self.window, float(min(cap, self.ceiling)))

    def sent(self) -> Ticket:
        """A task goes out; the ticket (tasks in flight with it, the window's epoch) goes to ``ended``."""
        self.in_flight += 1
        return Ticket(self.in_flight, self._epoch)

    def ended(self, ticket: Ticket, seconds: float | None = None, now: float | None = None) -> None:
        """The task of ``ticket`` came back after ``seconds`` (at time ``now``).

        ``seconds``/``now`` None: it ended without telling anything about the server
        (a cache hit, a refusal, an error): only the slot is freed.
        """
        self.in_flight = max(0, self.in_flight - 1)
        if seconds is None or now is None:
            return
        ahead = ticket.ahead
        if ahead <= self.start:  # sent where any server has room: no queue in its time
            self._safe.append(seconds)
        self._recent.append((now, ahead))
        if len(self._safe) >= 2 and seconds > QUEUED_FACTOR * max(self._safe):
            # this task waited at the server; one sent before the last decrease says nothing new
            self._queued += ticket.epoch == self._epoch
        else:
            self.confirmed = max(self.confirmed, ahead)  # that many in flight, and no queue
        if self._queued >= QUEUED_SIGNALS:
            est = self.estimate()  # the server's width: no need to go below it
            self.window = max(1.0, min(self.window, max(self.window * DECREASE, est or 0.0)))
            self._epoch += 1
            self.slow_start = False
            self._queued = 0
            return
        grown = self.window + (SLOW_START_STEP if self.slow_start else 1.0 / self.window)
        if self.slow_start:  # at most double what the server has been seen to take without queueing
            grown = min(grown, 2.0 * self.confirmed)
        est = self.estimate()
        if est is not None:  # more than twice the server's width in flight only makes a queue
            grown = min(grown, 2.0 * est + QUEUE_ALLOWANCE)
        self.window = min(float(self.ceiling), max(self.window, grown))  # growth stops; it never shrinks here

    def rate_limited(self) -> None:
        """The server answered 429: halve the window."""
        self.window = max(1.0, self.window / 2)
        self._epoch += 1
        self.slow_start = False
        self._queued = 0

    def _window_of_recent(self) -> list[tuple[float, int]]:
        k = min(len(self._recent), max(4, int(self.window)))
        return list(self._recent)[-k:]

    def estimate(self) -> float | None:
        """The server's width by Little's law (None until there is enough to tell)."""
        recent = self._window_of_recent()
        if len(self._safe) < 2 or len(recent) < 4:
            return None
        span = recent[-1][0] - recent[0][0]
        if span <= 0:
            return None
        return (len(recent) - 1) / span * statistics.median(self._safe)
