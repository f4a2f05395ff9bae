"""Sweeps against the simulator over loopback HTTP: cost, budget, grid, resume, cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from children import EXIT_TIMEOUT, child, wait_for

import wan_nb as wan
from wan_nb import _spec
from wan_nb.sim import Simulator

UNIT = _spec.UNIT_QUOTA


@pytest.fixture
def sim():
    with Simulator(latency=0.1, concurrency=4, seed=3) as s:
        yield s


@pytest.fixture
def sess(sim, tmp_path, monkeypatch):
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    s = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
    yield s
    s.close()


def test_prompts_seeds_resolutions_grid_and_cost(sim, sess, capsys):
    sw = wan.sweep(["a fox in snow", "an owl at night"], seed=range(4), resolution=["1K", "2K"])
    shown = capsys.readouterr().out
    sw.wait()
    assert "16 task(s), 16 image(s), $0.36720" in shown
    ledger = sim.ledger()
    assert ledger["submitted"] == 16 and ledger["billed_quota"] == sw.plan.cost_quota == 16 * UNIT

    runs = sess.log.runs(sweep_id=sw.id)
    assert len(runs) == 16 and (runs["status"] == "completed").all()
    assert sorted(runs["seed"].unique()) == [0, 1, 2, 3]
    for row in runs.itertuples():
        assert len(row.paths) == 1 and os.path.isfile(row.paths[0])

    grid = sw.grid(rows="prompt", cols="seed")
    assert grid.row_values == ["a fox in snow", "an owl at night"]
    assert grid.col_values == [0, 1, 2, 3]
    fox_seed2 = grid.cell("a fox in snow", 2)
    assert len(fox_seed2.items) == 2  # both resolutions land in the cell
    assert {(i.width, i.height) for i in fox_seed2.items} == {(1024, 1024), (2048, 2048)}
    html = sw._repr_mimebundle_()["text/html"]
    assert "16/16 done" in html and "an owl at night" in html


def test_budget_below_cost_sends_nothing(sim, sess):
    with pytest.raises(wan.BudgetError, match="confirm=True"):
        wan.sweep("a {animal}", animal=["fox", "owl"], seed=range(4), budget_usd=0.10)
    assert sim.ledger()["submitted"] == 0
    sw = wan.sweep("a {animal}", animal=["fox", "owl"], seed=range(2), resolution="1K", budget_usd=0.01,
                   confirm=True).wait()
    assert sim.ledger()["submitted"] == 4 and sw.done


def test_session_budget_is_never_exceeded(sim, sess):
    wan.set_budget(2.5 * UNIT / _spec.QUOTA_PER_USD)  # room for two images
    with pytest.raises(wan.BudgetError):
        wan.sweep("p", seed=range(3), resolution="1K", confirm=True)
    sw = wan.sweep("p{seed}", seed=range(2), resolution="1K").wait()
    assert sw.counts()["completed"] == 2
    with pytest.raises(wan.BudgetError, match="session budget"):
        wan.generate("one more", seed=99, resolution="1K")
    assert sim.ledger()["submitted"] == 2 and sess.budget.billed_quota == 2 * UNIT


def test_rerunning_finished_fixed_seed_sweep_is_free(sim, sess, capsys):
    kw = {"animal": ["fox", "owl"], "seed": range(2), "resolution": "1K"}
    first = wan.sweep("a {animal} in snow", **kw).wait()
    capsys.readouterr()
    again = wan.sweep("a {animal} in snow", **kw).wait()
    assert "$0.00000 to pay" in capsys.readouterr().out
    assert again.id == first.id and again.spent_usd == 0
    assert sim.ledger()["submitted"] == 4
    assert len(sess.log.runs(sweep_id=first.id)) == 4  # the same cells, not new rows


def test_identical_fixed_seed_request_is_a_cache_hit(sim, sess):
    wan.sweep("lighthouse", seed=[11], resolution="1K").wait()
    hit = wan.generate("lighthouse", seed=11, resolution="1K")
    assert hit.cache_hit and hit.cost_usd == 0 and hit.paths[0].is_file()
    assert sim.ledger()["submitted"] == 1
    row = sess.log.runs(run_id=hit.run_id).iloc[0]
    assert bool(row["cache_hit"]) and row["cached_from"] and row["cost_quota"] == 0
    fresh = wan.generate("lighthouse", seed=11, resolution="1K", fresh=True)
    assert not fresh.cache_hit and sim.ledger()["submitted"] == 2


def test_random_seed_count_is_drawn_recorded_and_stable(sim, sess):
    a = wan.sweep("stars", seed=wan.random_seeds(3), resolution="1K").wait()
    seeds = [c.request.seed for c in a.cells]
    assert len(set(seeds)) == 3
    assert sorted(sess.log.runs(sweep_id=a.id)["seed"].tolist()) == sorted(seeds)
    b = wan.sweep("stars", seed=wan.random_seeds(3), resolution="1K").wait()
    assert [c.request.seed for c in b.cells] == seeds and sim.ledger()["submitted"] == 3


def test_seed_string_range_and_any_field_axes(sim, sess):
    palettes = [[("#0A2540", 50), ("#F5F5F0", 35), ("#E04B3A", 15)],
                [("#000000", 40), ("#FFFFFF", 40), ("#FF0000", 20)]]
    sw = wan.sweep("poster", seed="1-2", color_palette=palettes, aspect_ratio=["16:9", "9:16"],
                   resolution="1K").wait()
    assert len(sw.cells) == 8 and sw.counts()["completed"] == 8
    sizes = {c.result.images[0].size for c in sw.cells}
    assert sizes == {(1360, 768), (768, 1360)}


def test_group_mode_cells_hold_all_panels(sim, sess):
    sw = wan.sweep("storyboard {beat}", beat=["dawn", "dusk"], action="group", n=3, resolution="1K").wait()
    grid = sw.grid()
    assert grid.col_name == "beat" and grid.row_values == [""]  # one varying axis: one row
    assert [len(grid.cell("", v).items) for v in ("dawn", "dusk")] == [3, 3]
    assert sim.ledger()["billed_quota"] == 6 * UNIT


def test_bad_cells_are_named_before_anything_is_sent(sim, sess):
    with pytest.raises(wan.RequestError) as info:
        wan.sweep("x", action="group", resolution=["1K", "4K"])
    assert info.value.problems[0].field == "resolution" and "resolution=4K" in str(info.value)
    with pytest.raises(wan.RequestError, match=r"placeholder|animal"):
        wan.sweep("a {animal}")
    assert sim.ledger()["requests"].get("submit", 0) == 0


def test_failed_cells_show_their_reason_and_retry_in_one_call(sim, sess):
    sim.set_faults(next=[{"endpoint": "submit", "fault": "fail_task:upstream_bad_request"}])
    sw = wan.sweep("retry me", seed=range(3), resolution="1K", concurrency=1).wait()
    failed = [c for c in sw.cells if c.status == "failed"]
    assert len(failed) == 1 and "upstream_bad_request" in failed[0].error
    assert "upstream_bad_request" in sw._repr_mimebundle_()["text/html"]
    sw.retry_failed().wait()
    assert sw.counts()["completed"] == 3
    ledger = sim.ledger()
    assert ledger["submitted"] == 4 and ledger["billed_quota"] == 3 * UNIT


def test_cancel_stops_new_submissions_and_cancels_queued(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    # the first task holds the only slot far longer than the test takes: the other two stay queued
    with Simulator(latency=60.0, concurrency=1) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            sw = wan.sweep("slow {i}", i=list(range(6)), resolution="1K", concurrency=3)
            wait_for(lambda: sim.ledger()["submitted"] >= 3, what="the sweep to submit its first 3 cells")
            sw.cancel()  # returns once the sweep has stopped (its cancels answered)
            ledger = sim.ledger()
        finally:
            sess.close()
    assert ledger["submitted"] == 3, "cells not yet sent must not be sent after cancel()"
    assert ledger["by_status"]["cancelled"] >= 1 and ledger["refunded_quota"] >= UNIT
    assert sum(c.status == "cancelled" for c in sw.cells) >= 4


KILL_SCRIPT = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    sw = wan.sweep("kill test {animal}", animal=["fox", "owl", "cat", "yak"], seed=range(2),
                   resolution="1K", concurrency=2, quiet=True)
    sw.wait()
    print("DONE", sw.counts()["completed"], flush=True)
""")


