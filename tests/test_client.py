"""The client's task lifecycle against the simulator, over real loopback HTTP.

Each test proves money and time are handled as task-api.md says: Prefer: wait, polling
with progress, cancel (refund), idempotent resubmits billed once, retries that never
double-submit, expiring links, the overall deadline, and a key that never leaks.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import wan_nb as wan
from wan_nb import _spec
from wan_nb._retry import RetryPolicy
from wan_nb.sim import Simulator

FAST = RetryPolicy(base_delay=0.05, max_delay=0.2)
UNIT = _spec.UNIT_QUOTA


@pytest.fixture
def sim():
    with Simulator(latency=0.3, concurrency=2, seed=1) as s:
        yield s


def make_client(sim, tmp_path, **kw):
    kw.setdefault("retry", FAST)
    return wan.Client("test-key", sim.base_url, store=wan.Store(tmp_path / "runs"), **kw)


def test_prefer_wait_answers_with_the_finished_task(sim, tmp_path):
    with make_client(sim, tmp_path) as client:
        out = client.run({"prompt": "a fox", "seed": 1, "resolution": "1K"})
    assert out.task.status == "completed" and out.task.cost == UNIT
    assert out.images[0].path.is_file() and out.images[0].size == (1024, 1024)
    assert sim.ledger()["requests"].get("get", 0) == 0, "Prefer: wait should make polling unnecessary"


@pytest.mark.slow
def test_polling_reports_progress(tmp_path):
    seen = []
    with Simulator(latency=2.0) as sim, make_client(sim, tmp_path, prefer_wait=0) as client:
        out = client.run({"prompt": "a fox", "seed": 2, "resolution": "1K"}, on_update=seen.append)
        assert sim.ledger()["requests"]["get"] >= 2
    statuses = [t.status for t in seen]
    assert statuses[0] in ("queued", "processing") and statuses[-1] == "completed"
    progress = [t.progress for t in seen if t.status == "processing"]
    assert progress and all(0 <= p < 100 for p in progress if p is not None)
    assert out.images and seen[-1].progress == 100


def test_cancel_queued_task_is_refunded(tmp_path):
    with Simulator(latency=2.0, concurrency=1) as sim, make_client(sim, tmp_path) as client:
        first = client.submit({"prompt": "busy", "seed": 1}, wait=0)
        queued = client.submit({"prompt": "waiting", "seed": 2}, wait=0)
        assert queued.status == "queued"
        after = client.cancel(queued.task_id)
        assert after.status == "cancelled"
        ledger = sim.ledger()
        assert ledger["refunded_quota"] == UNIT and ledger["by_status"]["cancelled"] == 1
        # a processing task cannot be cancelled: a normal answer, not a crash
        time.sleep(0.2)
        still = client.cancel(first.task_id)
        assert still.status in ("processing", "completed")


def test_idempotent_resubmit_same_task_billed_once(sim, tmp_path):
    req = wan.build_request(prompt="same request", seed=5, resolution="1K")
    with make_client(sim, tmp_path) as client:
        a = client.submit(req)
        b = client.submit(req)
        assert a.task_id == b.task_id
        client.wait(b)
    ledger = sim.ledger()
    assert ledger["submitted"] == 1 and ledger["billed_quota"] == UNIT and ledger["idempotent_replays"] == 1


# the 429 case waits out the simulator's 1 s window (test_client_exchange.py has the instant one)
@pytest.mark.parametrize("fault", ["503", "500", "drop", pytest.param("429", marks=pytest.mark.slow)])
def test_injected_faults_still_one_submit(sim, tmp_path, fault):
    sim.set_faults(next=[{"endpoint": "submit", "fault": fault}, {"endpoint": "submit", "fault": fault}])
    with make_client(sim, tmp_path) as client:
        out = client.run({"prompt": f"through {fault}", "seed": 3, "resolution": "1K"})
    ledger = sim.ledger()
    assert out.images and ledger["submitted"] == 1 and ledger["billed_quota"] == UNIT
    assert ledger["requests"]["submit"] >= 3  # the faults really happened


@pytest.mark.slow
def test_rate_limit_window_is_waited_out(tmp_path):
    with Simulator(latency=0.05, faults={"rate_cap": 2, "rate_window": 1.0}) as sim:
        with make_client(sim, tmp_path) as client:
            outs = [client.run({"prompt": f"r{i}", "seed": i, "resolution": "1K"}) for i in range(4)]
        ledger = sim.ledger()
    assert all(o.images for o in outs)
    assert ledger["submitted"] == 4 and ledger["responses"].get("429", 0) >= 1


def test_errors_that_must_not_be_retried(tmp_path):
    with Simulator(latency=0.05, api_key="right-key", balance_quota=UNIT) as sim:
        with wan.Client("wrong-key", sim.base_url, store=wan.Store(tmp_path), retry=FAST) as bad:
            with pytest.raises(wan.AuthenticationError) as info:
                bad.submit({"prompt": "x", "seed": 1})
            assert "wrong-key" not in str(info.value) and "wrong-key" not in repr(bad)
        with wan.Client("right-key", sim.base_url, store=wan.Store(tmp_path), retry=FAST) as good:
            with pytest.raises(wan.TaskNotFoundError):
                good.get("task-does-not-exist")
            with pytest.raises(wan.InsufficientBalanceError):
                good.submit({"prompt": "x", "seed": 1, "n": 2})
        assert sim.ledger()["requests"]["submit"] == 2 and sim.ledger()["submitted"] == 0


def test_retryable_task_failure_gets_a_new_task_and_one_bill(sim, tmp_path):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "fail_task:upstream_unavailable"}])
    with make_client(sim, tmp_path) as client:
        out = client.run({"prompt": "flaky upstream", "seed": 9, "resolution": "1K"})
    ledger = sim.ledger()
    assert out.attempts == 2 and out.images
    assert ledger["submitted"] == 2 and ledger["billed_quota"] == UNIT and ledger["refunded_quota"] == UNIT


def test_non_retryable_task_failure_raises_with_the_task(sim, tmp_path):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "fail_task:upstream_bad_request"}])
    with make_client(sim, tmp_path) as client, pytest.raises(wan.TaskFailed) as info:
        client.run({"prompt": "bad upstream", "seed": 9, "resolution": "1K"})
    assert info.value.code == "upstream_bad_request" and info.value.task.task_id.startswith("task-")
    assert sim.ledger()["submitted"] == 1 and sim.ledger()["billed_quota"] == 0


@pytest.mark.slow
def test_expired_link_is_a_clear_error(tmp_path):
    with Simulator(latency=0.05, link_ttl=0.5) as sim, make_client(sim, tmp_path) as client:
        task = client.wait(client.submit({"prompt": "late download", "seed": 1, "resolution": "1K"}))
        time.sleep(1.0)
        with pytest.raises(wan.LinkExpiredError, match="expired"):
            client.download(task)


@pytest.mark.slow
def test_overall_deadline_cancels_queued_task_on_server(tmp_path):
    with Simulator(latency=3.0, concurrency=1) as sim, make_client(sim, tmp_path, prefer_wait=0) as client:
        client.submit({"prompt": "occupies the only slot", "seed": 1}, wait=0)
        with pytest.raises(wan.TaskTimeout) as info:
            client.run({"prompt": "never gets a slot", "seed": 2}, timeout=1.0)
        assert info.value.cancelled
        ledger = sim.ledger()
        assert ledger["by_status"]["cancelled"] == 1 and ledger["refunded_quota"] == UNIT


def test_cancelling_the_waiting_code_cancels_the_queued_task(tmp_path):
    async def scenario(sim):
        client = wan.AsyncClient("k", sim.base_url, store=wan.Store(tmp_path), retry=FAST, prefer_wait=0)
        await client.submit({"prompt": "slot", "seed": 1}, wait=0)
        job = asyncio.ensure_future(client.run({"prompt": "queued", "seed": 2}))
        await asyncio.sleep(0.5)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        await client.aclose()

    with Simulator(latency=3.0, concurrency=1) as sim:
        asyncio.run(scenario(sim))
        assert sim.ledger()["by_status"]["cancelled"] == 1


def test_sync_client_works_inside_a_running_event_loop(sim, tmp_path):
    """What Jupyter does: a sync call made while the thread's loop is running."""
    async def cell():
        with make_client(sim, tmp_path) as client:
            return client.run({"prompt": "in a notebook", "seed": 4, "resolution": "1K"})

    out = asyncio.run(cell())
    assert out.images[0].path.is_file()


