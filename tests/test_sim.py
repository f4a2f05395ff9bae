"""The simulator, over real loopback HTTP: protocol, money, faults, images."""

from __future__ import annotations

import calendar
import io
import json
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import loopback
import pytest
from children import child, describe, finish
from children import wait_for as ready
from PIL import Image, ImageChops, ImageDraw, ImageStat

from wan_nb import _spec
from wan_nb._request import build_request
from wan_nb.sim import Simulator, _render

AUTH = {"Authorization": "Bearer test-key"}
UNIT = _spec.UNIT_QUOTA
PROMPT = "a red fox in fresh snow, ink-wash style"


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def make_sim():
    """Factory for simulators with particular settings; all are stopped at the end."""
    made = []

    def make(**kw):
        kw.setdefault("latency", 0.1)
        kw.setdefault("seed", 99)
        s = Simulator(**kw).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def client(sim, headers=AUTH) -> httpx.Client:
    return loopback.client(base_url=sim.base_url, headers=headers, timeout=15)


def body(**fields):
    out = {"model": "wan2.7-image", "prompt": PROMPT, "resolution": "1K", "seed": 7}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not None}


def wait_for(c: httpx.Client, task_id: str, status=("completed", "failed", "cancelled"), timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = c.get(f"/tasks/{task_id}").json()
        if data["status"] in status:
            return data
        assert time.monotonic() < deadline, f"task still {data['status']}"
        time.sleep(0.02)


def run(c: httpx.Client, **fields) -> dict:
    """Submit and wait for the terminal status body."""
    r = c.post("/tasks", json=body(**fields), headers={"Prefer": "wait=20"})
    assert r.status_code == 200, r.text
    data = r.json()
    return data if data["status"] in ("completed", "failed") else wait_for(c, data["task_id"])


def fetch_image(url: str) -> Image.Image:
    r = loopback.get(url, timeout=15)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG"
    img.load()
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pattern_image(size=(640, 480)) -> Image.Image:
    """Smooth gradients and a few flat shapes: JPEG-friendly, easy to tell apart."""
    w, h = size
    r = Image.linear_gradient("L").resize(size)
    g = Image.linear_gradient("L").rotate(90).resize(size)
    b = Image.new("L", size, 120)
    img = Image.merge("RGB", (r, g, b))
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.6, h * 0.1, w * 0.9, h * 0.5), fill=(230, 200, 40))
    d.rectangle((w * 0.05, h * 0.6, w * 0.3, h * 0.9), fill=(30, 60, 160))
    return img


