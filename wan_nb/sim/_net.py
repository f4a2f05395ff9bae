"""Loopback-only networking rules for the simulator.

The simulator must never reach the network: the only outbound requests it makes
(fetching a loopback image URL, posting a callback) go through here, and only to
loopback addresses. Host names other than ``localhost`` are never resolved, so even
a DNS lookup cannot leak. Environment proxies are ignored (``trust_env=False``):
a proxy would turn a loopback request into a network one.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx

LOCAL_NAMES = ("localhost", "localhost.")


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost; decided from the text alone (no DNS)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


def loopback_client(timeout: float) -> httpx.Client:
    """An httpx client for loopback only: no proxies from the environment, no redirects."""
    return httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
