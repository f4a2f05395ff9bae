"""Wall-clock time as the client reads it, in one place.

``now()`` is the only place the client (``_client``, ``_retry``, ``_images``) reads
the wall clock, so a test can skew the client's clock and nothing else: the
simulator reads ``time.time()`` itself and never imports this module.
"""

from __future__ import annotations

import time


def now() -> float:
    """Unix seconds on this machine's clock (which may be wrong by any amount)."""
    return time.time()
