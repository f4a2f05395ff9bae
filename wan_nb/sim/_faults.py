"""Fault injection: the failures a real task API produces, on demand.

A client is only as good as its handling of 5xx answers, 429 rate limits, connections
that die without an answer, slow answers and tasks that fail. Two kinds of faults:

* random ones (``error_rate``, ``drop_rate``, ``task_fail_rate``), drawn from an RNG
  seeded by the simulator's seed so a notebook session can be replayed;
* scripted one-shot ones (``next``), consumed in order, which is what tests use to be
  deterministic: ``{"endpoint": "submit", "fault": "drop"}``.

``corrupt`` (scripted on the ``file`` endpoint, or ``corrupt_rate`` for every download)
sends a result image truncated, with a matching Content-Length: the HTTP exchange is
fine, the bytes do not decode. That is what a broken CDN or proxy does, and what a
client must not store as an image nor forget it was billed for.

``rate_cap`` / ``rate_window`` is a real rolling-window limit on submits, not a
coin flip. Its 429 says when to come back three ways, as servers do: ``reset_at`` in
the body (the server's clock), ``Retry-After`` (seconds, or an HTTP date with
``retry_after="date"``) and the ``Date`` every answer carries. ``omit_headers``
leaves ``Retry-After`` and/or ``Date`` out, so a client's fallbacks can be tried.
Random faults apply to the three task endpoints only; scripted ones may
also target ``upload`` and ``file`` (downloads). Control endpoints (``/sim/...``
ledger and faults) are never faulted, so a test can always steer the simulator.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._options import is_whole
from ._ledger import Ledger

TASK_ENDPOINTS = ("submit", "get", "cancel")
ENDPOINTS = (*TASK_ENDPOINTS, "upload", "file", "any")
KEYS = (
    "error_rate",
    "error_status",
    "rate_cap",
    "rate_window",
    "drop_rate",
    "slow",
    "task_fail_rate",
    "task_fail_code",
    "corrupt_rate",
    "omit_headers",
    "retry_after",
    "next",
    "reset",
)
DEFAULT_TASK_FAIL_CODE = "task_failed"
OMITTABLE_HEADERS = ("Retry-After", "Date")  # what ``omit_headers`` may leave out of answers
RETRY_AFTER_FORMS = ("seconds", "date")  # how a 429's Retry-After is written


class FaultConfigError(ValueError):
    """A fault setting that cannot be used; the message names the key and the rule."""


@dataclass
class RateLimit:
    """What a 429 ``quota_window_exceeded`` answer reports."""

    window: float
    used: int
    cap: int
    reset_at: int  # unix seconds
    retry_after: int  # seconds
    retry_after_date: bool = False  # send Retry-After as an HTTP date (of reset_at), not seconds


@dataclass
class Decision:
    """What to do to one request. ``status``: answer this error without doing the work;
    ``drop``: do the work, then close the connection without answering (the nastiest
    case: a submit's task exists but the client never heard of it); ``delay``: seconds
    to wait before answering."""

    status: int | None = None
    rate: RateLimit | None = None
    drop: bool = False
    corrupt: bool = False  # answer with the body truncated (file downloads)
    delay: float = 0.0
    kinds: list[str] = field(default_factory=list)


@dataclass
class Scripted:
    endpoint: str
    fault: str

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "fault": self.fault}


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FaultConfigError(f"{key}: must be a fraction between 0 and 1 (got {value!r})")
    return float(value)


def _seconds(key: str, value: Any, allow_zero: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (not allow_zero and value == 0):
        rule = "a number of seconds, 0 or more" if allow_zero else "a positive number of seconds"
        raise FaultConfigError(f"{key}: must be {rule} (got {value!r})")
    return float(value)


def _parse_scripted(i: int, item: Any) -> Scripted:
    where = f"next[{i}]"
    if not isinstance(item, dict) or set(item) - {"endpoint", "fault"} or "fault" not in item:
        raise FaultConfigError(f'{where}: must be {{"endpoint": ..., "fault": ...}} (got {item!r})')
    endpoint = item.get("endpoint", "any")
    fault = item["fault"]
    if endpoint not in ENDPOINTS:
        raise FaultConfigError(f"{where}.endpoint: must be one of {', '.join(ENDPOINTS)} (got {endpoint!r})")
    if not isinstance(fault, str):
        raise FaultConfigError(f"{where}.fault: must be text (got {fault!r})")
    if (fault.isdigit() and (fault == "429" or 500 <= int(fault) <= 599)) or fault == "drop":
        pass
    elif fault == "corrupt":
        if endpoint != "file":
            raise FaultConfigError(f'{where}: "corrupt" truncates an image download, so endpoint must be file')
    elif fault.startswith("slow:"):
        _seconds(f"{where}.fault", _number(fault[5:]))
    elif fault.startswith("fail_task:") and fault[10:].strip():
        if endpoint not in ("submit", "any"):
            raise FaultConfigError(
                f"{where}: fail_task applies to the next task created, so endpoint must be submit or any"
            )
    else:
        raise FaultConfigError(
            f'{where}.fault: must be "500", "503" (any 5xx), "429", "drop", "slow:<seconds>", '
            f'"corrupt" (file) or "fail_task:<code>" (got {fault!r})'
        )
    return Scripted(endpoint, fault)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class Faults:
    """Current fault settings, the scripted queue, and the rolling submit window."""

    def __init__(self, ledger: Ledger, seed: int | None = None, settings: dict[str, Any] | None = None) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._rng = random.Random(None if seed is None else f"faults:{seed}")
        self._defaults()
        self._window: deque[float] = deque()
        if settings:
            self.update(**settings)

    def _defaults(self) -> None:
        self.error_rate = 0.0
        self.error_status = 503
        self.rate_cap: int | None = None
        self.rate_window = 60.0
        self.drop_rate = 0.0
        self.slow = 0.0
        self.task_fail_rate = 0.0
        self.task_fail_code = DEFAULT_TASK_FAIL_CODE
        self.corrupt_rate = 0.0
        self.omit_headers: tuple[str, ...] = ()
        self.retry_after = "seconds"
        self.scripted: list[Scripted] = []

    # -- settings ----------------------------------------------------------------------
    def update(self, **kw: Any) -> dict[str, Any]:
        """Change the given settings (all checked before any is applied). ``next``
        replaces the scripted queue; ``reset=True`` first restores every default."""
        unknown = sorted(set(kw) - set(KEYS))
        if unknown:
            raise FaultConfigError(f"unknown fault setting(s) {', '.join(unknown)}; settings are {', '.join(KEYS)}")
        new: dict[str, Any] = {}
        for key in ("error_rate", "drop_rate", "task_fail_rate", "corrupt_rate"):
            if key in kw:
                new[key] = _fraction(key, kw[key])
        if "error_status" in kw:
            v = kw["error_status"]
            if isinstance(v, bool) or not isinstance(v, int) or not 500 <= v <= 599:
                raise FaultConfigError(f"error_status: must be an HTTP status 500-599 (got {v!r})")
            new["error_status"] = v
        if "rate_cap" in kw:
            v = kw["rate_cap"]
            if v is not None and not is_whole(v):
                raise FaultConfigError(f"rate_cap: must be a whole number of submits, 1 or more, or null (got {v!r})")
            new["rate_cap"] = v
        if "rate_window" in kw:
            new["rate_window"] = _seconds("rate_window", kw["rate_window"], allow_zero=False)
        if "slow" in kw:
            new["slow"] = _seconds("slow", kw["slow"])
        if "task_fail_code" in kw:
            v = kw["task_fail_code"]
            if not isinstance(v, str) or not v.strip():
                raise FaultConfigError(f"task_fail_code: must be a non-empty error code (got {v!r})")
            new["task_fail_code"] = v
        if "omit_headers" in kw:
            v = kw["omit_headers"] or []
            names = {h.lower(): h for h in OMITTABLE_HEADERS}
            if not isinstance(v, (list, tuple)) or not all(isinstance(h, str) and h.lower() in names for h in v):
                raise FaultConfigError(f"omit_headers: must be a list of header names from "
                                       f"{', '.join(OMITTABLE_HEADERS)} (got {v!r})")
            new["omit_headers"] = tuple(dict.fromkeys(names[h.lower()] for h in v))
        if "retry_after" in kw:
            v = kw["retry_after"]
            if v not in RETRY_AFTER_FORMS:
                raise FaultConfigError(f"retry_after: must be one of {', '.join(RETRY_AFTER_FORMS)} (got {v!r})")
            new["retry_after"] = v
        if "next" in kw:
            items = kw["next"] or []
            if not isinstance(items, list):
                raise FaultConfigError("next: must be a list of {endpoint, fault} items")
            new["scripted"] = [_parse_scripted(i, item) for i, item in enumerate(items)]
        with self._lock:
            if kw.get("reset"):
                self._defaults()
                self._window.clear()
            for key, value in new.items():
                setattr(self, key, value)
        return self.settings()

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {
                "error_rate": self.error_rate,
                "error_status": self.error_status,
                "rate_cap": self.rate_cap,
                "rate_window": self.rate_window,
                "drop_rate": self.drop_rate,
                "slow": self.slow,
                "task_fail_rate": self.task_fail_rate,
                "task_fail_code": self.task_fail_code,
                "corrupt_rate": self.corrupt_rate,
                "omit_headers": list(self.omit_headers),
                "retry_after": self.retry_after,
                "next": [s.as_dict() for s in self.scripted],
            }

    # -- decisions ---------------------------------------------------------------------
    def _take(self, endpoint: str, fail_task: bool) -> Scripted | None:
        """First scripted fault for this endpoint (and kind), removed from the queue."""
        for i, s in enumerate(self.scripted):
            kind_ok = s.fault.startswith("fail_task:") == fail_task
            if kind_ok and (s.endpoint == endpoint or (s.endpoint == "any" and endpoint in TASK_ENDPOINTS)):
                return self.scripted.pop(i)
        return None

    def for_request(self, endpoint: str) -> Decision:
        """Decide what happens to one request on ``endpoint`` before it is handled."""
        d = Decision()
        with self._lock:
            if endpoint in TASK_ENDPOINTS and self.slow:
                d.delay += self.slow
            s = self._take(endpoint, fail_task=False)
            if s is not None:
                if s.fault == "drop":
                    d.drop = True
                elif s.fault == "corrupt":
                    d.corrupt = True
                elif s.fault.startswith("slow:"):
                    d.delay += float(s.fault[5:])
                elif s.fault == "429":
                    d.status = 429
                    now = time.time()
                    d.rate = RateLimit(self.rate_window, self.rate_cap or 1, self.rate_cap or 1, math.ceil(now + 1), 1,
                                       self.retry_after == "date")
                else:
                    d.status = int(s.fault)
            elif endpoint == "file" and self.corrupt_rate and self._rng.random() < self.corrupt_rate:
                d.corrupt = True
            elif endpoint in TASK_ENDPOINTS:
                if self.error_rate and self._rng.random() < self.error_rate:
                    d.status = self.error_status
                elif self.drop_rate and self._rng.random() < self.drop_rate:
                    d.drop = True
        if d.status == 429:
            d.kinds.append("rate_limited")
        elif d.status:
            d.kinds.append("error_5xx")
        if d.drop:
            d.kinds.append("drop")
        if d.corrupt:
            d.kinds.append("corrupt")
        if d.delay:
            d.kinds.append("slow")
        for kind in d.kinds:
            self._ledger.count("faults", kind)
        return d

    def admit_submit(self) -> RateLimit | None:
        """The real rolling-window cap on submits: None = admitted (and counted)."""
        with self._lock:
            if self.rate_cap is None:
                return None
            now = time.time()
            while self._window and self._window[0] <= now - self.rate_window:
                self._window.popleft()
            if len(self._window) < self.rate_cap:
                self._window.append(now)
                return None
            reset = self._window[0] + self.rate_window
            limit = RateLimit(
                self.rate_window, len(self._window), self.rate_cap, math.ceil(reset), max(1, math.ceil(reset - now)),
                self.retry_after == "date",
            )
        self._ledger.count("faults", "rate_limited")
        return limit

    def omitted(self, name: str) -> bool:
        """Is the header ``name`` left out of every answer (``omit_headers``)?"""
        return any(h.lower() == name.lower() for h in self.omit_headers)

    def task_failure(self) -> str | None:
        """Error code a new task must end with (scripted first, then task_fail_rate)."""
        with self._lock:
            s = self._take("submit", fail_task=True)
            if s is not None:
                code = s.fault[len("fail_task:") :]
            elif self.task_fail_rate and self._rng.random() < self.task_fail_rate:
                code = self.task_fail_code
            else:
                return None
        self._ledger.count("faults", "fail_task")
        return code