@pytest.mark.subprocess
def test_sigkill_mid_sweep_then_rerun_pays_each_cell_once(tmp_path):
    script = tmp_path / "sweep_script.py"
    script.write_text(KILL_SCRIPT)
    home = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    with Simulator(latency=1.0, concurrency=2) as sim:
        with child([sys.executable, str(script), sim.base_url, str(home)], env=env) as first:
            wait_for(lambda: sim.ledger()["submitted"] >= 3, proc=first, what="the first run to submit 3 cells")
            first.kill()
        killed_at = sim.ledger()["submitted"]
        assert 3 <= killed_at < 8, "the kill must land mid-sweep"
        done = subprocess.run([sys.executable, str(script), sim.base_url, str(home)], env=env,
                              capture_output=True, text=True, timeout=EXIT_TIMEOUT)
        assert "DONE 8" in done.stdout, done.stderr
        ledger = sim.ledger()
    assert ledger["submitted"] == 8, "every cell submitted exactly once across the kill"
    assert ledger["billed_quota"] == 8 * UNIT
    log = wan.Log(home / "log.sqlite")
    runs = log.runs(status="completed")
    assert len(runs) == 8 and runs["task_id"].nunique() == 8
    for paths in runs["paths"]:
        assert len(paths) == 1 and os.path.isfile(paths[0])


