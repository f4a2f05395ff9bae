"""The tests' own HTTP calls to loopback servers (the simulator, a stand-in bucket).

httpx builds an SSL context for every client it makes, loading the CA bundle (about
50 ms each), even for a plain ``http://127.0.0.1`` URL; the tests make a few hundred such
calls. These make them with one context built once: same calls, same answers.
"""

from __future__ import annotations

from typing import Any

import httpx

TLS = httpx.create_ssl_context()


def get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, verify=TLS, **kw)


def post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url, verify=TLS, **kw)


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, url, verify=TLS, **kw)


def client(**kw: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, **kw)