def upload(c: httpx.Client, data: bytes) -> dict:
    root = str(c.base_url).rstrip("/").removesuffix("/v1")
    r = c.post(root + "/sim/uploads", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return r.json()


def sim_post(sim, path: str, data: bytes, headers=AUTH) -> httpx.Response:
    return loopback.post(sim.url + path, content=data, headers=headers, timeout=30)


def pixels(img: Image.Image):
    raw = img.convert("RGB").tobytes()
    return [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


@contextmanager
def hook_server():
    """A tiny loopback HTTP server that records the JSON bodies POSTed to it."""
    got: list[tuple[str, dict]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.headers.get("X-Sim-Event", ""), json.loads(raw)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


# -- lifecycle ---------------------------------------------------------------------------------
def test_lifecycle_bodies_and_progress_strings(make_sim):
    sim = make_sim(latency=0.6, concurrency=1)
    with client(sim) as c:
        first = c.post("/tasks", json=body()).json()
        assert first["status"] == "queued" and first["progress"] == 0
        assert first["pre_consumed_cost"] == UNIT and first["action"] == "generate"
        assert first["model"] == "wan2.7-image" and first["task_id"].startswith("task-sim")
        assert isinstance(first["created_at"], int) and first["created_at"] > 10**12  # milliseconds
        second = c.post("/tasks", json=body(seed=8)).json()

        queued = c.get(f"/tasks/{second['task_id']}").json()
        assert queued["status"] == "queued" and queued["progress"] == ""
        time.sleep(0.15)
        running = c.get(f"/tasks/{first['task_id']}").json()
        assert running["status"] == "processing"
        assert re.fullmatch(r"\d{1,2}%", running["progress"]) and 0 < int(running["progress"][:-1]) <= 99
        assert isinstance(running["created_at"], int) and running["created_at"] < 10**11  # seconds
        tid = first["task_id"]
        assert running["urls"] == {"get": f"{sim.base_url}/tasks/{tid}", "cancel": f"{sim.base_url}/tasks/{tid}/cancel"}
        assert "cost" not in running and "result" not in running

        done = wait_for(c, tid)
        assert done["status"] == "completed" and done["progress"] == "100%"
        assert done["cost"] == UNIT and isinstance(done["completed_at"], int)
        assert done["completed_at"] >= done["created_at"]
        [image] = done["result"]["images"]
        assert isinstance(image["url"], list) and len(image["url"]) == 1
        assert image["url"][0] == f"{sim.url}/sim/files/results/{tid}/0.jpg"
        assert image["expires_at"] >= done["completed_at"] + 86400 - 1
        assert done["sim"]["seed"] == 7
        # FIFO: the second task only starts when the first is done
        assert c.get(f"/tasks/{second['task_id']}").json()["status"] in ("processing", "completed")


def test_every_answer_has_content_length_and_json_errors(sim):
    with client(sim) as c:
        for r in (c.get("/tasks/nope"), c.get(sim.url + "/no/such/path"), c.post("/tasks", content=b"{oops")):
            assert r.headers["content-length"] == str(len(r.content))
            err = r.json()["error"]
            assert set(err) >= {"message", "code"}
        assert c.post("/tasks", content=b"{oops").json()["error"]["code"] == "invalid_parameter"
        assert c.delete("/tasks/x").status_code == 405


def test_prefer_wait_returns_terminal_body(sim):
    with client(sim) as c:
        t0 = time.monotonic()
        r = c.post("/tasks", json=body(n=2), headers={"Prefer": "wait=10"})
        assert time.monotonic() - t0 < 5
        data = r.json()
        assert data["status"] == "completed" and data["progress"] == "100%"
        assert data["cost"] == 2 * UNIT and len(data["result"]["images"]) == 2
        assert r.headers["preference-applied"] == "wait=10"


@pytest.mark.slow
def test_prefer_wait_window_ends_before_the_task(make_sim):
    sim = make_sim(latency=10.0)
    with client(sim) as c:
        t0 = time.monotonic()
        data = c.post("/tasks", json=body(), headers={"Prefer": "wait=1"}).json()
        assert 0.9 < time.monotonic() - t0 < 8.0  # the 1 s window, not the 10 s task (with room for a loaded machine)
        assert data["status"] == "processing" and data["progress"].endswith("%")
        assert "result" not in data


def test_polling_path_downloads_a_jpeg_of_the_right_size(sim):
    with client(sim) as c:
        tid = c.post("/tasks", json=body(aspect_ratio="16:9")).json()["task_id"]
        seen = set()
        while (data := c.get(f"/tasks/{tid}").json())["status"] not in ("completed", "failed"):
            seen.add(data["status"])
            time.sleep(0.01)
        assert data["status"] == "completed" and "processing" in seen
        img = fetch_image(data["result"]["images"][0]["url"][0])
        assert img.size == _spec.output_size("16:9", "1K") == (1360, 768)


def test_concurrency_cap_keeps_the_rest_queued_in_order(make_sim):
    sim = make_sim(latency=0.3, concurrency=2)
    with client(sim) as c:
        ids = [c.post("/tasks", json=body(seed=s)).json()["task_id"] for s in range(5)]
        snapshots, most_processing = [], 0
        while True:
            most_processing = max(most_processing, sim.ledger()["by_status"]["processing"])  # atomic count
            # newest first: if a later task has started, an earlier one must have too (FIFO)
            states = [c.get(f"/tasks/{t}").json()["status"] for t in reversed(ids)][::-1]
            snapshots.append(states)
            if all(s == "completed" for s in states):
                break
            time.sleep(0.01)
    assert snapshots[0] == ["processing", "processing", "queued", "queued", "queued"]
    assert most_processing == 2
    for states in snapshots:
        started = [s != "queued" for s in states]
        assert started == sorted(started, reverse=True), states


# -- cancel and money -----------------------------------------------------------------------------
def test_cancel_queued_refunds_and_processing_is_not_cancellable(make_sim):
    sim = make_sim(latency=0.5, concurrency=1)
    with client(sim) as c:
        running = c.post("/tasks", json=body()).json()["task_id"]
        queued = c.post("/tasks", json=body(n=2, seed=9)).json()["task_id"]
        assert sim.ledger()["held_quota"] == 3 * UNIT

        r = c.post(f"/tasks/{queued}/cancel")
        assert r.status_code == 200
        assert r.json() == {"task_id": queued, "status": "cancelled", "refunded": True, "refunded_quota": 2 * UNIT}
        data = c.get(f"/tasks/{queued}").json()
        assert data["status"] == "cancelled" and data["cost"] == 0 and data["progress"] == "100%"

        r = c.post(f"/tasks/{running}/cancel")
        assert r.status_code == 400 and r.json()["error"]["code"] == "task_not_cancellable"
        wait_for(c, running)
        r = c.post(f"/tasks/{running}/cancel")  # terminal: not cancellable either
        assert r.status_code == 400 and r.json()["error"]["code"] == "task_not_cancellable"

        led = sim.ledger()
        assert led["refunded_quota"] == 2 * UNIT and led["billed_quota"] == UNIT and led["held_quota"] == 0
        assert led["by_status"]["cancelled"] == 1 and led["by_status"]["completed"] == 1


def test_idempotent_resubmit_returns_the_same_task_and_bills_once(sim):
    with client(sim) as c:
        key = {"Idempotency-Key": "run-42"}
        a = c.post("/tasks", json=body(), headers=key).json()
        b = c.post("/tasks", json=body(), headers=key)
        assert b.json()["task_id"] == a["task_id"] and b.headers["idempotent-replayed"] == "true"
        wait_for(c, a["task_id"])
        c_ = c.post("/tasks", json=body(), headers={**key, "Prefer": "wait=5"}).json()
        assert c_["task_id"] == a["task_id"] and c_["status"] == "completed"
        led = sim.ledger()
        assert led["submitted"] == 1 and led["idempotent_replays"] == 2
        assert led["billed_quota"] == UNIT and led["billed_images"] == 1

        other = c.post("/tasks", json=body(prompt="another prompt"), headers=key)
        assert other.status_code == 400 and "Idempotency-Key" in other.json()["error"]["message"]
        assert sim.ledger()["submitted"] == 1


def test_failed_task_is_refunded(sim):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "fail_task:upstream_unavailable"}])
    with client(sim) as c:
        data = run(c)
        assert data["status"] == "failed" and data["cost"] == 0 and data["progress"] == "100%"
        assert data["error"]["code"] == "upstream_unavailable" and data["error"]["message"]
        assert "result" not in data
        ok = run(c, seed=8)  # one-shot: the next task is fine
        assert ok["status"] == "completed"
    led = sim.ledger()
    assert led["refunded_quota"] == UNIT and led["billed_quota"] == UNIT and led["held_quota"] == 0
    assert led["by_status"]["failed"] == 1 and led["faults"]["fail_task"] == 1


