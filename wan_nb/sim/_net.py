"""Loopback-only networking rules for the simulator.

The simulator must never reach the network: the only outbound requests it makes
(fetching a loopback image URL, posting a callback) go through here, and only to
loopback addresses. Host names other than ``localhost`` are never resolved, so even
a DNS lookup cannot leak. Environment proxies are ignored (``trust_env=False``):
a proxy would turn a loopback request into a network one.
"""

from __future__ import annotations

import httpx

from .._config import is_loopback_host, is_loopback_url

__all__ = ["is_loopback_host", "is_loopback_url", "loopback_client"]

def loopback_client(timeout: float) -> httpx.Client:
    """An httpx client for loopback only: no proxies from the environment, no redirects."""
    return httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
