"""Session-level promises: connecting, fetching a task later, inputs for the hosted API."""

from __future__ import annotations

import io

import loopback
import pytest
from children import wait_for
from PIL import Image

import wan_nb as wan
from wan_nb.sim import Simulator


@pytest.fixture
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_a_task_sent_outside_the_log_is_fetched_stored_and_logged(tmp_path, no_env):
    """wan.fetch(task_id) in the fast tier (the deadline case below waits out real seconds)."""
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            task = sess.client.submit({"prompt": "sent by hand", "seed": 2, "resolution": "1K"}, wait=0)
            assert sess.log.runs(task_id=task.task_id).empty
            fetched = wan.fetch(task.task_id)
            assert fetched.paths[0].is_file()
            rows = sess.log.runs(task_id=task.task_id)
            assert len(rows) == 1 and rows.iloc[0]["status"] == "completed" and rows.iloc[0]["n_images"] == 1
        finally:
            sess.close()


@pytest.mark.slow
def test_task_past_its_deadline_can_be_fetched_later(tmp_path, no_env):
    with Simulator(latency=2.5) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            with pytest.raises(wan.TaskTimeout) as info:
                wan.generate("slow one", seed=1, resolution="1K", timeout=0.8)
            assert not info.value.cancelled and "wan.fetch" in str(info.value)
            task_id = info.value.task_id
            row = sess.log.runs(task_id=task_id).iloc[0]
            assert row["status"] == "processing"  # in flight, not written off
            later = wan.fetch(task_id)
            assert later.paths[0].is_file()
            rows = sess.log.runs(task_id=task_id)
            assert len(rows) == 1 and rows.iloc[0]["status"] == "completed" and rows.iloc[0]["n_images"] == 1
            assert sim.ledger()["submitted"] == 1 and sim.ledger()["billed_quota"] == 11475
        finally:
            sess.close()


def test_hosted_api_needs_an_uploader_for_local_images(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    with wan.Client("k", "https://api.invalid/v1", store=wan.Store(tmp_path)) as client:
        with pytest.raises(wan.RequestError, match="uploader") as info:
            client.submit({"prompt": "x", "image_urls": [buf.getvalue()]})
    (problem,) = info.value.problems
    assert (problem.field, problem.rule) == ("image_urls[0]", "needs_url")
    assert "connect(uploader=" in problem.message and "public http(s) URL" in problem.message


def test_uploader_function_is_used_for_local_images(tmp_path):
    seen = []
    with Simulator(latency=0.05) as sim:
        def uploader(data: bytes, content_type: str) -> str:
            seen.append(content_type)

            return loopback.post(sim.url + "/sim/uploads", content=data, headers={"Authorization": "Bearer k"}).json()[
                "url"
            ]

        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (0, 90, 0)).save(buf, "PNG")
        with wan.Client("k", sim.base_url, store=wan.Store(tmp_path), uploader=uploader) as client:
            out = client.run({"prompt": "from my bucket", "image_urls": [buf.getvalue()], "resolution": "1K"})
            client.run({"prompt": "same image again", "image_urls": [buf.getvalue()], "resolution": "1K"})
    assert out.images and seen == ["image/png"]  # uploaded once, with its type


def test_connect_can_ask_for_the_key_and_never_shows_it(tmp_path, no_env, monkeypatch, capsys):
    secret = "sk-ASKED-FOR-777"
    monkeypatch.setattr("getpass.getpass", lambda prompt="": secret)
    with Simulator(latency=0.05, api_key=secret) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, ask=True)
        try:
            r = wan.generate("asked", seed=2, resolution="1K")
            assert r.paths and secret not in repr(sess) and secret not in repr(sess.client)
        finally:
            sess.close()
    assert secret not in capsys.readouterr().out


def test_connect_without_key_to_a_remote_url_is_a_clear_error(no_env):
    with pytest.raises(wan.ConfigError, match="WAVE_API_KEY"):
        wan.connect(base_url="https://api.invalid/v1", quiet=True)


def test_connect_without_anything_starts_the_simulator_and_says_so(tmp_path, no_env, capsys):
    sess = wan.connect(home=tmp_path)
    try:
        line = capsys.readouterr().out.strip()
        assert line.count("\n") == 0 and "simulator" in line and str(tmp_path) in line
        assert sess.backend == "simulator" and sess.simulator is not None
    finally:
        sess.close()


def test_the_run_is_in_the_log_before_the_request_is_answered(tmp_path, no_env):
    """What resume stands on: while the submit is still held by the server, the log
    already has the run with its Idempotency-Key."""
    import threading

    with Simulator(latency=3.0) as sim:  # the server holds the submit 3 s: the log is read inside that
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            worker = threading.Thread(
                target=wan.generate, args=("logged first",), kwargs={"seed": 4, "resolution": "1K"}
            )
            worker.start()
            wait_for(lambda: sim.ledger()["submitted"] >= 1, what="the submit to reach the server")
            rows = sess.log.runs()
            assert sim.ledger()["by_status"]["completed"] == 0  # the task is still running
            assert len(rows) == 1 and rows.iloc[0]["status"] == "planned"
            assert rows.iloc[0]["idempotency_key"].startswith("wan-nb-")
            worker.join(120)
            assert sess.log.runs().iloc[0]["status"] == "completed"
        finally:
            sess.close()