def test_task_fail_rate_uses_the_configured_code(make_sim):
    sim = make_sim(faults={"task_fail_rate": 1.0, "task_fail_code": "upstream_rate_limited"})
    with client(sim) as c:
        data = run(c)
    assert data["status"] == "failed" and data["error"]["code"] == "upstream_rate_limited"


def test_402_when_balance_runs_out(make_sim):
    sim = make_sim(balance_quota=3 * UNIT)
    with client(sim) as c:
        assert c.post("/tasks", json=body(n=2)).status_code == 200
        r = c.post("/tasks", json=body(n=2, seed=1))
        assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_balance"
        assert c.post("/tasks", json=body(n=1, seed=2)).status_code == 200
    led = sim.ledger()
    assert led["submitted"] == 2 and led["balance_left"] == 0


# -- auth and errors -----------------------------------------------------------------------------
def test_401_without_or_with_a_wrong_key_and_the_key_is_never_echoed(make_sim):
    sim = make_sim(api_key="sk-right-123")
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer sk-wrong-456"},
                    {"Authorization": "sk-right-123"}):
        with client(sim, headers=headers) as c:
            for r in (c.post("/tasks", json=body()), c.get("/tasks/x"), c.post("/tasks/x/cancel"),
                      c.post(sim.url + "/sim/uploads", content=b"x")):
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
                assert "sk-right" not in r.text and "sk-wrong" not in r.text
    with client(sim, headers={"Authorization": "Bearer sk-right-123"}) as c:
        assert c.post("/tasks", json=body()).status_code == 200
    assert sim.ledger()["submitted"] == 1


def test_404_unknown_task(sim):
    with client(sim) as c:
        for r in (c.get("/tasks/task-simnothere"), c.post("/tasks/task-simnothere/cancel")):
            assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"


def test_400_names_every_field_and_rule(sim):
    with client(sim) as c:
        r = c.post("/tasks", json={"model": "wan2.7-image", "prompt": "", "n": 30, "aspect_ratio": "5:4",
                                   "resolution": "8K", "colour": 1})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "invalid_parameter"
        assert "colour" in err["message"]  # unknown field, reported on its own
        r = c.post("/tasks", json={"model": "wan2.7-image", "prompt": "", "n": 30, "aspect_ratio": "5:4",
                                   "resolution": "8K"})
        err = r.json()["error"]
        fields = {p["field"] for p in err["problems"]}
        assert fields == {"prompt", "n", "aspect_ratio", "resolution"}
        for p in err["problems"]:
            assert p["rule"] and p["field"] in err["message"]
    assert sim.ledger()["submitted"] == 0


def test_429_rate_window_with_reset_at_and_retry_after(sim):
    sim.set_faults(rate_cap=2, rate_window=30)
    with client(sim) as c:
        assert [c.post("/tasks", json=body(seed=s)).status_code for s in range(2)] == [200, 200]
        r = c.post("/tasks", json=body(seed=3))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["code"] == "quota_window_exceeded"
        assert err["cap"] == 2 and err["used"] == 2 and err["window"] == 30
        now = time.time()
        assert now < err["reset_at"] <= now + 31
        assert 1 <= int(r.headers["retry-after"]) <= 31
    assert sim.ledger()["submitted"] == 2 and sim.ledger()["faults"]["rate_limited"] == 1