def test_all_sweep_problems_reported_at_once(sim, sess):
    with pytest.raises(wan.RequestError) as info:
        wan.sweep("a {animal}", resolution="8K", seed="x", aspekt="1:1")
    assert {p.field for p in info.value.problems} == {"animal", "resolution", "seed", "aspekt"}
    assert sim.ledger()["requests"].get("submit", 0) == 0


def test_wait_with_timeout_returns(sim, sess):
    sw = wan.sweep("slow {i}", i=list(range(4)), resolution="1K", concurrency=1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sw.wait(timeout=0.2)
    assert time.monotonic() - started < 5
    sw.wait()
    assert sw.done and sw.counts()["completed"] == 4


def test_plain_text_view_of_a_sweep_is_not_html(sim, sess):
    sw = wan.sweep("plain {i}", i=[1, 2], resolution="1K", start=False)
    live = sw._repr_mimebundle_()  # not done: the live grid, with the grid as text/html fallback
    assert live["text/plain"].startswith("<Sweep sw-") and "<div" not in live["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in live and "wan-grid" in live["text/html"]
    done = sw.start().wait()._repr_mimebundle_()  # done: the static grid only (its thumbnails saved once)
    assert done["text/plain"].startswith("<Sweep sw-") and "<div" not in done["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" not in done and done["text/html"].count("<img") == 2


@pytest.mark.slow
def test_log_timings_span_the_held_submit(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    with Simulator(latency=0.8) as sim:
        s = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            r = wan.generate("timed", seed=1, resolution="1K")
            row = s.log.runs(run_id=r.run_id).iloc[0]
        finally:
            s.close()
    assert row["duration_s"] >= 0.4, "submitted_at must be taken before a Prefer: wait submit"


def test_session_wide_sweep_budget_asks_for_confirmation(sim, sess):
    assert sess.sweep_budget_usd == 2.00  # protective default: ~87 images
    with pytest.raises(wan.BudgetError, match="per-sweep budget"):
        wan.sweep("big {i}", i=list(range(30)), seed=range(3), resolution="1K")  # 90 images, $2.07
    assert sim.ledger()["submitted"] == 0
    wan.set_budget(per_sweep=0.03)
    with pytest.raises(wan.BudgetError):
        wan.sweep("small {i}", i=[1, 2], resolution="1K")
    sw = wan.sweep("small {i}", i=[1, 2], resolution="1K", confirm=True).wait()
    assert sw.counts()["completed"] == 2
    wan.set_budget(per_sweep=None)
    assert wan.sweep("small {i}", i=[3, 4], resolution="1K").wait().counts()["completed"] == 2


def test_live_view_sends_each_cell_when_it_changes_and_each_thumbnail_once(sim, sess, monkeypatch):
    """The live grid is one widget per cell: a finished cell's thumbnail goes to the
    browser once, in a message of its own, and nothing is re-sent whole."""
    import comm
    from comm.base_comm import BaseComm

    sent: list[str] = []

    class Recording(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            sent.append(json.dumps(data, default=str))

    monkeypatch.setattr(comm, "create_comm", Recording)
    sw = wan.sweep("view {i}", i=list(range(6)), resolution="1K", seed=1, start=False, quiet=True)
    bundle = sw._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "wan-grid" in bundle["text/html"]
    opened = len(sent)
    sw.start().wait()
    assert sw._view.wait_drawn()
    updates = sent[opened:]
    for c in sw.cells:
        sha = c.result.images[0].sha256
        carrying = [m for m in updates if sha in m]
        assert len(carrying) == 1, f"cell {c.index}'s thumbnail was sent {len(carrying)} times"
        assert carrying[0].count("data:image/jpeg;base64,") == 1, "a message carried more than one thumbnail"
    assert max(len(m) for m in updates) < 20_000, "a message as big as the whole grid"
    finished = sw._repr_mimebundle_()  # shown again when done: the static grid, no widget state
    assert set(finished) == {"text/plain", "text/html"} and finished["text/html"].count("data:image/jpeg") == 6


def test_template_mistakes_are_clear_errors_not_raw_exceptions(sim, sess):
    for template in ("a {} fox", "a {0} fox", "a {animal.nope} fox", "a {animal"):
        with pytest.raises(wan.RequestError) as info:
            wan.sweep(template, animal=["fox"], resolution="1K")
        assert info.value.problems[0].field == "prompt"
    sw = wan.sweep("JSON {{x}} and a {kind[0]}", kind=[["heron"], ["crane"]], resolution="1K", start=False)
    assert [c.request.prompt for c in sw.cells] == ["JSON {x} and a heron", "JSON {x} and a crane"]
    assert sim.ledger()["requests"].get("submit", 0) == 0


def test_reconnecting_cancels_a_running_sweep_cleanly(tmp_path, monkeypatch):
    """Re-running the connect() cell while a sweep runs: its queued tasks are cancelled
    on the server and every cell ends with a clear status, not a raw transport error."""
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    with Simulator(latency=60.0, concurrency=1) as sim:  # the first task holds the slot throughout
        wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        sw = wan.sweep("old {i}", i=list(range(4)), resolution="1K", concurrency=2)
        wait_for(lambda: sim.ledger()["submitted"] >= 2, what="the sweep to submit its first 2 cells")
        wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True).close()
        ledger = sim.ledger()
    assert sw.done and not sw.running
    assert [c.status for c in sw.cells] == ["cancelled"] * 4
    assert sum("already processing" in c.error for c in sw.cells) == 1  # said honestly: it will be billed
    assert sum(c.error == "sweep cancelled" for c in sw.cells) == 3
    assert ledger["submitted"] == 2 and ledger["by_status"]["cancelled"] == 1


def test_a_sweep_exports_its_own_report_and_png(sim, sess, tmp_path):
    from PIL import Image

    sw = wan.sweep("export <{animal}>", animal=["fox", "owl"], seed=[1, 2], resolution="1K").wait()
    other = wan.sweep("not in this report", seed=[3], resolution="1K").wait()
    page = sw.export_html(tmp_path / "sweep.html").read_text()
    assert "export &lt;fox&gt;" in page and "not in this report" not in page and other.id not in page
    assert page.count("data:image/jpeg;base64,") >= 4
    png = sw.to_png(tmp_path / "sweep.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 400


def test_image_sets_and_box_lists_are_axes_labelled_readably(sim, sess, tmp_path):
    from PIL import Image

    paths = []
    for name, colour in (("harbour.png", (20, 60, 120)), ("forest.png", (20, 120, 40))):
        Image.new("RGB", (640, 480), colour).save(tmp_path / name)
        paths.append(tmp_path / name)
    sw = wan.sweep("the same scene at night", action="image2image", image_urls=[[p] for p in paths],
                   seed=[1, 2], resolution="1K").wait()
    assert sw.counts()["completed"] == 4
    grid = sw.grid()
    assert grid.row_name == "image_urls" and grid.row_values == ["harbour.png", "forest.png"]
    assert len(grid.cell("forest.png", 2).items) == 1
    boxes = wan.sweep("a lamp", action="interactive_edit", image_urls=[paths[0]],
                      bbox_list=[[[[10, 10, 200, 200]]], [[[300, 300, 600, 400]]]], resolution="1K").wait()
    assert boxes.counts()["completed"] == 2 and len(boxes.grid().col_values) == 2
    assert sim.ledger()["submitted"] == 6


def test_bad_run_options_are_request_errors_naming_the_argument_and_nothing_is_sent(sim, sess):
    bad_calls = [
        ("concurrency", lambda: wan.sweep("p {i}", i=[1, 2, 3], resolution="1K", concurrency=1.5)),
        ("concurrency", lambda: wan.sweep("p {i}", i=[1, 2], resolution="1K", concurrency=True)),
        ("concurrency", lambda: wan.sweep("p {i}", i=[1, 2], resolution="1K", concurrency=0)),
        ("budget_usd", lambda: wan.sweep("p {i}", i=[1, 2], resolution="1K", budget_usd=float("nan"))),
        ("budget_usd", lambda: wan.sweep("p {i}", i=[1, 2], resolution="1K", budget_usd=-1)),
        ("timeout", lambda: wan.sweep("p {i}", i=[1, 2], resolution="1K", timeout=float("nan"))),
        ("usd", lambda: wan.set_budget(float("nan"))),
        ("usd", lambda: wan.set_budget(float("inf"))),
        ("usd", lambda: wan.set_budget("5")),
        ("per_sweep", lambda: wan.set_budget(per_sweep=float("nan"))),
        ("prompt", lambda: wan.generate("a fox \ud800", resolution="1K")),
        ("timeout", lambda: wan.generate("fox", resolution="1K", timeout=0)),
        ("tags", lambda: wan.generate("fox", resolution="1K", tags="portrait")),
        ("note", lambda: wan.generate("fox", resolution="1K", note="\udcff")),
    ]
    for name, call in bad_calls:
        with pytest.raises(wan.RequestError) as info:
            call()
        assert info.value.problems[0].field == name, (name, info.value)
    assert sess.budget_usd is None and sess.sweep_budget_usd == 2.00  # the bad values were not kept
    assert sim.ledger()["requests"].get("submit", 0) == 0
    sw = wan.sweep("after {i}", i=[1, 2], resolution="1K").wait()  # later runs still work
    assert sw.counts()["completed"] == 2


def test_connect_checks_its_timeouts(tmp_path):
    for kw in ({"http_timeout": 0}, {"http_timeout": float("nan")}, {"timeout": -1}):
        with pytest.raises(wan.RequestError) as info:
            wan.connect(base_url="http://127.0.0.1:9/v1", home=tmp_path, quiet=True, **kw)
        assert info.value.problems[0].field == next(iter(kw))


def test_a_cell_that_raises_a_non_wan_error_ends_as_error_and_the_sweep_finishes(sim, sess, monkeypatch):
    """A disk that fills up while one cell stores its image (an OSError, not a WanError):
    that cell ends as error with the reason shown, the other cells run to the end, and
    the sweep finishes instead of showing 'running' forever."""
    from wan_nb._store import Store

    real, calls = Store.put_file, []  # where a download is stored (streamed to disk first)

    def put_file(self, *args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kw)

    monkeypatch.setattr(Store, "put_file", put_file)
    sw = wan.sweep("disk fills", seed=range(4), resolution="1K", concurrency=1).wait(timeout=60)
    assert not sw.running and sw.done
    broken = [c for c in sw.cells if c.status == "error"]
    assert len(broken) == 1 and "No space left on device" in broken[0].error
    assert sw.counts()["completed"] == 3
    assert "No space left on device" in sw._repr_mimebundle_()["text/html"]
    assert "1 failed" in sw.progress_line() and "0 running" in sw.progress_line()


def _watch_server(sim, sw):
    """The most tasks (queued + processing) and the most processing the server held at once."""
    most_in_flight = most_processing = 0
    while sw.running:
        by = sim.ledger()["by_status"]
        most_in_flight = max(most_in_flight, by["queued"] + by["processing"])
        most_processing = max(most_processing, by["processing"])
        time.sleep(0.01)
    return most_in_flight, most_processing


@pytest.mark.slow
def test_default_sweep_fills_the_servers_width_and_a_cap_holds(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    with Simulator(latency=0.4, concurrency=6, seed=2) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            sw = wan.sweep("a heron, take {take}", take=list(range(30)), seed=1, resolution="1K", quiet=True)
            assert "width 4" in sw.progress_line()  # it starts where any account is safe
            in_flight, processing = _watch_server(sim, sw)
            assert sw.counts()["completed"] == 30
            assert processing == 6, f"the server's 6 slots were never all busy (at most {processing})"
            assert in_flight > 4, "never sent more than the starting width"
            assert sess.width.limit() >= 6  # kept for the next sweep
            capped = wan.sweep("a crane, take {take}", take=list(range(12)), seed=1, resolution="1K", quiet=True,
                               concurrency=2)
            assert "(cap 2)" in capped.progress_line()
            in_flight, processing = _watch_server(sim, capped)
            assert capped.counts()["completed"] == 12 and in_flight == 2, in_flight
        finally:
            sess.close()
