"""The client for the hosted task API: submit, get, cancel, wait, download, run.

``AsyncClient`` is the only implementation. The I/O-free parts it stands on are
shared modules: ``_request`` (rules), ``_wire`` (body builders and answer parsers),
``_retry`` (what to retry, how long to wait). ``Client`` is the same object seen
from synchronous code: each of its methods hands the async method to the portal
loop (``_portal``), so the two cannot drift apart.

This module is also the one boundary where transport errors (httpx), bad JSON and
surprising shapes become wan_nb exceptions (``raise ... from exc``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Concatenate, ParamSpec, TypeVar

import httpx

from . import _clock, _config, _spec, _wire
from ._exceptions import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DownloadError,
    InsufficientBalanceError,
    InvalidRequestError,
    LinkExpiredError,
    NetworkError,
    Problem,
    RateLimitError,
    RequestError,
    ServerError,
    TaskCancelled,
    TaskFailed,
    TaskNotFoundError,
    TaskTimeout,
    WanError,
)
from ._formats import content_type
from ._images import ImageInputError, ImageRef
from ._portal import get_portal
from ._request import Request, as_request
from ._retry import DEFAULT_POLICY, RateGate, RetryPolicy, poll_delays
from ._store import Store, StoredImage
from ._wire import Task

Uploader = Callable[[bytes, str], str | Awaitable[str]]  # a real type, not a string: it resolves wherever it is used
OnUpdate = Callable[[Task], Any]
P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("wan_nb")  # retries and waits, at INFO; never headers or keys

_STATUS_ERRORS = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    404: TaskNotFoundError,
    429: RateLimitError,
}


@dataclass(frozen=True)
class RunOutcome:
    """What ``run`` returns: the final task, its images on disk, and how it got there.

    ``complete`` returns one before the download: ``images`` empty, ``downloaded_at`` None.
    """

    request: Request
    task: Task
    images: list[StoredImage]
    idempotency_key: str
    submitted_at: float
    finished_at: float
    downloaded_at: float | None
    attempts: int = 1


class AsyncClient:
    """Async client of the Wan 2.7 task API (hosted, or the built-in simulator).

    ``api_key``: argument, else ``WAVE_API_KEY``. ``base_url``: argument, else
    ``WAN_NB_BASE_URL``, else the hosted API. ``uploader(data, content_type) -> url``
    makes local images reachable for the hosted API (which only takes URLs); on a
    loopback base URL the simulator's own upload endpoint is used. A result used as an
    input goes out as its own result link while that lives ``link_margin`` seconds more.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        store: Store | None = None,
        uploader: Uploader | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = _config.DEFAULT_TIMEOUT,
        prefer_wait: int = _config.PREFER_WAIT,
        http_timeout: float = _config.HTTP_TIMEOUT,
        link_margin: float = _config.LINK_MARGIN,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = _config.api_key(api_key)
        if not key:
            raise ConfigError(
                f"no API key: pass api_key=... or set {_config.ENV_API_KEY} "
                "(wan.connect() without a key starts the built-in simulator)"
            )
        self.__key = key  # name-mangled: not in vars() listings by accident, never in repr
        self.base_url = _config.base_url(base_url)
        self.store = store or Store(_config.home())
        self.retry = retry or DEFAULT_POLICY
        self.timeout = timeout
        self.prefer_wait = prefer_wait
        self.http_timeout = http_timeout  # one HTTP exchange; a held submit adds its wait
        self._uploader = uploader
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._uploaded: dict[str, str] = {}  # sha256 -> URL, so an image is uploaded once
        self._sim_uploads = True  # until a loopback server says it has no /sim/uploads
        self.link_margin = link_margin  # a result link is reused only while it lives this much longer
        self.rate_gate = RateGate()  # shared by all calls (and so all sweep cells) of this client
        # the API's clock as seen in its Date headers: its timestamps (reset_at, expires_at) are read on it
        self.server_clock = _clock.ServerClock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} base_url={self.base_url!r} api_key=***>"

    @property
    def is_loopback(self) -> bool:
        return _config.is_loopback_url(self.base_url)

    # -- the one HTTP boundary -------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        # Created on first use, inside the loop that uses it (httpx binds to it).
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.http_timeout, connect=min(10.0, self.http_timeout)),
                transport=self._transport,
                follow_redirects=True,
            )
        return self._http

    def _scrub(self, text: str) -> str:
        return text.replace(self.__key, "***") if self.__key else text

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
        task_id: str | None = None,
        sink: FileSink | None = None,
    ) -> httpx.Response:
        """One logical call with the retry policy applied; returns a 2xx response.

        ``sink``: a 2xx body is streamed into it (started afresh on each attempt)
        instead of being held in memory; the response returned has no content.
        """
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {self.__key}"
        policy = self.retry
        attempt = 0
        rate_hits = 0  # 429s this call has had
        waited_for_rate = 0.0
        while True:
            attempt += 1
            if auth and self.rate_gate.remaining:
                await asyncio.sleep(self.rate_gate.remaining)
            try:
                resp = await self._exchange(method, url, hdrs, json_body, content, timeout, sink)
            except httpx.TransportError as exc:  # connect errors, timeouts, dropped connections
                if attempt >= policy.max_attempts:
                    raise NetworkError(
                        f"no answer from {_host(url)} after {attempt} attempts ({type(exc).__name__})"
                    ) from exc
                wait = policy.backoff(attempt)
                log.info("%s %s: %s; retry %d in %.1f s", method, _path(url), type(exc).__name__, attempt, wait)
                await asyncio.sleep(wait)
                continue
            if auth:  # the API's own answers (a download's Date is some file server's clock)
                self.server_clock.observe(resp.headers.get("date"))
            if resp.status_code < 400:
                return resp
            data = _json_or_none(resp)
            err = _wire.parse_error(resp.status_code, data, resp.text)
            if policy.should_retry_status(resp.status_code, err.code):
                if resp.status_code == 429:
                    rate_hits += 1
                    wait = policy.rate_limit_wait(resp.headers, err.extra, rate_hits, self.server_clock.now())
                    if waited_for_rate + wait <= policy.max_rate_limit_wait:
                        waited_for_rate += wait
                        attempt -= 1  # waiting out a window is not a failed attempt
                        log.info("%s %s: rate limited (429); all calls wait %.1f s", method, _path(url), wait)
                        self.rate_gate.close_for(wait)
                        continue
                elif attempt < policy.max_attempts:
                    wait = policy.backoff(attempt)
                    log.info("%s %s: HTTP %d (%s); retry %d in %.1f s", method, _path(url), resp.status_code,
                             err.code, attempt, wait)
                    await asyncio.sleep(wait)
                    continue
            raise self._api_error(resp.status_code, err, data, task_id)

    async def _exchange(self, method: str, url: str, headers: dict[str, str], json_body: Any,
                        content: bytes | None, timeout: float | None, sink: FileSink | None) -> httpx.Response:
        """One attempt: the request sent, the answer read (a 2xx body into ``sink`` if given)."""
        http = self._client()
        request = http.build_request(method, url, json=json_body, content=content, headers=headers,
                                     timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        resp = await http.send(request, stream=sink is not None)
        if sink is not None:
            try:
                if resp.status_code < 400:
                    sink.start()
                    async for chunk in resp.aiter_bytes(1 << 16):
                        sink.write(chunk)
                else:
                    await resp.aread()
            finally:
                await resp.aclose()
        return resp

    def _api_error(self, status: int, err: _wire.ErrorBody, data: Any, task_id: str | None) -> ApiError:
        cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else ApiError)
        message = self._scrub(err.message)
        if status == 401:
            message = f"the API key was refused ({message}); check {_config.ENV_API_KEY}"
        elif status == 402 and "insufficient balance" not in message.lower():
            message = f"insufficient balance: {message}"
        kw: dict[str, Any] = {"status": status, "code": err.code, "task_id": task_id, "body": data}
        if cls is RateLimitError:
            kw["reset_at"] = err.extra.get("reset_at")
        return cls(message, **kw)

    async def _call(self, method: str, path: str, **kw: Any) -> Task:
        resp = await self._send(method, self.base_url + path, **kw)
        try:
            return _wire.parse_task(resp.json())
        except (ValueError, json.JSONDecodeError) as exc:
            raise ApiError(f"unexpected answer from the API: {resp.text[:200]!r}", status=resp.status_code) from exc

    # -- inputs ------------------------------------------------------------------------
    async def upload(self, image: ImageRef) -> str:
        """A URL for one input image (see ``place``); RequestError when it cannot be sent."""
        try:
            return str((await self.place(image)).url)
        except ImageInputError as exc:
            raise RequestError([Problem("image_urls", exc.rule, f"{image.describe()}: {exc}")]) from None

    async def prepare_inputs(self, request: Request) -> Request:
        """The request with every input image placed (``place``); one RequestError names
        every input that cannot be sent, before anything is sent or billed."""
        placed, problems = [], []
        for i, image in enumerate(request.images):
            try:
                placed.append(await self.place(image))
            except ImageInputError as exc:
                problems.append(Problem(f"image_urls[{i}]", exc.rule, f"{image.describe()}: {exc}"))
        if problems:
            raise RequestError(problems)
        return dataclasses.replace(request, images=tuple(placed))

    async def place(self, image: ImageRef) -> ImageRef:
        """How one input image reaches the server, as an ImageRef with ``url`` and ``via``:

        * ``url``: the URL the user gave, as is;
        * ``link``: a result's own link, while it lives ``link_margin`` seconds more;
        * ``upload``: the bytes uploaded once per sha256 (``uploader``, or the simulator's
          ``/sim/uploads``). With neither, ImageInputError says what to do.

        An image placed already (``via`` set) stays as placed: a run's Idempotency-Key
        goes with one body, however often it is re-sent (retries, a resumed run, the
        replay that cancels a held submit), even once its link is inside the margin.
        """
        if image.via is not None:
            return image
        if image.live_url(self.link_margin, self.server_clock.now()) is not None:
            return dataclasses.replace(image, via="url" if image.sha256 is None else "link")
        if image.data is None:
            raise _unsendable(image, self.link_margin, self.server_clock.now(), file_gone=True)
        url = await self._upload_bytes(image)
        return dataclasses.replace(image, url=url, expires_at=None, via="upload")

    async def _upload_bytes(self, image: ImageRef) -> str:
        assert image.data is not None and image.sha256 is not None
        if image.sha256 in self._uploaded:
            return self._uploaded[image.sha256]
        mime = content_type(image.format)
        if self._uploader is not None:
            url = self._uploader(image.data, mime)
            if inspect.isawaitable(url):
                url = await url
        elif self.is_loopback and self._sim_uploads:
            origin = self.base_url.rsplit("/v1", 1)[0]
            try:
                resp = await self._send(
                    "POST", origin + "/sim/uploads", content=image.data, headers={"Content-Type": mime}
                )
            except ApiError as exc:
                if exc.status not in (404, 405):
                    raise
                self._sim_uploads = False  # a urls_only simulator: no upload endpoint, like the hosted API
                raise _unsendable(image, self.link_margin, self.server_clock.now()) from None
            url = resp.json()["url"]
        else:
            raise _unsendable(image, self.link_margin, self.server_clock.now())
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"the uploader returned {url!r}, not an http(s) URL")
        self._uploaded[image.sha256] = url
        return url

    # -- the four task calls -----------------------------------------------------------
    async def submit(
        self, request: Request | dict[str, Any], *, idempotency_key: str | None = None, wait: float | None = None
    ) -> Task:
        """Submit once (retries reuse the same Idempotency-Key, so one bill at most)."""
        req = await self.prepare_inputs(as_request(request))
        wait_s = self.prefer_wait if wait is None else wait
        key = idempotency_key or req.idempotency_key()
        headers = {"Idempotency-Key": key, **_wire.wait_header(wait_s)}
        try:
            return await self._call(
                "POST",
                _wire.TASKS_PATH,
                json_body=_wire.to_body(req),
                headers=headers,
                timeout=self.http_timeout + max(0.0, wait_s),
            )
        except (NetworkError, ServerError) as exc:
            if not self.may_have_created(exc):
                raise
            raise _maybe_billed(exc, "the submit may have reached the server, so the task may exist and be "
                                     "billed; submitting again with the same Idempotency-Key returns it "
                                     "without a second charge") from exc

    def may_have_created(self, exc: BaseException) -> bool:
        """Could the submit that raised ``exc`` have created (and so billed) a task?

        No answer at all, or a server error the policy would retry: yes. A refusal
        (400, 401, 402, 429, ``price_not_configured``): no, nothing was made.
        """
        if isinstance(exc, NetworkError):
            return True
        return isinstance(exc, ServerError) and self.retry.should_retry_status(exc.status or 500, exc.code)

    async def get(self, task_id: str) -> Task:
        return await self._call("GET", _wire.task_path(task_id), task_id=task_id)

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued task. A task already processing is not an error: its status is returned."""
        try:
            return await self._call("POST", _wire.cancel_path(task_id), task_id=task_id)
        except InvalidRequestError as exc:
            if exc.code == "task_not_cancellable":
                return await self.get(task_id)
            raise

    async def wait(self, task: Task | str, *, timeout: float | None = None, on_update: OnUpdate | None = None) -> Task:
        """Poll until the task ends; raise TaskFailed / TaskCancelled / TaskTimeout.

        Past the deadline a still-queued task is cancelled on the server. If the
        waiting code itself is cancelled (Ctrl-C, sweep cancel), so is the task.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        if isinstance(task, str) or (task.status == _wire.COMPLETED and not task.images):
            # a submit answer (e.g. a replayed key) may say completed without the result and cost
            task = await self.get(task if isinstance(task, str) else task.task_id)
        delays = poll_delays()
        try:
            while not task.terminal:
                _notify(on_update, task)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    after = await self.cancel(task.task_id) if task.status == _wire.QUEUED else task
                    cancelled = after.status == _wire.CANCELLED
                    raise TaskTimeout(
                        f"task {task.task_id} did not finish in time (last status: {task.status}); "
                        + ("it was cancelled on the server and refunded" if cancelled
                           else "it is still running: fetch it later with wan.fetch(task_id)"),
                        after,
                        cancelled=cancelled,
                    )
                await asyncio.sleep(min(next(delays), remaining))
                try:
                    task = await self.get(task.task_id)
                except (NetworkError, ServerError) as exc:
                    raise _maybe_billed(
                        exc, f"task {task.task_id} was {task.status} and may still finish and be billed; "
                             f"wan.fetch({task.task_id!r}) or running the same request again picks it up") from exc
        except asyncio.CancelledError:
            ended = await self._cancel_quietly(task)
            if ended is not None:
                _notify(on_update, ended)  # the server's word on what became of the task
            raise
        _notify(on_update, task)
        return _raise_for_task(task)

    async def _cancel_held_submit(self, req: Request, key: str) -> Task | None:
        """Cancelled while the server held our submit (Prefer: wait): we have no task id.

        Replaying the submit with the same Idempotency-Key returns the task the server
        created (billed once), which is then cancelled; had the first submit never
        arrived, the task made here is cancelled while queued and refunded in full.
        """
        try:
            task = await asyncio.wait_for(self.submit(req, idempotency_key=key, wait=0), timeout=10)
        except (TimeoutError, WanError):
            return None
        return await self._cancel_quietly(task)

    async def _cancel_quietly(self, task: Task) -> Task | None:
        """Cancel on the way out; the server's answer, or None if it could not be had."""
        if task.terminal:
            return task
        try:
            return await asyncio.wait_for(self.cancel(task.task_id), timeout=10)
        except (TimeoutError, WanError):
            return None

    # -- results -----------------------------------------------------------------------
    async def download(self, task: Task) -> list[StoredImage]:
        """Fetch every image of a completed task now (links expire) and store it.

        Every link is tried, whatever its ``expires_at`` says: that is the server's
        clock, and ours may be minutes off. The server's answer decides; a 403, 404 or
        410 is a ``LinkExpiredError`` in its own words."""
        stored = []
        for i, img in enumerate(task.images):
            for url in img.urls:
                sink = FileSink(self.store.incoming())
                try:
                    await self._send("GET", url, auth=False, task_id=task.task_id, sink=sink)
                except ApiError as exc:
                    sink.discard()
                    if exc.status in (403, 404, 410):
                        raise LinkExpiredError(_gone_message(task, i, exc)) from exc
                    raise DownloadError(f"image {i + 1} of task {task.task_id}: {exc}") from exc
                except BaseException as exc:
                    sink.discard()
                    if isinstance(exc, NetworkError):
                        raise DownloadError(f"image {i + 1} of task {task.task_id}: {exc}") from exc
                    raise
                sink.close()
                stored.append(await asyncio.to_thread(
                    self.store.put_file, sink.path, sink.sha256, sink.size, source_url=url, expires_at=img.expires_at))
        if not stored:
            raise DownloadError(f"task {task.task_id} completed without any image link")
        return stored

    async def complete(
        self,
        request: Request | dict[str, Any],
        *,
        idempotency_key: str | None = None,
        task_id: str | None = None,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        prefer_wait: float | None = None,
    ) -> RunOutcome:
        """Submit (or resume ``task_id``) and wait until the task completed; no download.

        Retryable task failures get a new task. What ``run`` does before the download:
        the moment a caller knows the task is billed, whatever the download does next.
        ``prefer_wait``: how long the server may hold the submit, for this run (default:
        the client's ``prefer_wait``); shorter means polling, so ``on_update`` sees each state.
        """
        req = as_request(request)
        key = idempotency_key or req.idempotency_key()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        submitted_at = _clock.now()
        attempt = 0
        while True:
            attempt += 1
            remaining = max(1.0, deadline - time.monotonic())
            task = None
            if task_id and attempt == 1:
                try:
                    task = await self.get(task_id)
                except TaskNotFoundError:
                    task = None  # the server forgot it: the same key submits it again, billed once
            if task is None:
                attempt_key = key if attempt == 1 else f"{key}-r{attempt - 1}"
                submitted_at = _clock.now()  # before the submit: Prefer: wait may hold it to the end
                try:
                    hold = self.prefer_wait if prefer_wait is None else prefer_wait
                    task = await self.submit(req, idempotency_key=attempt_key, wait=min(hold, remaining))
                except asyncio.CancelledError:
                    after = await self._cancel_held_submit(req, attempt_key)
                    if after is not None:
                        _notify(on_update, after)
                    raise
            _notify(on_update, task)
            try:
                task = await self.wait(task, timeout=deadline - time.monotonic(), on_update=on_update)
            except TaskFailed as exc:
                if self.retry.should_retry_task(exc.code) and attempt <= self.retry.task_retries:
                    log.info("task %s failed (%s, refunded); trying a new task", task.task_id, exc.code)
                    await asyncio.sleep(self.retry.backoff(attempt))
                    continue
                raise
            return RunOutcome(req, task, [], key, submitted_at, _clock.now(), None, attempt)

    async def run(
        self,
        request: Request | dict[str, Any],
        *,
        idempotency_key: str | None = None,
        task_id: str | None = None,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        prefer_wait: float | None = None,
    ) -> RunOutcome:
        """Submit (or resume ``task_id``), wait, download. Retryable task failures get a new task."""
        done = await self.complete(request, idempotency_key=idempotency_key, task_id=task_id, timeout=timeout,
                                   on_update=on_update, prefer_wait=prefer_wait)
        images = await self.download(done.task)
        return dataclasses.replace(done, images=images, downloaded_at=_clock.now())

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class FileSink:
    """A download streamed to a file, hashed as it comes (memory: one chunk, not the image).

    Chunks are written from the event loop: a 64 KB write to the page cache takes
    microseconds; the fsync and the decode happen later, in ``Store.put_file`` on a
    worker thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    def start(self) -> None:
        """(Re)start the body: an attempt that broke off half-way leaves nothing behind."""
        self.close()
        self._fh = open(self.path, "wb")  # noqa: SIM115 - held across chunks; closed by close()
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        assert self._fh is not None
        self._fh.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _blocking(
    async_method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Client, P], T]:
    """The sync face of an ``AsyncClient`` method: the same parameters and return type
    (for type checkers through ``P`` and ``T``, for ``inspect.signature`` and ``help``
    through ``functools.wraps``), run on the portal loop."""
    name = async_method.__name__

    @functools.wraps(async_method)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound: Callable[P, Coroutine[Any, Any, T]] = getattr(self.aio, name)  # the instance's, as awaited
        return self._portal.run(bound(*args, **kwargs))

    method.__qualname__ = f"Client.{name}"  # a sync method of Client (wraps copied the async one's name)
    return method


class Client:
    """Blocking client with the same methods as ``AsyncClient``.

    Works in a plain script and inside Jupyter's running event loop: calls run on
    wan_nb's portal loop. ``client.aio`` is the AsyncClient behind it. The arguments
    are those of ``AsyncClient`` (``api_key``, else ``WAVE_API_KEY``; ``base_url``,
    else ``WAN_NB_BASE_URL``, else the hosted API; ``store``, ``uploader``, ...).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        store: Store | None = None,
        uploader: Uploader | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = _config.DEFAULT_TIMEOUT,
        prefer_wait: int = _config.PREFER_WAIT,
        http_timeout: float = _config.HTTP_TIMEOUT,
        link_margin: float = _config.LINK_MARGIN,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.aio = AsyncClient(api_key, base_url, store=store, uploader=uploader, retry=retry, timeout=timeout,
                               prefer_wait=prefer_wait, http_timeout=http_timeout, link_margin=link_margin,
                               transport=transport)
        self._portal = get_portal()

    @classmethod
    def of(cls, aio: AsyncClient) -> Client:
        """The sync face of an existing AsyncClient (same connection, same settings)."""
        self = cls.__new__(cls)
        self.aio, self._portal = aio, get_portal()
        return self

    def __repr__(self) -> str:
        return f"<Client base_url={self.aio.base_url!r} api_key=***>"

    @property
    def base_url(self) -> str:
        return self.aio.base_url

    @property
    def store(self) -> Store:
        return self.aio.store

    # Every coroutine method of AsyncClient, blocking (tests/test_signatures.py checks that
    # none is missing and that each keeps its twin's signature).
    upload = _blocking(AsyncClient.upload)
    prepare_inputs = _blocking(AsyncClient.prepare_inputs)
    place = _blocking(AsyncClient.place)
    submit = _blocking(AsyncClient.submit)
    get = _blocking(AsyncClient.get)
    cancel = _blocking(AsyncClient.cancel)
    wait = _blocking(AsyncClient.wait)
    download = _blocking(AsyncClient.download)
    complete = _blocking(AsyncClient.complete)
    run = _blocking(AsyncClient.run)

    def close(self) -> None:
        """Close the connection pool (``AsyncClient.aclose``)."""
        self._portal.run(self.aio.aclose())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def fetch_image(url: str, *, timeout: float = _config.HTTP_TIMEOUT) -> bytes:
    """The bytes of an input image given by URL, for widgets that must show its pixels.

    One plain GET, never with the API key; at most the document's 30 MB per image.
    """
    limit = _spec.MAX_IMAGE_BYTES
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code >= 400:
                raise DownloadError(f"{url}: the server answered HTTP {resp.status_code}")
            data = bytearray()
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise DownloadError(f"{url}: more than the {limit // 2**20} MB an input image may have")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise DownloadError(f"{url}: could not fetch the image ({type(exc).__name__})") from exc


