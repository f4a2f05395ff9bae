"""Wall-clock time as the client reads it, and the server's clock as the client sees it.

``now()`` is the only place the client (``_client``, ``_retry``, ``_images``) reads
the wall clock, so a test can skew the client's clock and nothing else: the
simulator reads ``time.time()`` itself and never imports this module.

The server's timestamps (a 429's ``reset_at``, a result link's ``expires_at``) are on
the server's clock, which need not agree with ours. They are compared with the
server's time: the ``Date`` header of the same answer where there is one, else
``ServerClock.now()``, our clock corrected by the offset seen in the API's recent
``Date`` headers (one estimate per client, updated from each answer in one place,
``AsyncClient._send``). With no ``Date`` ever seen, the local clock is all there is.
"""

from __future__ import annotations

import email.utils
import math
import statistics
import time
from collections import deque
from datetime import UTC

SAMPLES = 9  # Date headers the offset is the median of: one odd answer (a proxy's) cannot move it


def now() -> float:
    """Unix seconds on this machine's clock (which may be wrong by any amount)."""
    return time.time()


def http_date(value: str | None) -> float | None:
    """Unix seconds of an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT`` and the obsolete
    forms RFC 9110 asks a recipient to accept); None when ``value`` is not one."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp()
    return seconds if math.isfinite(seconds) else None


class ServerClock:
    """The server's clock as seen from here: ``offset`` = server time − local time.

    Each ``Date`` header is whole seconds, rounded down, so a sample is ``Date + 0.5``
    minus the local time it arrived at (within about half a second plus the answer's
    transit); the offset is the median of the last ``SAMPLES``, 0 before any.
    """

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=SAMPLES)

    def observe(self, date_header: str | None, received_at: float | None = None) -> None:
        """Take one answer's ``Date`` header (ignored when absent or unreadable)."""
        server = http_date(date_header)
        if server is not None:
            self._samples.append(server + 0.5 - (now() if received_at is None else received_at))

    @property
    def known(self) -> bool:
        """Has any ``Date`` been seen?"""
        return bool(self._samples)

    @property
    def offset(self) -> float:
        """Seconds the server's clock is ahead of ours (negative: behind); 0 when unknown."""
        return statistics.median(self._samples) if self._samples else 0.0

    def now(self) -> float:
        """The server's time now, as best we know it."""
        return now() + self.offset
