"""The simulator's endpoints as plain functions: request in, ``Response`` out.

Kept apart from the socket code so that what an endpoint answers (task-api.md's
bodies, status codes and error codes) reads in one place, and fault injection (which
needs the socket) stays in ``_server``. Error bodies are always
``{"error": {"message", "code", ...}}``; a 400 lists every problem, each naming the
field and the rule.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import Problem, RequestError
from .._text import canonical_json
from ._faults import FaultConfigError, Faults, RateLimit
from ._files import FileAnswer, FileStore
from ._inputs import InputResolver, make_upload, prepare
from ._ledger import Ledger
from ._net import is_loopback_host
from ._tasks import IdempotencyConflict, InsufficientBalance, NotCancellable, NotFound, TaskBook

MAX_WAIT = 60.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass
class Response:
    status: int
    payload: Any  # dict (sent as JSON) or bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        if isinstance(self.payload, (bytes, bytearray)):
            return bytes(self.payload)
        return json.dumps(self.payload, ensure_ascii=False).encode("utf-8")


def error(status: int, code: str, message: str, headers: dict[str, Any] | None = None, **extra: Any) -> Response:
    return Response(status, {"error": {"message": message, "code": code, **extra}}, headers=headers or {})


def invalid(err: RequestError) -> Response:
    """400 naming every field and rule, in the message and as ``problems``."""
    return error(400, "invalid_parameter", str(err), problems=[p.as_dict() for p in err.problems])


def invalid_one(field_name: str, rule: str, message: str) -> Response:
    return invalid(RequestError([Problem(field_name, rule, message)]))


def rate_limited(limit: RateLimit) -> Response:
    """429 ``quota_window_exceeded``: ``reset_at`` (server clock) in the body, ``Retry-After`` in
    seconds, or as the HTTP date of ``reset_at`` when the simulator is set to write it so."""
    message = (f"too many submits: {limit.used} of {limit.cap} allowed in {limit.window:g} s; "
               f"retry after reset_at ({limit.retry_after} s)")
    retry_after = (email.utils.formatdate(limit.reset_at, usegmt=True) if limit.retry_after_date
                   else str(limit.retry_after))
    return error(429, "quota_window_exceeded", message, headers={"Retry-After": retry_after},
                 window=limit.window, used=limit.used, cap=limit.cap, reset_at=limit.reset_at)


def server_error(status: int) -> Response:
    code = "service_unavailable" if status == 503 else "server_error"
    return error(status, code, f"simulated server error (HTTP {status}); retrying may succeed")


def prefer_wait(header: str | None) -> float:
    """Seconds from ``Prefer: wait=N`` (capped at 60), 0 when absent."""
    m = _PREFER_WAIT.search(header or "")
    return min(MAX_WAIT, float(m.group(1))) if m else 0.0


def fingerprint(body: Any) -> str:
    # surrogatepass: a body may carry a lone surrogate, which the rules then refuse with a 400
    return hashlib.sha256(canonical_json(body).encode("utf-8", "surrogatepass")).hexdigest()


class Api:
    def __init__(self, *, book: TaskBook, files: FileStore, faults: Faults, ledger: Ledger,
                 api_key: str | None, seed: int | None, urls_only: bool = False) -> None:
        self.book, self.files, self.faults, self.ledger = book, files, faults, ledger
        self._api_key = api_key
        self._seeds = random.Random(None if seed is None else f"seeds:{seed}")
        self._seeds_lock = threading.Lock()
        self.host, self.port = "127.0.0.1", 0  # set by Simulator.start()
        self.urls_only = urls_only  # hosted-like: no /sim/uploads, no placeholders for other hosts
        self.resolver = InputResolver(self.own_file, urls_only)

    # -- helpers ---------------------------------------------------------------------------
    def authorize(self, header: str | None) -> Response | None:
        """None when the Bearer key is acceptable; never echoes the key."""
        scheme, _, key = (header or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return error(401, "unauthorized", "missing API key: send the header Authorization: Bearer <key>")
        if self._api_key is not None and not hmac.compare_digest(key.encode(), self._api_key.encode()):
            return error(401, "unauthorized", "invalid API key")
        return None

    def own_file(self, url: str) -> FileAnswer | None:
        """The simulator's own file behind a URL, without an HTTP round trip."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return None
        ours = is_loopback_host(parts.hostname) or parts.hostname == self.host.lower()
        if ours and port == self.port and parts.path.startswith("/sim/files/"):
            return self.files.get(parts.path[len("/sim/files/"):])
        return None

    def _request_rng(self) -> random.Random:
        with self._seeds_lock:
            return random.Random(self._seeds.getrandbits(64))

    # -- task endpoints --------------------------------------------------------------------
    def submit(self, headers: Any, raw: bytes) -> Response:
        limit = self.faults.admit_submit()
        if limit is not None:
            return rate_limited(limit)
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, ValueError):
            return invalid_one("body", "json", "must be a JSON object (it is not valid JSON)")
        except RecursionError:
            return invalid_one("body", "json_depth", "is nested too deeply to be a request (arrays or objects "
                                                     "inside each other thousands of levels down)")
        key = (headers.get("Idempotency-Key") or "").strip() or None
        fp = fingerprint(body)
        try:
            answer = self.book.replay(key, fp)
            replayed = answer is not None
            if answer is None:
                prepared = prepare(body, self._request_rng(), self.resolver)
                answer, replayed = self.book.create(prepared, fp, key, self.faults.task_failure)
        except RequestError as err:
            return invalid(err)
        except IdempotencyConflict:
            return invalid_one("Idempotency-Key", "same_body",
                               "was already used with a different request body; use a new key for a new request")
        except InsufficientBalance as exc:
            return error(402, "insufficient_balance",
                         f"this request needs {exc.need} quota held and the account has {max(0, exc.left)} left")
        out_headers = {"Idempotent-Replayed": "true"} if replayed else {}
        wait = prefer_wait(headers.get("Prefer"))
        if wait > 0:
            held = answer["pre_consumed_cost"]
            answer = {**self.book.wait(answer["task_id"], wait), "pre_consumed_cost": held}
            out_headers["Preference-Applied"] = f"wait={wait:g}"
        return Response(200, answer, headers=out_headers)

    def get(self, task_id: str) -> Response:
        try:
            return Response(200, self.book.status(task_id))
        except NotFound:
            return error(404, "task_not_found", f"no task {task_id!r}")

    def cancel(self, task_id: str) -> Response:
        try:
            return Response(200, self.book.cancel(task_id))
        except NotFound:
            return error(404, "task_not_found", f"no task {task_id!r}")
        except NotCancellable as exc:
            return error(400, "task_not_cancellable",
                         f"task is {exc.status}; only a queued task can be cancelled")

    # -- simulator endpoints ---------------------------------------------------------------
    def upload(self, raw: bytes, root_url: str) -> Response:
        try:
            up = self.files.put_upload(make_upload(raw))
        except RequestError as err:
            return invalid(err)
        return Response(200, {"url": f"{root_url}/sim/files/{up.path}", "width": up.width,
                              "height": up.height, "format": up.format})

    def file(self, path: str) -> Response:
        found = self.files.get(path)
        if found.found:
            return Response(200, found.data, content_type=found.content_type,
                            headers={"Cache-Control": "no-store"})
        if found.expired_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(found.expired_at))
            return error(410, "link_expired", f"this result link expired at {when} ({found.expired_at}, unix "
                                              "seconds); results must be downloaded when the task ends",
                         expired_at=found.expired_at)
        return error(404, "not_found", "no such file")

    def ledger_view(self) -> Response:
        return Response(200, self.ledger.snapshot(self.book.by_status()))

    def set_faults(self, raw: bytes) -> Response:
        try:
            settings = json.loads(raw.decode("utf-8") or "{}")
            if not isinstance(settings, dict):
                raise FaultConfigError("body: must be a JSON object of fault settings")
            return Response(200, self.faults.update(**settings))
        except RecursionError:
            return error(400, "invalid_parameter", "body: nested too deeply")
        except (UnicodeDecodeError, ValueError) as exc:
            message = str(exc) if isinstance(exc, FaultConfigError) else "body: must be a JSON object"
            return error(400, "invalid_parameter", message)

    def faults_view(self) -> Response:
        return Response(200, self.faults.settings())
