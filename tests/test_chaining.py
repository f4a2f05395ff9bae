"""With a real key, yesterday's result is today's input: chaining on a hosted-like
simulator (``urls_only=True``: no /sim/uploads, URLs only, result links that expire).

Every test talks to the simulator over loopback HTTP and reads its ledger: a reused
link means no upload happened, an error "before sending" means nothing was submitted
or billed and nothing was logged.
"""

from __future__ import annotations

import hashlib
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from children import child, wait_for

import wan_nb as wan
from wan_nb import _spec
from wan_nb.sim import Simulator


@pytest.fixture
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def connected(sim: Simulator, home, **kw) -> Iterator[wan.Session]:
    sess = wan.connect(base_url=sim.base_url, home=home, quiet=True, **kw)
    try:
        yield sess
    finally:
        sess.close()


@contextmanager
def bucket() -> Iterator[tuple[dict, str]]:
    """A loopback stand-in for an object store: PUT-less, the uploader writes into
    ``files`` and the simulator GETs them back over HTTP."""
    files: dict[str, bytes] = {}

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path.lstrip("/"))
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield files, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_until_expired(expires_at: float) -> None:
    while time.time() <= expires_at:
        time.sleep(0.05)


def sent_urls(sess: wan.Session, result: wan.Result) -> list[tuple[str, str | None]]:
    return [(row["via"], row["url"]) for row in sess.log.inputs(result.run_id)]


