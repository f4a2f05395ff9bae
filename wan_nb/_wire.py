"""The wire format, in one place: JSON field names and the shapes of answers.

Requests go out as ``to_body``; the simulator reads them back with
``request_from_body``; every answer of the task endpoints is read by ``parse_task``
and every error body by ``parse_error``. The provider's pages disagree on a few
shapes (``created_at`` in seconds or milliseconds, ``progress`` as 0 or "45%"):
both are accepted here and nowhere else. A later revision of the API (task-api.md,
last section) changes this module and ``_spec.py`` only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import Problem, RequestError
from ._images import ImageRef, is_url
from ._request import Request, from_fields
from ._states import CANCELLED as CANCELLED  # a task's statuses are run states too
from ._states import COMPLETED as COMPLETED
from ._states import FAILED as FAILED
from ._states import PROCESSING as PROCESSING
from ._states import QUEUED as QUEUED

# What a task's status can be, as the API says it (a run's states, ``_states``, add the client's own).
TASK_ENDED = (COMPLETED, FAILED, CANCELLED)  # the server will not change the task any more
TASK_STATUSES = (QUEUED, PROCESSING, *TASK_ENDED)

TASKS_PATH = "/tasks"


def task_path(task_id: str) -> str:
    return f"{TASKS_PATH}/{task_id}"


def cancel_path(task_id: str) -> str:
    return f"{TASKS_PATH}/{task_id}/cancel"


def to_body(request: Request) -> dict[str, Any]:
    """The JSON body of a submit; every input image must be placed (have its URL) first."""
    body = request.canonical()
    if request.images:
        urls = [img.url for img in request.images]
        if any(u is None for u in urls):
            raise ValueError("local images must be placed (AsyncClient.prepare_inputs) before the request is sent")
        body["image_urls"] = urls
    if request.color_palette is not None:
        body["color_palette"] = [{"hex": h, "ratio": r} for h, r in request.color_palette]
    return body


def request_from_body(body: Any, rng: random.Random | None = None) -> Request:
    """A submit body checked by every rule: the simulator's entry point.

    The simulator's entry point. On the wire an image is a URL and nothing else: a
    path-like string must never make a server read its own disk. All problems (bad
    URLs, unknown keys, every other rule) are reported together.
    """
    if not isinstance(body, dict):
        raise RequestError([Problem("body", "type", "must be a JSON object")])
    urls = body.get("image_urls")
    bad_urls = [
        Problem(f"image_urls[{i}]", "url", f"must be an http(s) URL (got {u!r})")
        for i, u in enumerate(urls if isinstance(urls, list) else [])
        if not (isinstance(u, str) and is_url(u))
    ]
    checked = dict(body)
    if bad_urls:  # keep the count (and the boxes) checkable without touching the bad strings
        checked["image_urls"] = [u if isinstance(u, str) and is_url(u) else ImageRef() for u in urls or []]
    try:
        request = from_fields(checked, rng=rng)
    except RequestError as exc:
        raise RequestError(bad_urls + exc.problems) from None
    if bad_urls:
        raise RequestError(bad_urls)
    return request


def wait_header(seconds: float) -> dict[str, str]:
    """``Prefer: wait=N``: the server may hold the submit up to N (≤ 60) seconds."""
    n = max(0, min(60, int(seconds)))
    return {"Prefer": f"wait={n}"} if n else {}


@dataclass(frozen=True)
class TaskImage:
    urls: tuple[str, ...]
    expires_at: float | None


@dataclass(frozen=True)
class Task:
    """One task status as the API reported it, shapes normalised."""

    task_id: str
    status: str
    action: str | None = None
    model: str | None = None
    progress: int | None = None  # percent, None when the API gave "" or nothing
    created_at: float | None = None  # unix seconds
    completed_at: float | None = None
    cost: int | None = None  # quota actually billed (terminal states)
    pre_consumed_cost: int | None = None  # quota held at submit
    refunded_quota: int | None = None
    images: tuple[TaskImage, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    # never from the wire: what the client adds while it handles the task, for status lines
    # (e.g. "billed, not yet recorded: the disk is full")
    note: str | None = field(default=None, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TASK_ENDED

    @property
    def urls(self) -> list[str]:
        return [u for img in self.images for u in img.urls]


def _seconds(value: Any) -> float | None:
    """Unix time in seconds; values above 10^11 are milliseconds (submit answer, reset_at)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value / 1000.0 if value > 1e11 else float(value)


def _percent(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0, min(100, int(value)))
    if isinstance(value, str):
        m = re.match(r"\s*(\d+(?:\.\d+)?)\s*%?\s*$", value)
        return max(0, min(100, int(float(m.group(1))))) if m else None
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_task(data: Any) -> Task:
    """Read a submit / status / cancel answer. Raises ValueError if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("task_id"), str):
        raise ValueError(f"not a task body: {str(data)[:200]}")
    status = data.get("status")
    if status not in TASK_STATUSES:
        raise ValueError(f"unknown task status {status!r}")
    images = []
    result = data.get("result") or {}
    for item in (result.get("images") or []) if isinstance(result, dict) else []:
        if not isinstance(item, dict):
            continue
        url = item.get("url")
        urls = (url,) if isinstance(url, str) else tuple(u for u in (url or []) if isinstance(u, str))
        images.append(TaskImage(urls, _seconds(item.get("expires_at"))))
    error = data["error"] if isinstance(data.get("error"), dict) else {}
    progress = _percent(data.get("progress"))
    if status in TASK_ENDED:
        progress = 100
    return Task(
        task_id=data["task_id"],
        status=status,
        action=data.get("action"),
        model=data.get("model"),
        progress=progress,
        created_at=_seconds(data.get("created_at")),
        completed_at=_seconds(data.get("completed_at")),
        cost=_int(data.get("cost")),
        pre_consumed_cost=_int(data.get("pre_consumed_cost")),
        refunded_quota=_int(data.get("refunded_quota")),
        images=tuple(images),
        error_code=error.get("code"),
        error_message=error.get("message"),
    )


@dataclass(frozen=True)
class ErrorBody:
    code: str | None
    message: str
    extra: dict[str, Any]  # the error's other keys; ``reset_at`` in unix seconds


def parse_error(status: int, data: Any, text: str = "") -> ErrorBody:
    """``{"error": {"message", "code", ...}}``, or whatever the server sent instead."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        extra = {k: v for k, v in err.items() if k not in ("message", "code")}
        if "reset_at" in extra:  # a 429's window end, in seconds or milliseconds like created_at
            extra["reset_at"] = _seconds(extra["reset_at"])
        return ErrorBody(err.get("code"), str(err.get("message") or f"HTTP {status}"), extra)
    if isinstance(data, dict) and "message" in data:
        return ErrorBody(data.get("code"), str(data["message"]), {})
    snippet = " ".join(text.split())[:200]
    return ErrorBody(None, snippet or f"HTTP {status}", {})
