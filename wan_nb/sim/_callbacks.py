"""Webhook callbacks: POST a task's status body when its state changes.

The provider documents neither payload nor event names, so the simulator sends the
status body (the same JSON as ``GET /v1/tasks/{id}``) on the terminal state, plus on
every state whose name is listed in ``callback_events``. Deliveries run in background
threads (never blocking the scheduler), in order per task, with a 5 s timeout; errors
are swallowed and counted in the ledger. Only loopback URLs are ever POSTed: the
simulator stays off the network, and says so (task notes, ledger ``skipped``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from ._ledger import Ledger
from ._net import is_loopback_url, loopback_client

TIMEOUT = 5.0


class CallbackSender:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[str, dict[str, Any], str]]] = {}  # task_id -> pending (url, body, event)

    def allowed(self, url: str) -> bool:
        return is_loopback_url(url)

    def skip(self) -> None:
        self._ledger.count("callbacks", "skipped")

    def send(self, task_id: str, url: str, body: dict[str, Any], event: str) -> None:
        """Queue one delivery; returns at once. Safe to call while holding other locks."""
        with self._lock:
            queue = self._queues.get(task_id)
            if queue is not None:  # a sender thread is already draining this task
                queue.append((url, body, event))
                return
            self._queues[task_id] = deque([(url, body, event)])
        threading.Thread(target=self._drain, args=(task_id,), name=f"sim-callback-{task_id}", daemon=True).start()

    def _drain(self, task_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[task_id]
                if not queue:
                    del self._queues[task_id]
                    return
                url, body, event = queue.popleft()
            self._post(url, body, event)

    def _post(self, url: str, body: dict[str, Any], event: str) -> None:
        try:
            with loopback_client(TIMEOUT) as client:
                resp = client.post(url, content=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json", "X-Sim-Event": event})
            self._ledger.count("callbacks", "sent" if resp.status_code < 300 else "failed")
        except Exception:  # noqa: BLE001 - a receiver that fails in any way is counted, never crashes the simulator
            self._ledger.count("callbacks", "failed")