def test_downloads_carry_no_authorization_and_key_never_leaks(tmp_path, caplog):
    secret = "sk-TOP-SECRET-123456"
    caplog.set_level(logging.DEBUG)
    with Simulator(latency=0.05, api_key=secret) as sim:
        with wan.Client(secret, sim.base_url, store=wan.Store(tmp_path / "runs"), retry=FAST) as client:
            out = client.run({"prompt": "secret test", "seed": 1, "resolution": "1K"})
            assert secret not in repr(client) and secret not in repr(client.aio)
            assert secret not in repr(out) and secret not in str(vars(out))
    assert secret not in caplog.text
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_downloads_carry_no_authorization_header(tmp_path):
    """Result links point at storage, not the API: the key must not travel there."""
    import http.server
    import io
    import threading

    from PIL import Image

    from wan_nb._wire import Task, TaskImage

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    seen_headers = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen_headers.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(buf.getvalue())))
            self.end_headers()
            self.wfile.write(buf.getvalue())

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x.jpg"
        task = Task("task-x", "completed", images=(TaskImage((url,), time.time() + 60),))
        with wan.Client("sk-NOT-FOR-STORAGE", "http://127.0.0.1:9/v1", store=wan.Store(tmp_path)) as client:
            stored = client.download(task)
    finally:
        server.shutdown()
        server.server_close()  # shutdown() stops the loop; the listening socket is closed here
    assert stored[0].size == (64, 48)
    assert seen_headers and not any(k.lower() == "authorization" for h in seen_headers for k in h)