def test_scripted_429_and_5xx_are_one_shot(sim):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "429"}, {"endpoint": "get", "fault": "500"},
                         {"endpoint": "any", "fault": "503"}])
    with client(sim) as c:
        r = c.post("/tasks", json=body())
        assert r.status_code == 429 and "retry-after" in r.headers and "reset_at" in r.json()["error"]
        r = c.post("/tasks", json=body())  # "any" 503 comes next for a submit
        assert r.status_code == 503
        assert sim.ledger()["submitted"] == 0  # 5xx/429 answers: never accepted
        tid = c.post("/tasks", json=body()).json()["task_id"]
        assert c.get(f"/tasks/{tid}").status_code == 500
        assert c.get(f"/tasks/{tid}").status_code == 200
    assert sim.faults()["next"] == []
    assert sim.ledger()["faults"] == {"rate_limited": 1, "error_5xx": 2}


def test_error_rate_answers_5xx_without_creating_tasks(make_sim):
    sim = make_sim(faults={"error_rate": 1.0, "error_status": 502})
    with client(sim) as c:
        r = c.post("/tasks", json=body())
        assert r.status_code == 502 and r.json()["error"]["code"] == "server_error"
    assert sim.ledger()["submitted"] == 0


def test_scripted_drop_on_submit_creates_the_task_and_the_retry_finds_it(sim):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "drop"}])
    key = {"Idempotency-Key": "drop-me"}
    with client(sim) as c:
        with pytest.raises(httpx.TransportError):
            c.post("/tasks", json=body(), headers=key)
        assert sim.ledger()["submitted"] == 1  # the task exists although no answer came
        again = c.post("/tasks", json=body(), headers={**key, "Prefer": "wait=10"})
        assert again.status_code == 200 and again.json()["status"] == "completed"
    led = sim.ledger()
    assert led["submitted"] == 1 and led["idempotent_replays"] == 1 and led["billed_quota"] == UNIT
    assert led["faults"]["drop"] == 1


def test_slow_fault_delays_the_answer(sim):
    sim.set_faults(next=[{"endpoint": "get", "fault": "slow:0.4"}])
    with client(sim) as c:
        tid = c.post("/tasks", json=body()).json()["task_id"]
        t0 = time.monotonic()
        assert c.get(f"/tasks/{tid}").status_code == 200
        assert time.monotonic() - t0 >= 0.4


def test_fault_settings_are_checked(sim):
    r = loopback.post(sim.url + "/sim/faults", json={"error_rate": 2})
    assert r.status_code == 400 and "error_rate" in r.json()["error"]["message"]
    r = loopback.post(sim.url + "/sim/faults", json={"next": [{"endpoint": "get", "fault": "fail_task:x"}]})
    assert r.status_code == 400
    r = loopback.post(sim.url + "/sim/faults", json={"drop_rate": 0.5, "slow": 0.1})
    assert r.status_code == 200 and r.json()["drop_rate"] == 0.5
    with pytest.raises(ValueError, match="bogus"):
        sim.set_faults(bogus=1)
    assert sim.set_faults(reset=True)["drop_rate"] == 0


def test_random_faults_repeat_with_the_seed(make_sim):
    def pattern(seed):
        s = make_sim(seed=seed, faults={"error_rate": 0.5})
        with client(s) as c:
            return [c.get("/tasks/x").status_code for _ in range(12)]

    a, b = pattern(5), pattern(5)
    assert a == b and set(a) == {404, 503}


@pytest.mark.slow
# -- files ---------------------------------------------------------------------------------------
def test_result_link_expires_with_410(make_sim):
    sim = make_sim(link_ttl=1.5)  # long enough for the first GET on a loaded machine
    with client(sim) as c:
        data = run(c)
        url = data["result"]["images"][0]["url"][0]
        assert loopback.get(url).status_code == 200
        expires_at = data["result"]["images"][0]["expires_at"]  # whole seconds, rounded down
        time.sleep(max(0.0, expires_at + 1.05 - time.time()))
        r = loopback.get(url)
        assert r.status_code == 410 and r.json()["error"]["code"] == "link_expired"


