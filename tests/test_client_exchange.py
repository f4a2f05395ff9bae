"""The client's exchange logic over ``httpx.MockTransport``: no sockets, no server, no waits.

What ``AsyncClient`` does with each answer it can get, in milliseconds: which calls are
retried and with what (the same Idempotency-Key and body), how a 429 is waited out,
what ``Prefer: wait`` asks for, and which wan_nb error each failure becomes. The
loopback tests (test_client.py, test_money.py) prove the same against the simulator
over real HTTP; these pin the logic down answer by answer.

The retry policy here waits nothing (``INSTANT``); where the behaviour under test *is* a
wait the server asks for, the wait is a small fraction of a second, or the sleeps the
client asks for are recorded instead of slept (``recorded_sleeps``).
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from PIL import Image

import wan_nb as wan
from wan_nb import _spec

KEY = "sk-EXCHANGE-SECRET-0042"
BASE = "https://api.example.test/v1"
UNIT = _spec.UNIT_QUOTA
REQUEST = {"prompt": "a fox in snow", "seed": 7, "resolution": "1K"}


class NoJitter(random.Random):
    """Jitter off: every wait is exactly what the policy or the server asks for."""

    def uniform(self, a: float, b: float) -> float:
        return 0.0


INSTANT = wan.RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0, task_retries=2, rng=NoJitter())

Answer = httpx.Response | Exception | Callable[[httpx.Request], Any]


class Api:
    """A scripted server: ``answers`` are given out in order (the last one repeats), each a
    response, an exception to raise (a dropped connection), or a function of the request.
    Every request is kept, with the time it arrived."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.time())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        out = answer(request)
        if asyncio.iscoroutine(out):
            out = await out
        return out

    def headers(self, name: str) -> list[str | None]:
        return [r.headers.get(name) for r in self.requests]


def task(status: str = "queued", task_id: str = "task-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"task_id": task_id, "status": status, "model": "wan2.7-image", "action": "generate",
                            "created_at": 1775290140120, "progress": 0, "pre_consumed_cost": UNIT}
    if status == "completed":
        image = {"url": ["https://files.example.test/x.jpg"], "expires_at": time.time() + 3600}
        body.update(progress="100%", cost=UNIT, result={"images": [image]})
    body.update(extra)
    return body


def ok(body: Any = None, status: int = 200, **kw: Any) -> httpx.Response:
    return httpx.Response(status, json=task() if body is None else body, **kw)


def error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
          **extra: Any) -> httpx.Response:
    """An error answer as the task endpoints give it; ``extra``: the error's other keys."""
    err: dict[str, Any] = {"message": message, **extra}
    if code is not None:
        err["code"] = code
    return httpx.Response(status, json={"error": err}, headers=headers)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)


def client(api: Api, tmp_path, **kw: Any) -> wan.AsyncClient:
    kw.setdefault("retry", INSTANT)
    return wan.AsyncClient(KEY, BASE, store=wan.Store(tmp_path / "runs"), transport=httpx.MockTransport(api), **kw)


def run(api: Api, tmp_path, call: Callable[[wan.AsyncClient], Coroutine[Any, Any, Any]], **kw: Any) -> Any:
    """``call(client)`` on a fresh client over ``api``, the client closed afterwards."""
    async def go() -> Any:
        async with client(api, tmp_path, **kw) as c:
            return await call(c)

    return asyncio.run(go())


def submit(c: wan.AsyncClient, **kw: Any) -> Coroutine[Any, Any, wan.Task]:
    return c.submit(REQUEST, **kw)


