"""``Simulator``: the hosted task API, served on loopback by this process.

What a notebook gets without an API key, and what every test talks to: the same wire
protocol as the hosted service (task-api.md) over real HTTP, so the client code that
runs against the simulator is exactly the code that runs against the service.
"""

from __future__ import annotations

import threading
from typing import Any

from .._options import is_whole
from . import _render
from ._api import Api
from ._callbacks import CallbackSender
from ._faults import Faults
from ._files import FileStore
from ._ledger import Ledger
from ._server import SimHTTPServer, SimHTTPServer6
from ._tasks import TaskBook


class Simulator:
    """A local stand-in for the hosted API. ``with Simulator() as sim: sim.base_url``.

    latency: seconds a task spends processing (0.5x-1.5x, from its seed);
    concurrency: tasks processing at once (the rest wait queued, FIFO);
    link_ttl: seconds a result link works after the task completed;
    api_key: if given, the only Bearer key accepted (any non-empty key otherwise);
    seed: makes random seeds and random faults repeatable;
    balance_quota: the account's money in quota (None = unlimited; 500,000 = 1 USD);
    faults: initial fault settings, the keys of ``set_faults``;
    max_result_mb: memory for result images; past it the oldest links expire early;
    urls_only: like the hosted API, no ``/sim/uploads``: inputs must be the simulator's
    own result links (while they live) or loopback URLs.
    """

    def __init__(self, latency: float = 0.5, concurrency: int = 4, link_ttl: float = 86400,
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 seed: int | None = None, balance_quota: int | None = None,
                 faults: dict[str, Any] | None = None, max_result_mb: float = 256,
                 urls_only: bool = False) -> None:
        if not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency: must be 0 or more seconds (got {latency!r})")
        if not is_whole(concurrency):
            raise ValueError(f"concurrency: must be a whole number, 1 or more (got {concurrency!r})")
        if not isinstance(link_ttl, (int, float)) or link_ttl <= 0:
            raise ValueError(f"link_ttl: must be a positive number of seconds (got {link_ttl!r})")
        if not isinstance(urls_only, bool):
            raise TypeError(f"urls_only: must be True or False (got {urls_only!r})")
        if balance_quota is not None and (isinstance(balance_quota, bool) or not isinstance(balance_quota, int)):
            raise ValueError(f"balance_quota: must be a whole number of quota or None (got {balance_quota!r})")
        self.host, self._port = host, port
        self._ledger = Ledger(balance_quota)
        self._faults = Faults(self._ledger, seed, faults)
        if not isinstance(max_result_mb, (int, float)) or max_result_mb <= 0:
            raise ValueError(f"max_result_mb: must be a positive number (got {max_result_mb!r})")
        self._files = FileStore(int(max_result_mb * 2**20))
        self._book = TaskBook(ledger=self._ledger, files=self._files, callbacks=CallbackSender(self._ledger),
                              render=_render.render, concurrency=concurrency, latency=float(latency),
                              link_ttl=float(link_ttl))
        self._api = Api(book=self._book, files=self._files, faults=self._faults, ledger=self._ledger,
                        api_key=api_key, seed=seed, urls_only=urls_only)
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Serve in a background daemon thread (idempotent). Returns self."""
        if self._server is not None:
            return self
        if self._thread is not None:
            raise RuntimeError("this Simulator was stopped; create a new one (its links and tasks are gone)")
        cls = SimHTTPServer6 if ":" in self.host else SimHTTPServer
        server = cls((self.host, self._port), self._api)
        self._port = server.server_address[1]
        server.root_url = self._book.root_url = self.url
        self._api.host, self._api.port = self.host, self._port
        self._server = server
        # stop() waits up to one poll interval: 20 ms keeps a test's teardown short; the idle
        # cost, 50 selects a second, is nothing
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"wan-nb-sim:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end open connections; tasks in flight are abandoned."""
        server, self._server = self._server, None
        if server is None:
            return
        self._book.stop()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What a client uses as its base URL."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- control -------------------------------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        """Same as GET /sim/ledger: quota held / billed / refunded, counts of everything."""
        return self._ledger.snapshot(self._book.by_status())

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Same keys as POST /sim/faults; returns the settings now in force.
        Raises ValueError naming a bad key or value."""
        return self._faults.update(**settings)

    def faults(self) -> dict[str, Any]:
        """The fault settings in force, with the scripted faults still pending."""
        return self._faults.settings()

    @property
    def urls_only(self) -> bool:
        return self._api.urls_only

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"<wan_nb Simulator {state}{' urls_only' if self.urls_only else ''}>"