def test_uploads_are_checked_served_and_usable(sim):
    src = pattern_image((320, 200))
    data = png_bytes(src)
    with client(sim) as c:
        up = upload(c, data)
        assert up["width"] == 320 and up["height"] == 200 and up["format"] == "PNG"
        assert re.fullmatch(re.escape(sim.url) + r"/sim/files/uploads/[0-9a-f]{64}\.png", up["url"])
        assert loopback.get(up["url"]).content == data  # served without auth

        bad = c.post(sim.url + "/sim/uploads", content=b"GIF89a not allowed")
        assert bad.status_code == 400 and "image_urls" in bad.json()["error"]["message"]
        huge = c.post(sim.url + "/sim/uploads", content=data[:8] + bytes(_spec.MAX_IMAGE_BYTES))
        assert huge.status_code == 400 and huge.json()["error"]["problems"][0]["rule"] == "max_size"
        assert "image_urls" in huge.json()["error"]["message"]

        done = run(c, action="image2image", image_urls=[up["url"]], aspect_ratio="3:4")
        assert done["status"] == "completed" and done["sim"]["notes"] == []
        img = fetch_image(done["result"]["images"][0]["url"][0])
        assert img.size == _spec.output_size("3:4", "1K")

        unknown_upload = sim.url + "/sim/files/uploads/" + "0" * 64 + ".png"
        missing = c.post("/tasks", json=body(action="edit", image_urls=[unknown_upload]))
        assert missing.status_code == 400 and missing.json()["error"]["problems"][0]["field"] == "image_urls[0]"


def test_local_paths_in_image_urls_are_refused(sim):
    with client(sim) as c:
        r = c.post("/tasks", json=body(action="image2image", image_urls=["/etc/hostname"]))
        assert r.status_code == 400 and r.json()["error"]["problems"][0]["field"] == "image_urls[0]"