@pytest.fixture
def recorded_sleeps(monkeypatch) -> list[float]:
    """The waits the client asks ``asyncio.sleep`` for, recorded and not slept: for waits the
    server sets in whole seconds (``Retry-After``), which no retry policy can shorten."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        asked.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return asked


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 220)).save(buf, "JPEG")
    return buf.getvalue()


# ----------------------------------------------------------------- what goes out


def test_a_submit_carries_the_key_the_idempotency_key_and_the_body(tmp_path):
    api = Api(ok())
    out = run(api, tmp_path, submit)
    (req,) = api.requests
    assert out.task_id == "task-1" and out.status == "queued" and out.created_at == 1775290140.12
    assert req.method == "POST" and str(req.url) == BASE + "/tasks"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["idempotency-key"] == wan.build_request(**REQUEST).idempotency_key()
    body = json.loads(req.content)
    assert body["prompt"] == "a fox in snow" and body["seed"] == 7 and body["model"] == "wan2.7-image"


def test_an_explicit_idempotency_key_is_the_one_sent(tmp_path):
    api = Api(ok())
    run(api, tmp_path, lambda c: submit(c, idempotency_key="run-abc"))
    assert api.headers("idempotency-key") == ["run-abc"]


@pytest.mark.parametrize(("wait", "header"), [(5, "wait=5"), (60, "wait=60"), (100, "wait=60"), (2.9, "wait=2"),
                                              (0, None), (-3, None)])
def test_prefer_wait_asks_for_at_most_60_seconds_and_none_for_zero(tmp_path, wait, header):
    api = Api(ok())
    run(api, tmp_path, lambda c: submit(c, wait=wait))
    assert api.headers("prefer") == [header]


def test_a_held_submit_gets_its_wait_on_top_of_the_http_timeout(tmp_path):
    api = Api(ok())
    run(api, tmp_path, lambda c: submit(c, wait=20), http_timeout=7.0)
    assert api.requests[0].extensions["timeout"]["read"] == 27.0


def test_the_client_default_prefer_wait_and_a_runs_own(tmp_path):
    api = Api(ok(task("completed")))
    run(api, tmp_path, submit, prefer_wait=12)
    run(api, tmp_path, lambda c: c.complete(REQUEST, prefer_wait=3), prefer_wait=12)
    assert api.headers("prefer") == ["wait=12", "wait=3"]


def test_a_submit_that_answers_completed_needs_no_poll(tmp_path):
    api = Api(ok(task("completed")))
    out = run(api, tmp_path, lambda c: c.complete(REQUEST))
    assert out.task.status == "completed" and out.task.cost == UNIT and out.attempts == 1
    assert [r.method for r in api.requests] == ["POST"]


# ----------------------------------------------------------------- retries


@pytest.mark.parametrize("fault", [
    error(500, "boom"), error(502, "bad gateway"), error(503, "busy"), error(504, "gateway timeout"),
    dropped, httpx.ConnectError("connection refused"), httpx.ReadTimeout("read timed out"),
], ids=["500", "502", "503", "504", "dropped", "connect", "timeout"])
def test_a_retried_submit_resends_the_same_key_and_body(tmp_path, fault):
    api = Api(fault, fault, ok())
    out = run(api, tmp_path, submit)
    assert out.task_id == "task-1" and len(api.requests) == 3
    keys = api.headers("idempotency-key")
    assert keys[0] and keys == [keys[0]] * 3, "one Idempotency-Key for every attempt: billed once"
    assert len({r.content for r in api.requests}) == 1, "one body for that key"


def test_a_get_is_retried_too(tmp_path):
    api = Api(error(503, "busy"), dropped, ok(task("processing", progress="45%")))
    out = run(api, tmp_path, lambda c: c.get("task-1"))
    assert out.status == "processing" and out.progress == 45 and len(api.requests) == 3
    assert all(str(r.url) == BASE + "/tasks/task-1" for r in api.requests)


def test_retries_stop_at_max_attempts_with_a_server_error_that_says_it_may_be_billed(tmp_path):
    api = Api(error(503, "still busy", code="overloaded"))
    with pytest.raises(wan.ServerError) as info:
        run(api, tmp_path, submit)
    assert len(api.requests) == INSTANT.max_attempts
    assert info.value.status == 503 and info.value.code == "overloaded"
    assert "still busy" in str(info.value) and "may" in str(info.value) and "billed" in str(info.value)


def test_no_answer_at_all_is_a_network_error_after_max_attempts(tmp_path):
    api = Api(httpx.ConnectError("connection refused"))
    with pytest.raises(wan.NetworkError) as info:
        run(api, tmp_path, lambda c: c.get("task-1"))
    assert len(api.requests) == INSTANT.max_attempts
    assert "api.example.test" in str(info.value) and f"{INSTANT.max_attempts} attempts" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)  # translated at the boundary, cause kept
    assert not isinstance(info.value, httpx.HTTPError)


def test_a_dropped_submit_says_the_task_may_exist_and_how_to_settle_it(tmp_path):
    api = Api(dropped)
    with pytest.raises(wan.NetworkError, match="same Idempotency-Key"):
        run(api, tmp_path, submit)


def test_price_not_configured_is_a_500_that_is_not_retried(tmp_path):
    api = Api(error(500, "no price for this model", code="price_not_configured"))
    with pytest.raises(wan.ServerError) as info:
        run(api, tmp_path, submit)
    assert len(api.requests) == 1 and info.value.code == "price_not_configured"
    assert "may" not in str(info.value), "never accepted: nothing to settle"


@pytest.mark.parametrize("status", [400, 401, 402, 404])
def test_refusals_are_not_retried(tmp_path, status):
    api = Api(error(status, "no"), ok())
    with pytest.raises(wan.ApiError) as info:
        run(api, tmp_path, submit)
    assert len(api.requests) == 1 and info.value.status == status


def test_a_retryable_task_failure_gets_a_new_task_under_a_derived_key(tmp_path):
    failed = task("failed", task_id="task-1", error={"code": "upstream_unavailable", "message": "try again"})
    api = Api(ok(failed), ok(task("completed", task_id="task-2")))
    out = run(api, tmp_path, lambda c: c.complete(REQUEST, idempotency_key="run-k"))
    assert out.task.task_id == "task-2" and out.attempts == 2 and out.idempotency_key == "run-k"
    assert api.headers("idempotency-key") == ["run-k", "run-k-r1"], "a new task needs a new key (the old one replays)"


def test_a_non_retryable_task_failure_raises_with_its_code_and_task(tmp_path):
    failed = task("failed", error={"code": "upstream_bad_request", "message": "nope"})
    api = Api(ok(failed))
    with pytest.raises(wan.TaskFailed) as info:
        run(api, tmp_path, lambda c: c.complete(REQUEST))
    assert info.value.code == "upstream_bad_request" and info.value.task.task_id == "task-1"
    assert len(api.requests) == 1


def test_a_cancelled_held_submit_is_replayed_with_the_same_key_then_cancelled(tmp_path):
    """Cancelled while the server holds the submit (Prefer: wait): the client has no task
    id, so it sends the submit again under the same key, without a hold, and cancels what
    that returns."""
    held = asyncio.Event()

    async def hold_forever(request: httpx.Request) -> httpx.Response:
        held.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    api = Api(hold_forever, ok(task("queued")), ok(task("cancelled", refunded=True, refunded_quota=UNIT, cost=0)))

    async def cancel_while_held(c: wan.AsyncClient) -> list[wan.Task]:
        seen: list[wan.Task] = []
        job = asyncio.ensure_future(c.complete(REQUEST, idempotency_key="run-held", on_update=seen.append))
        await held.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return seen

    seen = run(api, tmp_path, cancel_while_held, prefer_wait=30)
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", "/v1/tasks"), ("POST", "/v1/tasks"), ("POST", "/v1/tasks/task-1/cancel")]
    assert api.headers("idempotency-key")[:2] == ["run-held", "run-held"]
    assert api.headers("prefer")[:2] == ["wait=30", None], "the replay must not be held"
    assert api.requests[0].content == api.requests[1].content
    assert seen and seen[-1].status == "cancelled"


# ----------------------------------------------------------------- 429


def test_a_429_waits_until_reset_at_then_retries_without_spending_an_attempt(tmp_path):
    reset_at = time.time() + 0.15
    api = Api(error(429, "window full", code="quota_window_exceeded", reset_at=reset_at, window=60, used=5, cap=5),
              ok())
    c = client(api, tmp_path, retry=wan.RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, rng=NoJitter()))

    async def go() -> wan.Task:
        async with c:
            return await submit(c)

    out = asyncio.run(go())
    assert out.task_id == "task-1" and len(api.requests) == 2
    assert api.times[1] >= reset_at, "sent again before the window reset"
    assert c.rate_gate.hits == 1
    keys = api.headers("idempotency-key")
    assert keys[0] == keys[1]


def test_reset_at_in_milliseconds_is_read_as_the_same_moment(tmp_path):
    reset_at = time.time() + 0.15
    api = Api(error(429, "window full", code="quota_window_exceeded", reset_at=int(reset_at * 1000)), ok())
    run(api, tmp_path, submit)
    assert len(api.requests) == 2 and api.times[1] >= int(reset_at * 1000) / 1000


def test_retry_after_is_waited_when_there_is_no_reset_at(tmp_path, recorded_sleeps):
    api = Api(error(429, "slow down", headers={"Retry-After": "7"}), ok())
    run(api, tmp_path, submit)
    assert len(api.requests) == 2
    assert max(recorded_sleeps) == pytest.approx(7.0, abs=0.5)


def test_one_429_pauses_every_call_of_the_client(tmp_path, recorded_sleeps):
    """The pause is the client's, not the call's: a call started during the window waits too."""
    api = Api(error(429, "slow down", headers={"Retry-After": "3"}), ok())

    async def two_calls(c: wan.AsyncClient) -> float:
        await submit(c)
        recorded_sleeps.clear()
        remaining = c.rate_gate.remaining
        await c.get("task-1")  # a later call, in the same window
        return remaining

    remaining = run(api, tmp_path, two_calls)
    assert remaining > 2.0 and recorded_sleeps and max(recorded_sleeps) > 2.0


def test_a_429_longer_than_the_policy_allows_is_a_rate_limit_error_with_reset_at(tmp_path):
    reset_at = time.time() + 3600
    api = Api(error(429, "come back in an hour", code="quota_window_exceeded", reset_at=int(reset_at * 1000)), ok())
    policy = wan.RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0, max_rate_limit_wait=60.0, rng=NoJitter())
    with pytest.raises(wan.RateLimitError) as info:
        run(api, tmp_path, submit, retry=policy)
    assert len(api.requests) == 1, "a wait past the policy's limit is raised at once, not slept"
    assert info.value.status == 429 and info.value.code == "quota_window_exceeded"
    assert info.value.reset_at == pytest.approx(reset_at, abs=0.01)
    assert not isinstance(info.value, wan.ServerError)


def test_a_429_without_any_hint_backs_off_by_the_policy(tmp_path, recorded_sleeps):
    api = Api(error(429, "slow down"), error(429, "slow down"), ok())
    out = run(api, tmp_path, submit)
    assert out.task_id == "task-1" and len(api.requests) == 3
    policy = INSTANT  # what run() gives the client: no backoff, so the floor is what is waited
    waits = [w for w in recorded_sleeps if w > 0]
    assert waits == pytest.approx([policy.min_rate_limit_wait] * 2, abs=0.05), "never a spin: each waits the floor"


# ----------------------------------------------------------------- error translation


def test_400_is_an_invalid_request_error_with_the_servers_problems(tmp_path):
    problems = [{"field": "size", "rule": "range", "message": "too big"},
                {"field": "n", "rule": "max", "message": "at most 4"}]
    api = Api(error(400, "invalid parameters", code="invalid_request", problems=problems))
    with pytest.raises(wan.InvalidRequestError) as info:
        run(api, tmp_path, submit)
    exc = info.value
    assert exc.status == 400 and exc.code == "invalid_request" and "invalid parameters" in str(exc)
    assert exc.problems == [wan.Problem("size", "range", "too big"), wan.Problem("n", "max", "at most 4")]
    assert isinstance(exc, wan.WanError) and not isinstance(exc, wan.RequestError), "the server refused, not us"


def test_401_names_the_variable_and_never_the_key(tmp_path):
    api = Api(error(401, f"invalid key {KEY}", code="unauthorized"))
    c = client(api, tmp_path)
    with pytest.raises(wan.AuthenticationError) as info:
        asyncio.run(submit(c))
    shown = str(info.value) + repr(info.value) + info.value.message
    assert KEY not in shown and KEY not in repr(c)
    assert "WAVE_API_KEY" in str(info.value) and "refused" in str(info.value)


def test_402_says_insufficient_balance(tmp_path):
    api = Api(error(402, "account empty", code="insufficient_quota"))
    with pytest.raises(wan.InsufficientBalanceError, match="insufficient balance: account empty"):
        run(api, tmp_path, submit)


def test_404_is_task_not_found_with_the_task_id(tmp_path):
    api = Api(error(404, "no such task", code="task_not_found"))
    with pytest.raises(wan.TaskNotFoundError) as info:
        run(api, tmp_path, lambda c: c.get("task-gone"))
    assert info.value.task_id == "task-gone" and info.value.code == "task_not_found"


def test_an_unlisted_4xx_is_a_plain_api_error(tmp_path):
    api = Api(error(418, "teapot"))
    with pytest.raises(wan.ApiError) as info:
        run(api, tmp_path, submit)
    assert type(info.value) is wan.ApiError and info.value.status == 418 and len(api.requests) == 1


def test_an_error_body_that_is_not_json_is_shown_as_text(tmp_path):
    api = Api(httpx.Response(502, text="<html><body>\n  Bad   gateway </body></html>"))
    with pytest.raises(wan.ServerError) as info:
        run(api, tmp_path, lambda c: c.get("task-1"))
    assert info.value.status == 502 and "Bad gateway" in str(info.value)
    assert len(api.requests) == INSTANT.max_attempts


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="not json at all"),
    httpx.Response(200, json=["a", "list"]),
    httpx.Response(200, json={"task_id": "task-1", "status": "exploded"}),
    httpx.Response(200, json={"status": "queued"}),
], ids=["text", "list", "unknown-status", "no-task-id"])
def test_an_answer_that_is_not_a_task_is_an_api_error(tmp_path, answer):
    api = Api(answer)
    with pytest.raises(wan.ApiError, match="unexpected answer") as info:
        run(api, tmp_path, lambda c: c.get("task-1"))
    assert info.value.status == 200 and not isinstance(info.value, wan.ServerError)


def test_cancel_of_a_processing_task_returns_its_status(tmp_path):
    api = Api(error(400, "already processing", code="task_not_cancellable"), ok(task("processing")))
    out = run(api, tmp_path, lambda c: c.cancel("task-1"))
    assert out.status == "processing"
    assert [(r.method, r.url.path) for r in api.requests] == [("POST", "/v1/tasks/task-1/cancel"),
                                                              ("GET", "/v1/tasks/task-1")]


# ----------------------------------------------------------------- downloads


def completed_with(url: str, expires_at: float | None) -> wan.Task:
    from wan_nb._wire import TaskImage

    return wan.Task("task-1", "completed", images=(TaskImage((url,), expires_at),))


def test_a_download_is_stored_and_carries_no_key(tmp_path):
    data = jpeg()
    api = Api(httpx.Response(200, content=data, headers={"Content-Type": "image/jpeg"}))
    stored = run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg",
                                                                      time.time() + 60)))
    assert stored[0].size == (32, 24) and stored[0].path.read_bytes() == data
    assert api.headers("authorization") == [None]


def test_a_download_is_retried_through_a_drop(tmp_path):
    api = Api(dropped, httpx.Response(200, content=jpeg()))
    stored = run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg", None)))
    assert stored[0].size == (32, 24) and len(api.requests) == 2


def test_a_link_past_its_expiry_by_our_clock_is_still_tried_the_server_decides(tmp_path):
    """Our clock may be wrong (issue 18): a link it calls expired is fetched anyway."""
    api = Api(httpx.Response(200, content=jpeg()))
    stored = run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg",
                                                                    time.time() - 1)))
    assert len(stored) == 1 and len(api.requests) == 1


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_link_the_server_refuses_is_expired(tmp_path, status):
    api = Api(error(status, "gone"))
    with pytest.raises(wan.LinkExpiredError, match=f"answered {status}"):
        run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg", time.time() + 60)))
    assert len(api.requests) == 1
    assert not list((tmp_path / "runs").rglob("*.jpg")), "nothing half-written is left behind"


def test_a_download_that_keeps_failing_is_a_download_error(tmp_path):
    api = Api(error(500, "storage down"))
    with pytest.raises(wan.DownloadError) as info:
        run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg", None)))
    assert not isinstance(info.value, wan.LinkExpiredError) and len(api.requests) == INSTANT.max_attempts


def test_a_download_with_no_answer_is_a_download_error(tmp_path):
    api = Api(httpx.ConnectError("refused"))
    with pytest.raises(wan.DownloadError, match="image 1 of task task-1"):
        run(api, tmp_path, lambda c: c.download(completed_with("https://files.example.test/a.jpg", None)))


def test_a_completed_task_without_links_is_a_download_error(tmp_path):
    api = Api(ok())
    with pytest.raises(wan.DownloadError, match="without any image link"):
        run(api, tmp_path, lambda c: c.download(wan.Task("task-1", "completed")))
