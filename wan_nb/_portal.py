"""Run the async core from synchronous code: in a plain script and inside Jupyter.

Jupyter's kernel already runs an event loop in the main thread, so ``asyncio.run``
cannot be used there. Instead of patching that loop (nest_asyncio), wan_nb keeps one
event loop in a daemon thread and hands coroutines to it. Why: the same code path
works in scripts, kernels and widget callbacks; sweeps keep running in the
background while the user runs other cells; and Ctrl-C / "interrupt kernel" in the
waiting thread cancels the coroutine, which then cancels its queued task on the
server before the interrupt is re-raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_portal: Portal | None = None

CLEANUP_SECONDS = 15.0  # how long an interrupt waits for server-side cancels


class Portal:
    """An event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="wan_nb-portal", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def in_portal(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start a coroutine on the portal loop; do not wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], tick: Callable[[], None] | None = None) -> T:
        """Run a coroutine to its end and return its result, re-raising its error.

        ``tick`` is called in the waiting thread every 0.1 s (e.g. to redraw a status
        line from the thread that owns the notebook output).
        """
        if self.in_portal():
            coro.close()
            raise RuntimeError("a synchronous wan_nb call was made from inside an async wan_nb callback")
        finished = threading.Event()

        async def guard() -> T:
            try:
                return await coro
            finally:
                finished.set()  # after the coroutine's own cleanup (server-side cancels)

        fut = self.submit(guard())
        try:
            # Wait in short slices so Ctrl-C is seen; never use result(timeout=) for this:
            # on 3.11 its TimeoutError is the coroutine's own TimeoutError too.
            while not concurrent.futures.wait([fut], timeout=0.1).done:
                if tick is not None:
                    tick()
            return fut.result()
        except KeyboardInterrupt:
            fut.cancel()  # cancels the task on the loop; its cleanup runs there
            with contextlib.suppress(KeyboardInterrupt):
                finished.wait(CLEANUP_SECONDS)
            raise


def get_portal() -> Portal:
    global _portal
    with _lock:
        if _portal is None or not _portal.thread.is_alive():
            _portal = Portal()
        return _portal

