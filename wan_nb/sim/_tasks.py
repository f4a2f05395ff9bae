"""Tasks: the state machine, the FIFO scheduler, idempotency and billing.

States follow task-api.md: ``queued → processing → completed | failed`` and
``queued → cancelled``. At most ``concurrency`` tasks are processing; the others wait
queued in submit order, which is what makes "cancel a queued task" and "a sweep
bigger than the service's concurrency" testable. Each processing task takes about
``latency`` seconds (0.5x-1.5x, from the task's seed: repeatable) and renders its
images in its own worker thread, never under the book's lock.

Money moves only here: a submit holds ``n × unit`` quota, completion bills the hold,
failure and cancellation refund all of it. An ``Idempotency-Key`` seen within 24 h
returns the task it created (billed once); the same key with a different body is an
error, because silently returning another request's images is worse than failing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .._request import Request
from .._wire import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, TASK_ENDED, TASK_STATUSES
from ._callbacks import CallbackSender
from ._files import FileStore
from ._inputs import Prepared
from ._ledger import Ledger
from ._render import rng_for

IDEMPOTENCY_TTL = 24 * 3600.0

Renderer = Callable[[Request, Sequence[Image.Image]], list[bytes]]


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different request body."""


class InsufficientBalance(Exception):
    def __init__(self, need: int, left: int) -> None:
        super().__init__(need, left)
        self.need, self.left = need, left


class NotFound(Exception):
    pass