def test_generate_edit_interactive_edit_reference_chain_by_result_links(tmp_path, no_env):
    """The issue's "done when": each step takes the previous results, nothing is
    uploaded (the simulator has no upload endpoint), and the log shows the lineage."""
    with Simulator(latency=0.05, urls_only=True) as sim, connected(sim, tmp_path) as sess:
        r1 = wan.generate("a lighthouse on a cliff", seed=1, resolution="1K", aspect_ratio="4:3")
        r2 = wan.edit("add a red boat", r1, seed=2, resolution="1K")
        w, h = r2.images[0].size
        r3 = wan.interactive_edit("a flock of gulls", r2, [[w // 4, h // 4, w // 2, h // 2]], seed=3)
        r4 = wan.reference("fuse the three", [r3, r2, r1], seed=4, resolution="1K")

        ledger = sim.ledger()
        assert ledger["requests"].get("upload", 0) == 0
        assert ledger["submitted"] == 4 and ledger["billed_quota"] == 4 * _spec.UNIT_QUOTA
        assert ledger["by_status"]["completed"] == 4
        # each input went out as the earlier result's own link
        assert sent_urls(sess, r2) == [("link", r1.images[0].source_url)]
        assert sent_urls(sess, r3) == [("link", r2.images[0].source_url)]
        assert sent_urls(sess, r4) == [("link", r.images[0].source_url) for r in (r3, r2, r1)]
        assert r3.images[0].size == (w, h)  # interactive_edit keeps the input's size
        # the request names its input by content, however it travelled
        assert r2.request.canonical()["image_urls"] == [f"sha256:{r1.images[0].sha256}"]

        chain = wan.log().lineage(r4)
        assert list(chain["run_id"]) == [r1.run_id, r2.run_id, r3.run_id, r4.run_id]
        assert list(chain["action"]) == ["generate", "edit", "interactive_edit", "reference"]
        assert list(chain["made_from"]) == [[], [r1.run_id], [r2.run_id], [r3.run_id, r2.run_id, r1.run_id]]
        assert list(chain["depth"]) == [1, 1, 1, 0]
        assert list(wan.log().lineage(r3.run_id)["run_id"]) == [r1.run_id, r2.run_id, r3.run_id]


def test_a_run_folder_file_or_its_bytes_go_as_the_link_and_are_the_same_request(tmp_path, no_env):
    with Simulator(latency=0.05, urls_only=True) as sim, connected(sim, tmp_path) as sess:
        r1 = wan.generate("a paper-cut fox", seed=5, resolution="1K")
        by_path = wan.edit("in snow", r1.path, seed=6, resolution="1K")
        assert sent_urls(sess, by_path) == [("link", r1.images[0].source_url)]
        by_bytes = wan.edit("at night", r1.path.read_bytes(), seed=6, resolution="1K")
        assert sent_urls(sess, by_bytes) == [("link", r1.images[0].source_url)]
        # same image, same fields: the same request whether given as a Result, a path or bytes
        again = wan.edit("in snow", r1, seed=6, resolution="1K")
        assert again.cache_hit and again.request.request_hash == by_path.request.request_hash
        assert sim.ledger()["requests"].get("upload", 0) == 0 and sim.ledger()["submitted"] == 3
        assert list(sess.log.lineage(by_bytes)["run_id"]) == [r1.run_id, by_bytes.run_id]


@pytest.mark.slow
def test_an_expired_link_without_uploader_is_a_clear_error_before_anything_is_sent(tmp_path, no_env):
    with Simulator(latency=0.05, urls_only=True, link_ttl=2) as sim, connected(sim, tmp_path) as sess:
        sess.client.aio.link_margin = 0.5
        r1 = wan.generate("a short-lived link", seed=7, resolution="1K")
        expires_at = r1.images[0].expires_at
        wait_until_expired(expires_at)
        before = sim.ledger()
        runs_before = len(sess.log.runs())

        for given in (r1, r1.path):
            with pytest.raises(wan.RequestError) as info:
                wan.edit("too late", given, seed=8, resolution="1K")
            (problem,) = info.value.problems
            assert (problem.field, problem.rule) == ("image_urls[0]", "link_expired")
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_at))
            assert str(r1.path) in problem.message and f"expired at {when}" in problem.message
            assert "connect(uploader=" in problem.message and "public http(s) URL" in problem.message

        after = sim.ledger()
        assert after["submitted"] == before["submitted"] == 1
        assert after["billed_quota"] == before["billed_quota"] and after["held_quota"] == 0
        assert after["requests"].get("submit") == before["requests"].get("submit")
        assert len(sess.log.runs()) == runs_before  # nothing logged for a run that never left
        assert sess.budget.held_quota == 0


def test_a_link_close_to_its_end_is_not_sent(tmp_path, no_env):
    """Within the safety margin the link still works, but would not by the time the
    server fetches it: the same clear error, with the time it expires."""
    with Simulator(latency=0.05, urls_only=True, link_ttl=60) as sim, connected(sim, tmp_path) as sess:
        r1 = wan.generate("almost expired", seed=9, resolution="1K")
        sess.client.aio.link_margin = 120
        with pytest.raises(wan.RequestError, match=r"expires at .* too soon") as info:
            wan.edit("not now", r1, seed=10, resolution="1K")
        assert info.value.problems[0].rule == "link_expired"
        assert sim.ledger()["submitted"] == 1


@pytest.mark.slow
def test_the_uploader_is_used_once_the_link_has_expired(tmp_path, no_env):
    with bucket() as (files, host), Simulator(latency=0.05, urls_only=True, link_ttl=2) as sim:
        calls = []

        def uploader(data: bytes, content_type: str) -> str:
            calls.append(content_type)
            name = hashlib.sha256(data).hexdigest() + ".jpg"
            files[name] = data
            return f"{host}/{name}"

        with connected(sim, tmp_path, uploader=uploader) as sess:
            sess.client.aio.link_margin = 0.5
            r1 = wan.generate("kept in my bucket", seed=11, resolution="1K")
            r2 = wan.edit("while the link lives", r1, seed=12, resolution="1K")
            assert calls == [] and sent_urls(sess, r2) == [("link", r1.images[0].source_url)]

            wait_until_expired(r1.images[0].expires_at)
            r3 = wan.edit("after it died", r1, seed=13, resolution="1K")
            assert calls == ["image/jpeg"] and sent_urls(sess, r3) == [("upload", None)]
            assert r3.status == "completed" and sim.ledger()["requests"].get("upload", 0) == 0
            # uploaded or linked, lineage follows the bytes
            assert list(sess.log.lineage(r3)["run_id"]) == [r1.run_id, r3.run_id]
            # the request that went by link is the same request now: a cache hit, nothing sent
            again = wan.edit("while the link lives", r1, seed=12, resolution="1K")
            assert again.cache_hit and len(calls) == 1 and sim.ledger()["submitted"] == 3


RESUMED = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    print("SENDING", flush=True)
    wan.edit("lost with the kernel", sys.argv[3], seed=14, resolution="1K")
""")


@pytest.mark.subprocess
@pytest.mark.parametrize("link_at_resume", ["fresh", "inside_margin"])
def test_a_run_resumed_after_a_lost_kernel_sends_the_same_link(tmp_path, no_env, link_at_resume):
    """The kernel dies while the server holds the submit: the log has the run, planned,
    and the link it sent. Re-running the cell re-submits with the same key and the same
    body (no upload endpoint to fall back on), so the server replays its task: one bill.
    Even when the link is by then inside the safety margin: a key goes with one body
    (a new placement would be refused here, or change the body under that key)."""
    with Simulator(latency=2.0, urls_only=True) as sim:
        with connected(sim, tmp_path):
            r1 = wan.generate("the source", seed=15, resolution="1K")
        env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
        # the server makes the task, then holds the answer far longer than the kill takes to land
        sim.set_faults(next=[{"endpoint": "submit", "fault": "slow:120"}])
        with child([sys.executable, "-c", RESUMED, sim.base_url, str(tmp_path), str(r1.path)], env=env) as proc:
            wait_for(lambda: sim.ledger()["submitted"] >= 2, proc=proc, what="the child's submit to reach the server")
            proc.kill()
        assert sim.ledger()["submitted"] == 2

        with connected(sim, tmp_path) as sess:
            if link_at_resume == "inside_margin":
                sess.client.aio.link_margin = r1.images[0].expires_at - time.time() + 60
            (lost,) = [r for r in sess.records.find_runs() if r["prompt"] == "lost with the kernel"]
            assert lost["status"] == "planned" and lost["task_id"] is None
            assert [(i["via"], i["url"]) for i in sess.log.inputs(lost["run_id"])] == [
                ("link", r1.images[0].source_url)]
            out = wan.edit("lost with the kernel", r1.path, seed=14, resolution="1K")
            ledger = sim.ledger()
            assert out.run_id == lost["run_id"] and out.status == "completed"
            assert ledger["submitted"] == 2 and ledger["idempotent_replays"] == 1
            assert ledger["billed_quota"] == 2 * _spec.UNIT_QUOTA


def test_a_run_that_cannot_be_logged_holds_no_budget(tmp_path, no_env):
    """A run refused by the log (here a cell value that is not JSON) is not sent, and the
    money it held for the budget is released."""
    from wan_nb._request import build_request

    with Simulator(latency=0.05, urls_only=True) as sim, connected(sim, tmp_path) as sess:
        r1 = wan.generate("a source", seed=24, resolution="1K")
        request = build_request(action="edit", prompt="never logged", image_urls=[r1], seed=25, resolution="1K")
        with pytest.raises(ValueError, match="cell"):
            sess.run(request, cell={"odd": object()})
        assert sess.budget.held_quota == 0 and sim.ledger()["submitted"] == 1

def test_a_sweep_over_results_sends_each_as_its_link_and_logs_the_cell(tmp_path, no_env):
    """A sweep whose image axis is a list of results: each cell's input goes as that
    result's link, and the log stores the cell (a Result is not JSON: named by sha256)."""
    with Simulator(latency=0.05, urls_only=True) as sim, connected(sim, tmp_path) as sess:
        r1 = wan.generate("a red kite", seed=21, resolution="1K")
        r2 = wan.generate("a blue kite", seed=22, resolution="1K")
        sw = wan.sweep("the kite at dusk", action="edit", image_urls=[[r1], [r2.images[0]]], seed=23,
                       resolution="1K", quiet=True).wait()
        assert [c.status for c in sw.cells] == ["completed", "completed"], [c.error for c in sw.cells]
        assert sess.budget.held_quota == 0 and sim.ledger()["requests"].get("upload", 0) == 0
        for cell, source in zip(sw.cells, (r1, r2), strict=True):
            assert sent_urls(sess, cell.result) == [("link", source.images[0].source_url)]
            assert sess.log.get_run(cell.run_id)["cell"] == {"image_urls": [f"sha256:{source.images[0].sha256}"]}
            assert list(sess.log.lineage(cell.result)["run_id"]) == [source.run_id, cell.run_id]



def test_a_result_with_several_images_names_the_one_to_pass(tmp_path, no_env):
    with Simulator(latency=0.05, urls_only=True) as sim, connected(sim, tmp_path) as sess:
        pair = wan.generate("two kites", n=2, seed=30, resolution="1K")
        with pytest.raises(wan.RequestError) as info:
            wan.edit("which one?", pair, seed=31, resolution="1K")
        (problem,) = info.value.problems
        assert (problem.field, problem.rule) == ("image_urls[0]", "type")
        assert "has 2 images" in problem.message and "r.images[0]" in problem.message
        assert sim.ledger()["submitted"] == 1
        both = wan.reference("fuse the two", pair.images, seed=31, resolution="1K")
        assert sent_urls(sess, both) == [("link", img.source_url) for img in pair.images]
        assert list(sess.log.lineage(both)["made_from"]) == [[], [pair.run_id]]

@pytest.mark.slow
def test_a_result_file_changed_or_gone(tmp_path, no_env):
    """A result whose file was changed is those new bytes, not its link (the link shows the
    old image); one whose file is gone still goes by its live link, and says so once dead."""
    from PIL import Image

    with Simulator(latency=0.05, urls_only=True, link_ttl=3) as sim, connected(sim, tmp_path) as sess:
        sess.client.aio.link_margin = 0.5
        r1 = wan.generate("to be changed", seed=26, resolution="1K")
        r2 = wan.generate("to be deleted", seed=27, resolution="1K")
        Image.new("RGB", (64, 64), "red").save(r1.path, "JPEG")
        with pytest.raises(wan.RequestError) as info:
            wan.edit("changed", r1, seed=28, resolution="1K")
        assert info.value.problems[0].rule == "needs_url"

        r2.path.unlink()
        gone = wan.edit("gone but linked", r2, seed=28, resolution="1K")
        assert sent_urls(sess, gone) == [("link", r2.images[0].source_url)]
        wait_until_expired(r2.images[0].expires_at)
        with pytest.raises(wan.RequestError, match="its file is gone") as info:
            wan.edit("gone for good", r2, seed=29, resolution="1K")
        assert info.value.problems[0].rule == "link_expired"
        assert sim.ledger()["submitted"] == 3