@pytest.fixture
def looked_up(monkeypatch):
    """Host names looked up off loopback (each refused): a test asserts it stays empty."""
    names = []
    real = socket.getaddrinfo

    def guarded(host, *a, **kw):
        if host not in ("127.0.0.1", "localhost", "::1"):
            names.append(host)
            raise OSError("network use in a test")
        return real(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return names


def test_non_loopback_url_becomes_a_placeholder_without_any_network_attempt(sim, looked_up):
    with client(sim) as c:
        done = run(c, action="edit", image_urls=["https://cdn.example.com/cat.jpg"], prompt="make it blue")
    assert looked_up == []
    assert done["status"] == "completed"
    assert any("placeholder" in n and "cdn.example.com" in n for n in done["sim"]["notes"])


def test_loopback_url_is_fetched(sim):
    img = pattern_image((300, 300))
    payload = png_bytes(img)

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with client(sim) as c:
            url = f"http://localhost:{server.server_address[1]}/in.png"
            done = run(c, action="interactive_edit", image_urls=[url], bbox_list=[[[10, 10, 100, 100]]])
        assert done["status"] == "completed"
        assert fetch_image(done["result"]["images"][0]["url"][0]).size == (300, 300)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_urls_only_takes_its_own_live_links_and_loopback_urls_like_the_hosted_api(make_sim, looked_up):
    """Hosted-like: no /sim/uploads; its own result links while they live, loopback URLs;
    anything else is refused (no placeholder), and no network is touched."""
    sim = make_sim(urls_only=True, link_ttl=1.0)
    info = loopback.get(sim.url + "/sim").json()
    assert info["urls_only"] is True and "POST /sim/uploads" not in info["endpoints"]
    with client(sim) as c:
        refused = c.post(sim.url + "/sim/uploads", content=png_bytes(pattern_image((64, 64))))
        assert refused.status_code == 404 and "urls_only" in refused.json()["error"]["message"]

        link = run(c)["result"]["images"][0]["url"][0]
        done = run(c, action="edit", image_urls=[link], prompt="make it blue")
        assert done["status"] == "completed" and done["sim"]["notes"] == []

        away = c.post("/tasks", json=body(action="edit", image_urls=["https://cdn.example.com/cat.jpg"]))
        problem = away.json()["error"]["problems"][0]
        assert away.status_code == 400 and (problem["field"], problem["rule"]) == ("image_urls[0]", "fetchable")
        assert "cdn.example.com" in problem["message"] and looked_up == []

        time.sleep(1.1)
        late = c.post("/tasks", json=body(action="edit", image_urls=[link]))
        assert late.status_code == 400 and "expired" in late.json()["error"]["problems"][0]["message"]
    ledger = sim.ledger()
    assert ledger["submitted"] == 2 and ledger["billed_quota"] == 2 * UNIT


# -- callbacks -----------------------------------------------------------------------------------
def test_callbacks_on_listed_states_and_terminal(sim):
    with hook_server() as (url, got), client(sim) as c:
        tid = c.post("/tasks", json=body(callback_url=url, callback_events=["processing"])).json()["task_id"]
        wait_for(c, tid)
        ready(lambda: len(got) >= 2, what="both callbacks to arrive")
        assert [(e, b["status"]) for e, b in got] == [("processing", "processing"), ("completed", "completed")]
        final = got[-1][1]
        assert final["task_id"] == tid and final["cost"] == UNIT and final["result"]["images"]
    assert sim.ledger()["callbacks"] == {"sent": 2}


def test_callbacks_to_other_hosts_are_skipped(sim):
    with client(sim) as c:
        done = run(c, callback_url="https://hooks.example.com/x")
    assert done["status"] == "completed"
    assert any("callback_url" in n for n in done["sim"]["notes"])
    assert sim.ledger()["callbacks"] == {"skipped": 1}


# -- images ----------------------------------------------------------------------------------------
# drawing every 4K size takes seconds: that case is in the slow tier
SLOW_4K = [pytest.param(r, marks=[pytest.mark.slow] if r == "4K" else []) for r in _spec.RESOLUTIONS]


@pytest.mark.parametrize("resolution", SLOW_4K)
def test_renderer_sizes_for_every_aspect_ratio(resolution):
    for aspect in _spec.ASPECT_RATIOS:
        req = build_request(prompt=PROMPT, aspect_ratio=aspect, resolution=resolution, seed=3)
        t0 = time.thread_time()  # CPU time: what the renderer costs, however busy the machine is
        [jpeg] = _render.render(req)
        assert time.thread_time() - t0 < 2.0
        img = Image.open(io.BytesIO(jpeg))
        assert img.format == "JPEG" and img.size == _spec.output_size(aspect, resolution)


@pytest.mark.parametrize(("aspect", "resolution"), [("1:1", "1K"), ("9:16", "1K"), ("3:2", "2K"), ("16:9", "4K")])
def test_sizes_through_http(sim, aspect, resolution):
    with client(sim) as c:
        done = run(c, aspect_ratio=aspect, resolution=resolution)
    assert fetch_image(done["result"]["images"][0]["url"][0]).size == _spec.output_size(aspect, resolution)


def test_same_seed_same_bytes_other_seed_other_image(sim):
    with client(sim) as c:
        urls = [run(c, seed=s)["result"]["images"][0]["url"][0] for s in (11, 11, 12)]
        a, b, other = (loopback.get(u).content for u in urls)
    assert a == b
    assert a != other
    assert mean_diff(Image.open(io.BytesIO(a)), Image.open(io.BytesIO(other))) > 20


def test_random_seed_is_resolved_and_reported(sim):
    with client(sim) as c:
        done = run(c, seed=-1)
    assert 0 <= done["sim"]["seed"] <= _spec.SEED_MAX


@pytest.mark.slow
def test_palette_colours_cover_areas_in_proportion():
    palette = [("#0A2540", 50), ("#F5F5F0", 30), ("#E04B3A", 20)]
    colours = [_render.hex_rgb(h) for h, _ in palette]
    for seed in (1, 2, 3):
        req = build_request(
            prompt="p", resolution="1K", seed=seed, color_palette=[{"hex": h, "ratio": r} for h, r in palette]
        )
        img = _render.render_one(req, [], 0).resize((256, 256))
        counts = [0, 0, 0]
        for px in pixels(img):
            nearest = min(range(3), key=lambda i: sum((a - b) ** 2 for a, b in zip(px, colours[i], strict=True)))
            counts[nearest] += 1
        shares = [100 * n / sum(counts) for n in counts]
        for (_, ratio), share in zip(palette, shares, strict=True):
            assert abs(share - ratio) < 15, (seed, shares)


def test_group_panels_are_related_but_distinct(sim):
    with client(sim) as c:
        done = run(c, enable_sequential=True, n=3, aspect_ratio="4:3")
    assert done["action"] == "group" and done["cost"] == 3 * UNIT
    panels = [fetch_image(i["url"][0]) for i in done["result"]["images"]]
    assert len(panels) == 3 and all(p.size == _spec.output_size("4:3", "1K") for p in panels)
    assert mean_diff(panels[0], panels[1]) > 1 and mean_diff(panels[1], panels[2]) > 1
    assert mean_diff(panels[0], panels[1]) < 60  # same palette and layout


def test_reference_mode_fuses_its_inputs(sim):
    red, blue = Image.new("RGB", (200, 200), (220, 20, 20)), Image.new("RGB", (200, 200), (20, 20, 220))
    with client(sim) as c:
        urls = [upload(c, png_bytes(im))["url"] for im in (red, blue)]
        done = run(c, image_urls=urls)
    assert done["action"] == "reference" and done["status"] == "completed"
    img = fetch_image(done["result"]["images"][0]["url"][0]).convert("RGB")
    reds = blues = 0
    for r, _g, b in pixels(img.resize((64, 64))):
        reds += r > b + 60
        blues += b > r + 60
    assert reds > 200 and blues > 200


def test_watermark_is_drawn():
    req = build_request(prompt=PROMPT, resolution="1K", seed=5)
    plain = _render.render_one(req, [], 0)
    marked = _render.render_one(req.replace(watermark=True), [], 0)
    w, h = plain.size
    corner = (w * 3 // 4, h * 7 // 8, w, h)
    assert mean_diff(plain.crop(corner), marked.crop(corner)) > 5
    top = (0, 0, w, h // 2)
    assert mean_diff(plain.crop(top), marked.crop(top)) == 0


def _outside_mask(size, boxes, margin):
    mask = Image.new("L", size, 255)
    d = ImageDraw.Draw(mask)
    for x1, y1, x2, y2 in boxes:
        d.rectangle((x1 - margin, y1 - margin, x2 + margin - 1, y2 + margin - 1), fill=0)
    return mask


def test_interactive_edit_changes_pixels_only_inside_the_boxes(sim):
    src = pattern_image((640, 480))
    boxes = [(100, 80, 300, 260), (400, 300, 560, 440)]
    with client(sim) as c:
        up = upload(c, png_bytes(src))
        done = run(
            c,
            action="interactive_edit",
            image_urls=[up["url"]],
            bbox_list=[[list(b) for b in boxes]],
            prompt="replace with a lantern",
            watermark=True,
        )
    assert done["status"] == "completed"
    out = fetch_image(done["result"]["images"][0]["url"][0]).convert("RGB")
    assert out.size == src.size  # the input's own pixel size
    diff = ImageChops.difference(out, src).convert("L")
    outside = ImageStat.Stat(diff, _outside_mask(src.size, boxes, margin=8)).mean[0]
    assert outside < 1.5, outside
    for box in boxes:
        assert mean_diff(out.crop(box), src.crop(box)) > 30


def test_interactive_edit_before_encoding_is_exact():
    src = pattern_image((500, 400))
    boxes = ((50, 60, 210, 190),)
    req = build_request(
        prompt="p",
        action="interactive_edit",
        seed=4,
        watermark=True,
        image_urls=["https://x.example/a.png"],
        bbox_list=[[list(boxes[0])]],
    )
    out = _render.render_one(req, [src], 0)
    diff = ImageChops.difference(out, src)
    diff.paste((0, 0, 0), boxes[0])
    assert diff.getbbox() is None  # not one pixel changed outside the box
    assert mean_diff(out.crop(boxes[0]), src.crop(boxes[0])) > 30


def test_bbox_outside_the_image_is_rejected(sim):
    with client(sim) as c:
        up = upload(c, png_bytes(pattern_image((200, 100))))
        r = c.post(
            "/tasks", json=body(action="interactive_edit", image_urls=[up["url"]], bbox_list=[[[10, 10, 150, 120]]])
        )
    assert r.status_code == 400
    assert r.json()["error"]["problems"][0]["rule"] == "inside_image"


# -- ledger and CLI ---------------------------------------------------------------------------------
def test_ledger_over_http_counts_requests(sim):
    with client(sim) as c:
        run(c)
        c.get("/tasks/none")
    led = loopback.get(sim.url + "/sim/ledger").json()
    direct = sim.ledger()
    assert {k: v for k, v in led.items() if k not in ("requests", "responses")} == {
        k: v for k, v in direct.items() if k not in ("requests", "responses")
    }
    assert direct["requests"]["ledger"] == 1
    assert led["requests"]["submit"] == 1 and led["requests"]["get"] >= 1
    for key in (
        "submitted",
        "billed_quota",
        "refunded_quota",
        "held_quota",
        "idempotent_replays",
        "by_status",
        "requests",
        "faults",
        "callbacks",
    ):
        assert key in led


@pytest.mark.subprocess
def test_cli_prints_the_base_url_and_serves():
    cmd = [
        sys.executable,
        "-m",
        "wan_nb.sim",
        "--port",
        "0",
        "--latency",
        "0.05",
        "--seed",
        "1",
        "--rate-cap",
        "5",
        "--urls-only",
    ]
    with child(cmd) as proc:
        line = proc.stdout.readline().strip()  # the simulator prints its URL once it listens
        started = re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", line)
        assert started, f"the simulator did not start{describe(*finish(proc))}"
        faults = loopback.get(line[: -len("/v1")] + "/sim/faults", timeout=30).json()
        assert faults["rate_cap"] == 5
        assert loopback.get(line[: -len("/v1")] + "/sim", timeout=30).json()["urls_only"] is True
        r = loopback.post(line + "/tasks", json=body(), headers={**AUTH, "Prefer": "wait=5"}, timeout=30)
        assert r.json()["status"] == "completed"


def test_result_memory_is_bounded_oldest_links_expire_first():
    """Hours of sweeping must not grow the kernel without end: past the bound, the
    oldest results' links expire early (410 link_expired), newer ones stay."""
    from wan_nb.sim._files import FileStore

    store = FileStore(max_result_bytes=250)
    far = time.time() + 3600
    for task in ("t1", "t2", "t3"):
        store.publish(task, [b"x" * 100], far)
    assert store.held_bytes == 200
    assert store.get("results/t1/0.jpg").expired_at is not None
    assert store.get("results/t2/0.jpg").found and store.get("results/t3/0.jpg").found


def test_simulator_memory_bound_is_a_knob(tmp_path):
    import wan_nb as wan

    with Simulator(latency=0.01, max_result_mb=0.05) as sim:  # ~50 KB: about one 1K image
        with wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as client:
            first = client.wait(client.submit({"prompt": "first", "seed": 1, "resolution": "1K"}))
            client.run({"prompt": "second", "seed": 2, "resolution": "1K"})  # downloads at once: fine
            with pytest.raises(wan.LinkExpiredError):
                client.download(first)  # evicted: the client must download at once, and does


# -- malformed bodies, broken downloads, honest messages (issue 8) ---------------------------------
def _raw_exchange(sim, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection; the status code and the body of the answer."""
    with socket.create_connection((sim.host, sim.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += s.recv(65536)
    return int(head.split(b" ")[1]), rest[:length]


def test_an_escaped_lone_surrogate_is_a_400_and_nothing_is_held(sim):
    with client(sim) as c:
        r = c.post(
            "/tasks",
            content=b'{"model": "wan2.7-image", "prompt": "fox \\ud800"}',
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 400 and r.json()["error"]["problems"][0]["field"] == "prompt"
    led = sim.ledger()
    assert led["submitted"] == 0 and led["held_quota"] == 0 and led["by_status"]["processing"] == 0


def test_json_nested_100k_deep_is_a_400(sim):
    deep = b"[" * 100_000 + b"]" * 100_000
    with client(sim) as c:
        r = c.post("/tasks", content=deep, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"
        assert "nested" in r.json()["error"]["message"]
        assert c.post("/tasks", json=body()).status_code == 200  # the server is fine afterwards
        f = loopback.post(sim.url + "/sim/faults", content=b'{"next": ' + deep + b"}")
        assert f.status_code == 400


def test_a_bad_chunk_size_is_a_400(sim):
    status, answer = _raw_exchange(
        sim,
        (
            b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        ),
    )
    assert status == 400 and json.loads(answer)["error"]["problems"][0]["field"] == "body"
    assert sim.ledger()["submitted"] == 0


def test_corrupt_fault_truncates_a_download_scripted_and_by_rate(make_sim):
    sim = make_sim()
    with client(sim) as c:
        task = wait_for(c, c.post("/tasks", json=body()).json()["task_id"])
        url = task["result"]["images"][0]["url"][0]
        whole = loopback.get(url).content
        sim.set_faults(next=[{"endpoint": "file", "fault": "corrupt"}])
        cut = loopback.get(url)
        assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content) < len(whole)
        assert whole.startswith(cut.content)
        with pytest.raises((OSError, SyntaxError)):  # Pillow: "truncated" or "not an image"
            Image.open(io.BytesIO(cut.content)).load()
        assert loopback.get(url).content == whole  # one-shot
        sim.set_faults(corrupt_rate=1.0)
        assert len(loopback.get(url).content) < len(whole)
        assert sim.ledger()["faults"]["corrupt"] == 2
    with pytest.raises(Exception, match="endpoint must be file"):
        sim.set_faults(next=[{"endpoint": "submit", "fault": "corrupt"}])


def test_the_corrupt_rate_is_a_command_line_flag():
    from wan_nb.sim.__main__ import FAULT_OPTIONS, parse_args

    assert "corrupt_rate" in FAULT_OPTIONS and parse_args(["--corrupt-rate", "0.5"]).corrupt_rate == 0.5


def test_402_says_insufficient_balance_once(make_sim, tmp_path):
    import wan_nb as wan

    sim = make_sim(balance_quota=UNIT // 2)
    with wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as c:
        with pytest.raises(wan.InsufficientBalanceError) as info:
            c.submit({"prompt": "no money", "resolution": "1K"})
    assert str(info.value).lower().count("insufficient balance") == 1, str(info.value)
    assert str(UNIT) in str(info.value)


def test_an_evicted_link_says_when_it_really_ended(tmp_path):
    import wan_nb as wan

    with Simulator(latency=0.01, max_result_mb=0.05) as sim:  # about one 1K image
        with wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as c:
            first = c.wait(c.submit({"prompt": "first", "seed": 1, "resolution": "1K"}))
            c.run({"prompt": "second", "seed": 2, "resolution": "1K"})  # evicts the first
            now = time.time()
            again = c.get(first.task_id)
            assert again.images[0].expires_at <= now + 1, "the status must not promise an evicted link"
            with pytest.raises(wan.LinkExpiredError) as info:
                c.download(first)  # with the expiry it announced before the eviction
    message = str(info.value)
    years = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", message)
    assert years and all(calendar.timegm(time.strptime(y, "%Y-%m-%d %H:%M:%S UTC")) <= now + 1 for y in years)
    assert "410" in message and "billed" in message