class NotCancellable(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(eq=False)
class Task:
    id: str
    request: Request
    inputs: list[Image.Image]
    notes: list[str]
    held: int
    created: float  # unix seconds
    fail_code: str | None = None
    status: str = QUEUED
    started: float = 0.0  # monotonic
    duration: float = 0.0
    completed_at: float | None = None
    cost: int | None = None
    error: tuple[str, str] | None = None
    expires_at: float | None = None


class TaskBook:
    """All tasks, under one Condition. ``root_url`` is set once the server has a port."""

    def __init__(self, *, ledger: Ledger, files: FileStore, callbacks: CallbackSender, render: Renderer,
                 concurrency: int, latency: float, link_ttl: float) -> None:
        self.ledger, self.files, self.callbacks, self.render = ledger, files, callbacks, render
        self.concurrency, self.latency, self.link_ttl = concurrency, latency, link_ttl
        self.root_url = ""  # e.g. http://127.0.0.1:8765 (links are built from it)
        self._cond = threading.Condition()
        self._tasks: dict[str, Task] = {}
        self._queue: deque[Task] = deque()
        self._running = 0
        self._idem: OrderedDict[str, tuple[str, str, float]] = OrderedDict()  # key -> (task id, fingerprint, time)
        self._stopped = False

    # -- submit ------------------------------------------------------------------------
    def _replay_locked(self, key: str | None, fingerprint: str) -> Task | None:
        if not key:
            return None
        cutoff = time.time() - IDEMPOTENCY_TTL
        while self._idem and next(iter(self._idem.values()))[2] < cutoff:
            self._idem.popitem(last=False)
        entry = self._idem.get(key)
        if entry is None:
            return None
        if entry[1] != fingerprint:
            raise IdempotencyConflict(key)
        self.ledger.replayed()
        return self._tasks[entry[0]]

    def replay(self, key: str | None, fingerprint: str) -> dict[str, Any] | None:
        """The submit answer of the task this key created, or None for a new key."""
        with self._cond:
            task = self._replay_locked(key, fingerprint)
            return None if task is None else self._submit_body(task)

    def create(self, prepared: Prepared, fingerprint: str, key: str | None,
               fail_code: Callable[[], str | None]) -> tuple[dict[str, Any], bool]:
        """(submit answer, replayed). Raises InsufficientBalance, IdempotencyConflict."""
        req = prepared.request
        with self._cond:
            task = self._replay_locked(key, fingerprint)  # a concurrent twin may have won
            if task is not None:
                return self._submit_body(task), True
            left = self.ledger.left()
            if left is not None and req.cost_quota > left:
                raise InsufficientBalance(req.cost_quota, left)
            task = Task("task-sim" + secrets.token_hex(10), req, prepared.inputs, list(prepared.notes),
                        req.cost_quota, time.time(), fail_code())
            if req.callback_url and not self.callbacks.allowed(req.callback_url):
                task.notes.append("callback_url is not on loopback, so no callback is sent (the simulator "
                                  "stays off the network)")
            self.ledger.hold(task.held)
            self._tasks[task.id] = task
            self._queue.append(task)
            if key:
                self._idem[key] = (task.id, fingerprint, task.created)
            body = self._submit_body(task, fresh=True)
            self._changed(task)
            self._pump()
            return body, False

    # -- scheduler -----------------------------------------------------------------------
    def _pump(self) -> None:
        """Start queued tasks, oldest first, while a processing slot is free."""
        while self._queue and self._running < self.concurrency and not self._stopped:
            task = self._queue.popleft()
            try:
                jitter = 0.5 + rng_for("latency", task.request.seed, task.request.prompt).random()
            except Exception as exc:  # noqa: BLE001 - a task that cannot start must end (refunded), not hold its quota
                task.status, task.cost, task.completed_at = FAILED, 0, time.time()
                task.error = ("task_failed", f"the task could not start: {type(exc).__name__}")
                self.ledger.refund(task.held)
                self._changed(task)
                continue
            task.status = PROCESSING
            task.started = time.monotonic()
            task.duration = self.latency * jitter
            self._running += 1
            self._changed(task)
            threading.Thread(target=self._work, args=(task,), name=f"sim-{task.id}", daemon=True).start()

    def _work(self, task: Task) -> None:
        images: list[bytes] | None = None
        error = None
        if task.fail_code is not None:
            error = (task.fail_code, f"simulated task failure ({task.fail_code})")
        else:
            try:
                images = self.render(task.request, task.inputs)
            except Exception as exc:  # noqa: BLE001 - a renderer bug must still end the task (refunded)
                error = ("task_failed", f"rendering failed: {type(exc).__name__}: {exc}")
        with self._cond:
            while not self._stopped:
                remaining = task.started + task.duration - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._running -= 1
            task.completed_at = time.time()
            task.inputs = []
            if error is None and images is not None:
                task.status, task.cost = COMPLETED, task.held
                task.expires_at = task.completed_at + self.link_ttl
                self.files.publish(task.id, images, task.expires_at)
                self.ledger.bill(task.held, len(images))
            else:
                task.status, task.cost, task.error = FAILED, 0, error
                self.ledger.refund(task.held)
            self._changed(task)
            self._pump()
            self._cond.notify_all()

    # -- other operations ----------------------------------------------------------------
    def status(self, task_id: str) -> dict[str, Any]:
        with self._cond:
            return self._status_body(self._get(task_id))

    def wait(self, task_id: str, timeout: float) -> dict[str, Any]:
        """Status body once the task is terminal, or when ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            task = self._get(task_id)
            while task.status not in TASK_ENDED and not self._stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._status_body(task)

    def cancel(self, task_id: str) -> dict[str, Any]:
        with self._cond:
            task = self._get(task_id)
            if task.status != QUEUED:
                raise NotCancellable(task.status)
            self._queue.remove(task)
            task.status, task.cost, task.completed_at = CANCELLED, 0, time.time()
            task.inputs = []
            self.ledger.refund(task.held)
            self._changed(task)
            self._cond.notify_all()
            return {"task_id": task.id, "status": CANCELLED, "refunded": True, "refunded_quota": task.held}

    def by_status(self) -> dict[str, int]:
        with self._cond:
            counts = Counter(t.status for t in self._tasks.values())
        return {s: counts.get(s, 0) for s in TASK_STATUSES}

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- bodies (call with the lock held) --------------------------------------------------
    def _get(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(task_id)
        return task

    def _progress(self, task: Task) -> str:
        if task.status in TASK_ENDED:
            return "100%"
        if task.status == QUEUED:
            return ""
        done = (time.monotonic() - task.started) / task.duration if task.duration > 0 else 1.0
        return f"{min(99, max(0, int(done * 100)))}%"

    def _submit_body(self, task: Task, fresh: bool = False) -> dict[str, Any]:
        """The submit answer; on a replay it reports the task's current state."""
        return {
            "task_id": task.id,
            "model": task.request.model,
            "action": task.request.action,
            "status": task.status,
            "created_at": int(task.created * 1000),
            "progress": 0 if fresh or task.status == QUEUED else self._progress(task),
            "pre_consumed_cost": task.held,
        }

    def _status_body(self, task: Task) -> dict[str, Any]:
        base = f"{self.root_url}/v1/tasks/{task.id}"
        body: dict[str, Any] = {
            "task_id": task.id,
            "status": task.status,
            "action": task.request.action,
            "model": task.request.model,
            "progress": self._progress(task),
            "created_at": int(task.created),
            "urls": {"get": base, "cancel": base + "/cancel"},
        }
        if task.status in TASK_ENDED:
            body["completed_at"] = int(task.completed_at or task.created)
            body["cost"] = task.cost or 0
        if task.status == COMPLETED:
            expires = self.files.expires_at(task.id) or task.expires_at or 0  # earlier if evicted
            body["result"] = {"images": [
                {"url": [f"{self.root_url}/sim/files/results/{task.id}/{i}.jpg"], "expires_at": int(expires)}
                for i in range(task.request.n)
            ]}
        if task.status == FAILED and task.error:
            body["error"] = {"message": task.error[1], "code": task.error[0]}
        body["sim"] = {"seed": task.request.seed, "notes": list(task.notes)}
        return body

    def _changed(self, task: Task) -> None:
        """A state change: callback on terminal states and on states the request listed."""
        url = task.request.callback_url
        if not url or not (task.status in TASK_ENDED or task.status in task.request.callback_events):
            return
        if not self.callbacks.allowed(url):
            self.callbacks.skip()
            return
        self.callbacks.send(task.id, url, self._status_body(task), task.status)