def test_sessions_never_store_the_key(tmp_path, monkeypatch, capsys):
    secret = "sk-SESSION-SECRET-999"
    with Simulator(latency=0.05, api_key=secret) as sim:
        monkeypatch.setenv("WAVE_API_KEY", secret)
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "home")
        try:
            wan.generate("stored nowhere", seed=1, resolution="1K")
            sess.log.to_csv(tmp_path / "log.csv")
        finally:
            sess.close()
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_one_429_pauses_every_call_of_the_client(tmp_path):
    """The 429-aware limiter is shared: a call started while another waits out a rate
    window does not reach the server before the window resets."""
    async def scenario(sim):
        client = wan.AsyncClient("k", sim.base_url, store=wan.Store(tmp_path), retry=FAST)
        first = await client.submit({"prompt": "fills the window", "seed": 1}, wait=0)
        second = asyncio.ensure_future(client.submit({"prompt": "gets a 429", "seed": 2}, wait=0))
        # the client has read the 429 (not only the server sent it: under load the two differ)
        while sim.ledger()["responses"].get("429", 0) == 0 or not client.rate_gate.remaining:  # noqa: ASYNC110 - polls another thread's state
            await asyncio.sleep(0.01)
        gets_before = sim.ledger()["requests"].get("get", 0)
        poll = asyncio.ensure_future(client.get(first.task_id))
        await asyncio.sleep(0.8)  # well inside the 2 s window
        held = sim.ledger()["requests"].get("get", 0) == gets_before and not poll.done()
        await asyncio.gather(second, poll)
        await client.aclose()
        return held

    with Simulator(latency=0.05, faults={"rate_cap": 1, "rate_window": 2.0}) as sim:
        assert asyncio.run(scenario(sim)), "a call went out while the client was rate-limited"
        assert sim.ledger()["submitted"] == 2


def test_retries_are_logged_for_the_user(sim, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wan_nb")
    sim.set_faults(next=[{"endpoint": "submit", "fault": "503"}])
    with make_client(sim, tmp_path) as client:
        client.run({"prompt": "logged retry", "seed": 8, "resolution": "1K"})
    assert any("HTTP 503" in r.getMessage() and "retry 1" in r.getMessage() for r in caplog.records)
    assert "test-key" not in caplog.text


def test_resuming_a_task_the_server_forgot_resubmits_with_the_same_key(sim, tmp_path):
    """After a kernel restart the embedded simulator is new and knows no old task ids:
    resuming re-submits with the logged Idempotency-Key instead of failing."""
    req = wan.build_request(prompt="forgotten", seed=12, resolution="1K")
    with make_client(sim, tmp_path) as client:
        out = client.run(req, task_id="task-from-a-previous-simulator")
    ledger = sim.ledger()
    assert out.images and ledger["submitted"] == 1 and ledger["requests"]["get"] >= 1


@pytest.mark.slow
def test_a_timed_out_request_is_retried(sim, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wan_nb")
    sim.set_faults(next=[{"endpoint": "get", "fault": "slow:2"}])
    with make_client(sim, tmp_path, prefer_wait=0, http_timeout=0.5) as client:
        out = client.run({"prompt": "slow answer", "seed": 21, "resolution": "1K"})
    ledger = sim.ledger()
    assert out.images and ledger["faults"].get("slow") == 1 and ledger["submitted"] == 1
    assert any("Timeout" in r.getMessage() and "retry 1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fault", ["drop", "503"])
def test_faults_while_polling_are_retried(sim, tmp_path, fault):
    sim.set_faults(next=[{"endpoint": "get", "fault": fault}, {"endpoint": "get", "fault": fault}])
    with make_client(sim, tmp_path, prefer_wait=0) as client:
        out = client.run({"prompt": f"poll through {fault}", "seed": 22, "resolution": "1K"})
    ledger = sim.ledger()
    assert out.images and ledger["submitted"] == 1 and ledger["requests"]["get"] >= 3