def _raise_for_task(task: Task) -> Task:
    if task.status == _wire.FAILED:
        code = task.error_code or "task_failed"
        raise TaskFailed(f"task {task.task_id} failed ({code}): {task.error_message or 'no reason given'}", task, code)
    if task.status == _wire.CANCELLED:
        raise TaskCancelled(f"task {task.task_id} was cancelled (its cost was refunded)", task)
    return task


_LOST = ("its images cannot be downloaded any more; the task was billed. New images need a new task "
         "(a new Idempotency-Key), which is billed again")


def _gone_message(task: Task, index: int, exc: ApiError) -> str:
    """A link the server refused: its own word, not the expiry the task once announced
    (a server may evict a result early)."""
    return (f"the link to image {index + 1} of task {task.task_id} is gone (the server answered "
            f"{exc.status}: {exc.message}): {_LOST}")


def _maybe_billed(exc: NetworkError | ServerError, what: str) -> WanError:
    """``exc`` again, its message saying what may have been billed and how to settle it."""
    if isinstance(exc, ApiError):
        return type(exc)(f"{exc.message}; {what}", status=exc.status, code=exc.code, task_id=exc.task_id,
                         body=exc.body)
    return type(exc)(f"{exc}; {what}")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _unsendable(image: ImageRef, margin: float, server_now: float, file_gone: bool = False) -> ImageInputError:
    """Why an input cannot be sent, and the two ways out (rule ``link_expired`` or ``needs_url``).
    ``server_now``: the API's time (its link expiries are on its clock, not ours)."""
    if image.url and image.expires_at is not None:
        rule = "link_expired"
        if image.expires_at <= server_now:
            why = f"its result link expired at {_utc(image.expires_at)}"
        else:
            why = (f"its result link expires at {_utc(image.expires_at)}, too soon to send it "
                   f"(a link is reused only while it has {margin / 60:g} min left)")
        why += (", and its file is gone, so it cannot be uploaded either" if file_gone
                else ", and there is no uploader to send the file itself")
    else:
        rule, why = "needs_url", "it is a local image, and there is no uploader to send it"
    return ImageInputError(rule, (
        f"{why}; the API takes input images only as public URLs. Either connect(uploader=fn) with "
        "fn(data: bytes, content_type: str) -> public URL, or pass a public http(s) URL of this image"
    ))


def _notify(on_update: OnUpdate | None, task: Task) -> None:
    if on_update is not None:
        on_update(task)


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _host(url: str) -> str:
    return httpx.URL(url).host or url


def _path(url: str) -> str:
    return httpx.URL(url).path
