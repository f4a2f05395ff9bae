"""Every error wan_nb raises, in one tree.

    WanError                         base of everything below; catch this to catch all
    ├── RequestError (ValueError)    bad input, found before anything was sent; .problems
    ├── ConfigError                  missing API key / uploader / unusable settings; a damaged log
    │   └── LogWriteError            a write to the log did not land (locked by another
    │                                process, disk full): .why; what the server billed is kept
    │                                in memory and written when the log takes it
    ├── ApiError                     the API answered with an error; .status .code .task_id
    │   ├── InvalidRequestError      400: the server rejected a field (not billed)
    │   ├── AuthenticationError      401: bad or missing key (the key is never shown)
    │   ├── InsufficientBalanceError 402: no money left; sweeps stop
    │   ├── TaskNotFoundError        404: unknown task id (or another account's)
    │   ├── RateLimitError           429 that outlived the retry policy; .reset_at
    │   └── ServerError              5xx that outlived the retry policy
    ├── NetworkError                 no answer (connect, timeout, dropped) after retries
    ├── TaskError                    the task ended without images; .task
    │   ├── TaskFailed               status "failed"; .code (e.g. upstream_unavailable)
    │   ├── TaskCancelled            status "cancelled" (refunded)
    │   └── TaskTimeout              the overall deadline passed; .cancelled says if the
    │                                server-side task was cancelled (queued) or still runs
    ├── DownloadError                an image could not be fetched or is not an image
    │   └── LinkExpiredError         its link expired before it was fetched
    └── BudgetError                  a sweep would exceed its budget or the session's

Lower-level errors (httpx, json, KeyError) are translated at one boundary in
``_client.py`` with ``raise ... from exc``: no raw transport error reaches a user.
"""

from __future__ import annotations

from typing import Any


class WanError(Exception):
    """Base class of all wan_nb errors.

    ``run_id`` and ``run_state`` are set when a logged run stopped with this error:
    its row in the log, and the state it was left in (``"unconfirmed"``: it may have
    been billed; ``"images_lost"``: billed, links expired; see ``wan_nb._states``).
    """

    run_id: str | None = None
    run_state: str | None = None


class WanWarning(UserWarning):
    """A field that has no effect in the chosen mode, or similar advice."""


class Problem:
    """One broken rule of a request: which field, which rule, what to do."""

    __slots__ = ("field", "message", "rule")

    def __init__(self, field: str, rule: str, message: str) -> None:
        self.field = field
        self.rule = rule
        self.message = message

    def __repr__(self) -> str:
        return f"Problem({self.field!r}, {self.rule!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and (self.field, self.rule, self.message) == (
            other.field,
            other.rule,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.field, self.rule, self.message))

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class RequestError(WanError, ValueError):
    """The request breaks one or more rules; every problem is listed, nothing was sent."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} with the request:\n{lines}")

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


class ConfigError(WanError):
    """Settings that cannot work (no uploader for local images on the hosted API, ...)."""


class LogWriteError(ConfigError):
    """A write to the log did not land: another process holds its lock, or the disk is full.

    ``why`` says which, in a few words. The run pipeline keeps what the server billed in
    memory and writes it again until it lands; anything else can simply be run again.
    """

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class ApiError(WanError):
    """The API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        task_id: str | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.task_id = task_id
        self.body = body
        prefix = f"HTTP {status}" if status else "API error"
        if code:
            prefix += f" ({code})"
        super().__init__(f"{prefix}: {message}")
        self.message = message


class InvalidRequestError(ApiError):
    """400: the server rejected the request's parameters (nothing was billed)."""

    @property
    def problems(self) -> list[Problem]:
        err = (self.body or {}).get("error", {}) if isinstance(self.body, dict) else {}
        return [
            Problem(p.get("field", "?"), p.get("rule", "?"), p.get("message", ""))
            for p in err.get("problems", []) or []
            if isinstance(p, dict)
        ]


class AuthenticationError(ApiError):
    """401: the API key is missing or wrong."""


class InsufficientBalanceError(ApiError):
    """402: the account has no balance left for this request."""


class TaskNotFoundError(ApiError):
    """404: no such task (unknown id, or another account's)."""


class RateLimitError(ApiError):
    """429 that did not clear within the retry policy."""

    def __init__(self, message: str, *, reset_at: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reset_at = reset_at


class ServerError(ApiError):
    """5xx that did not clear within the retry policy."""


class NetworkError(WanError):
    """The API could not be reached (connect error, timeout, dropped connection)."""


class TaskError(WanError):
    """The task ended without images. ``.task`` is the last status seen."""

    def __init__(self, message: str, task: Any = None) -> None:
        super().__init__(message)
        self.task = task

    @property
    def task_id(self) -> str | None:
        return getattr(self.task, "task_id", None)


class TaskFailed(TaskError):
    """The task ended ``failed``; ``.code`` is the API's error code."""

    def __init__(self, message: str, task: Any = None, code: str | None = None) -> None:
        super().__init__(message, task)
        self.code = code


class TaskCancelled(TaskError):
    """The task was cancelled (its hold is refunded)."""


class TaskTimeout(TaskError):
    """The overall deadline passed before the task ended."""

    def __init__(self, message: str, task: Any = None, cancelled: bool = False) -> None:
        super().__init__(message, task)
        self.cancelled = cancelled


class DownloadError(WanError):
    """An image could not be downloaded or is not a decodable image."""


class LinkExpiredError(DownloadError):
    """The result link expired before its bytes were fetched."""


class BudgetError(WanError):
    """A sweep would cost more than its budget or what is left of the session's.

    ``confirmable``: True when ``confirm=True`` would let it start (a per-sweep budget),
    False for the session's hard cap, which nothing overrides. ``hint``: the message's last
    sentence, what to do, in code (``wan.set_budget(usd)``): a widget that has other ways
    to say it (a button, an app whose budget its host sets) shows ``with_hint(its own)``.
    """

    def __init__(self, message: str, *, cost_usd: float | None = None, limit_usd: float | None = None,
                 confirmable: bool = False, hint: str = "") -> None:
        super().__init__(f"{message} {hint}".rstrip())
        self.reason = message
        self.hint = hint
        self.cost_usd = cost_usd
        self.limit_usd = limit_usd
        self.confirmable = confirmable

    def with_hint(self, hint: str | None) -> str:
        """The message with ``hint`` as its what-to-do sentence (None: its own)."""
        return str(self) if hint is None else f"{self.reason} {hint}".rstrip()
