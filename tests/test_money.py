"""The log never lies about money: what the simulator's ledger billed is what the log
and the session say was billed, whatever happened to the answer or the download.

Each test is one case of issue 8, over real loopback HTTP, with the ledger as the truth.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from children import EXIT_TIMEOUT, READY_TIMEOUT, child, communicate, describe, wait_for

import wan_nb as wan
from wan_nb import _spec
from wan_nb.sim import Simulator

UNIT = _spec.UNIT_QUOTA
FAST_RETRY = wan.RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}


def _wait_for(check, seconds: float = READY_TIMEOUT, what: str = "condition") -> None:
    wait_for(check, what=what, timeout=seconds)


# -- (1) expired or evicted result links -----------------------------------------------------


def test_expired_links_are_billed_in_the_log_and_held_to_the_budget(tmp_path):
    """5 generates whose links expire at once, under a $0.05 budget: at most two are sent
    (each billed and counted), the rest refused; the log says billed + images lost."""
    with Simulator(latency=0.05, link_ttl=0.001) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            wan.set_budget(0.05)
            errors = []
            for i in range(5):
                try:
                    wan.generate(f"lost {i}", seed=i, resolution="1K")
                except wan.WanError as exc:
                    errors.append(exc)
            ledger = sim.ledger()
            assert ledger["billed_quota"] <= 0.05 * _spec.QUOTA_PER_USD, "the budget let more through than it allows"
            assert ledger["billed_quota"] == 2 * UNIT
            lost = [e for e in errors if isinstance(e, wan.LinkExpiredError)]
            assert len(lost) == 2 and sum(isinstance(e, wan.BudgetError) for e in errors) == 3
            assert "billed" in str(lost[0]) and "fresh=True" in str(lost[0]) and lost[0].run_state == "images_lost"
            assert sess.budget.billed_quota == ledger["billed_quota"]
            spend = sess.log.spend()
            assert spend.loc["all", "billed_quota"] == ledger["billed_quota"]
            assert spend.loc["all", "images_lost"] == 2 and spend.loc["all", "unconfirmed_quota"] == 0
            rows = sess.log.runs()
            assert list(rows["status"]) == ["images_lost", "images_lost"] and (rows["cost_quota"] == UNIT).all()
        finally:
            sess.close()


def test_rerunning_a_run_whose_images_were_lost_sends_nothing_and_fresh_pays(tmp_path):
    with Simulator(latency=0.05, link_ttl=0.001) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            with pytest.raises(wan.LinkExpiredError):
                wan.generate("gone", seed=3, resolution="1K")
            sent = sim.ledger()["requests"]["submit"]
            for _ in range(2):  # the same dead task is not replayed again and again
                with pytest.raises(wan.LinkExpiredError, match="fresh=True") as info:
                    wan.generate("gone", seed=3, resolution="1K")
                assert "nothing was sent" in str(info.value)
            assert sim.ledger()["requests"]["submit"] == sent
            with pytest.raises(wan.LinkExpiredError):  # links still expire at once: lost again, but paid anew
                wan.generate("gone", seed=3, resolution="1K", fresh=True)
            ledger = sim.ledger()
            assert ledger["submitted"] == 2 and ledger["billed_quota"] == 2 * UNIT
            assert sess.log.spend().loc["all", "billed_quota"] == 2 * UNIT
        finally:
            sess.close()


def test_an_input_link_the_server_evicted_early_is_marked_dead_and_the_next_run_uploads_it(tmp_path):
    """A result evicted early (max_result_mb) still announces its 24 h expiry; used as an
    input, the server refuses it (400, link expired). That refusal marks the link dead in
    the log, so running the same edit again uploads the file instead of sending the dead
    link forever; nothing was billed for the refused submit."""
    with Simulator(latency=0.02, max_result_mb=0.05) as sim:  # about one 1K image
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            first = wan.generate("soon evicted", seed=1, resolution="1K")
            wan.generate("evicts the first", seed=2, resolution="1K")
            assert first.images[0].expires_at > time.time() + 3600, "the link still promises hours"
            with pytest.raises(wan.InvalidRequestError) as info:
                wan.edit("from the evicted one", first, seed=3, resolution="1K")
            assert "expired" in str(info.value) and "again" in str(info.value)
            billed = sim.ledger()["billed_quota"]
            again = wan.edit("from the evicted one", first, seed=3, resolution="1K")  # the way out
            assert again.status == "completed" and again.images
            (sent,) = sess.log.inputs(again.run_id)
            assert sent["via"] == "upload", "the dead link was sent again"
            ledger = sim.ledger()
            assert ledger["billed_quota"] == billed + UNIT and ledger["requests"].get("upload") == 1
            assert sess.log.spend().loc["all", "billed_quota"] == ledger["billed_quota"]
        finally:
            sess.close()


# -- (2) billed but never answered -----------------------------------------------------------


def test_a_submit_with_no_answer_is_unconfirmed_until_a_rerun_settles_it(tmp_path):
    with Simulator(latency=0.3) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        sess.client.aio.retry = FAST_RETRY
        try:
            sim.set_faults(next=[{"endpoint": "submit", "fault": "drop"}] * 2)
            with pytest.raises(wan.NetworkError, match="may exist and be billed") as info:
                wan.generate("no answer", seed=8, resolution="1K")
            assert info.value.run_state == "unconfirmed"
            _wait_for(lambda: sim.ledger()["billed_quota"] == UNIT, what="the server to bill the task")
            assert sess.spent_usd == _spec.quota_to_usd(UNIT), "the budget must count unconfirmed money"
            spend = sess.log.spend().loc["all"]
            assert spend["unconfirmed_quota"] == UNIT and spend["billed_quota"] == 0
            assert spend["billed_quota"] + spend["unconfirmed_quota"] >= sim.ledger()["billed_quota"]

            r = wan.generate("no answer", seed=8, resolution="1K")  # settles it: same key, billed once
            assert r.paths[0].is_file()
            ledger = sim.ledger()
            assert ledger["submitted"] == 1 and ledger["billed_quota"] == UNIT
            spend = sess.log.spend().loc["all"]
            assert spend["billed_quota"] == UNIT and spend["unconfirmed_quota"] == 0
            assert len(sess.log.runs()) == 1 and sess.budget.billed_quota == UNIT and sess.budget.unconfirmed_quota == 0
        finally:
            sess.close()


def test_every_call_slower_than_the_http_timeout_is_unconfirmed_not_free(tmp_path):
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True, http_timeout=0.2)
        sess.client.aio.retry, sess.client.aio.prefer_wait = FAST_RETRY, 0
        try:
            sim.set_faults(slow=0.6)
            with pytest.raises(wan.NetworkError, match="may exist and be billed"):
                wan.generate("slow network", seed=2, resolution="1K")
            _wait_for(lambda: sim.ledger()["billed_quota"] == UNIT, what="the server to bill the task")
            assert sess.log.spend().loc["all", "unconfirmed_quota"] == UNIT
            assert sess.budget.billed_quota + sess.budget.unconfirmed_quota == UNIT
            sim.set_faults(slow=0)
            wan.generate("slow network", seed=2, resolution="1K")
            assert sess.log.spend().loc["all", "billed_quota"] == sim.ledger()["billed_quota"] == UNIT
        finally:
            sess.close()


def test_an_image_that_does_not_decode_is_billed_and_fetched_by_the_rerun(tmp_path):
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            sim.set_faults(next=[{"endpoint": "file", "fault": "corrupt"}])
            with pytest.raises(wan.DownloadError, match="billed") as info:
                wan.generate("truncated", seed=5, resolution="1K")
            assert "no extra cost" in str(info.value) and info.value.run_state == "downloading"
            row = sess.log.runs().iloc[0]
            assert row["status"] == "downloading" and row["cost_quota"] == UNIT and row["n_images"] == 0
            assert sess.log.spend().loc["all", "billed_quota"] == UNIT == sess.budget.billed_quota
            r = wan.generate("truncated", seed=5, resolution="1K")
            assert r.paths[0].is_file() and r.cost_quota == 0  # paid before, not again
            ledger = sim.ledger()
            assert ledger["submitted"] == 1 and ledger["billed_quota"] == UNIT
            rows = sess.log.runs()
            assert len(rows) == 1 and rows.iloc[0]["status"] == "completed" and rows.iloc[0]["cost_quota"] == UNIT
            assert sess.budget.billed_quota == UNIT
        finally:
            sess.close()


# -- (3) completed only with its images and its cost -----------------------------------------

SLOW_DOWNLOAD = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    r = wan.generate("killed while downloading", seed=9, resolution="1K")
    print("DONE", r.run_id, r.cost_quota, flush=True)
""")


@pytest.mark.subprocess
def test_sigkill_inside_a_slow_download_leaves_the_run_billed_then_one_row_completes(tmp_path):
    home = tmp_path / "runs"
    with Simulator(latency=0.1) as sim:
        sim.set_faults(next=[{"endpoint": "file", "fault": "slow:30"}])
        with child([sys.executable, "-c", SLOW_DOWNLOAD, sim.base_url, str(home)], env=_env()) as proc:
            wait_for(lambda: sim.ledger()["requests"].get("file", 0) >= 1, proc=proc, what="the download to start")
            proc.kill()
        log = wan.Log(home)
        row = log.runs().iloc[0]
        assert row["status"] == "downloading", "no run may say completed before its images are on disk"
        assert row["cost_quota"] == UNIT and row["n_images"] == 0
        assert log.spend().loc["all", "billed_quota"] == sim.ledger()["billed_quota"] == UNIT

        again = subprocess.run(
            [sys.executable, "-c", SLOW_DOWNLOAD, sim.base_url, str(home)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT,
        )
        assert "DONE" in again.stdout, again.stderr[-2000:]
        ledger = sim.ledger()
    rows = log.runs()
    assert len(rows) == 1 and rows.iloc[0]["status"] == "completed" and rows.iloc[0]["cost_quota"] == UNIT
    assert os.path.isfile(rows.iloc[0]["paths"][0])
    assert ledger["submitted"] == 1 and log.spend().loc["all", "billed_quota"] == ledger["billed_quota"]


# -- (4) several processes, one folder ---------------------------------------------------------

SHARED_SWEEP = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    sw = wan.sweep("shared {animal}", animal=["fox", "owl", "cat", "yak"], seed=range(4), resolution="1K",
                   concurrency=4, quiet=True)
    sw.wait()
    print("DONE", sw.counts()["completed"], flush=True)
""")


@pytest.mark.subprocess
def test_the_same_sweep_in_three_processes_counts_each_task_once(tmp_path):
    home = tmp_path / "runs"
    with Simulator(latency=0.4, concurrency=8) as sim, contextlib.ExitStack() as stack:
        procs = [stack.enter_context(child([sys.executable, "-c", SHARED_SWEEP, sim.base_url, str(home)], env=_env()))
                 for _ in range(3)]
        outs = [communicate(p, what=f"sweep process {i + 1} of 3 to finish") for i, p in enumerate(procs)]
        ledger = sim.ledger()
    for out, err in outs:
        assert "DONE 16" in out, err[-2000:]
    assert ledger["submitted"] == 16 and ledger["billed_quota"] == 16 * UNIT, "the key absorbed the race"
    log = wan.Log(home)
    runs = log.runs()
    assert len(runs) == 16, f"{len(runs)} rows for 16 cells"
    assert runs["idempotency_key"].nunique() == 16 and (runs["status"] == "completed").all()
    assert log.spend().loc["all", "billed_quota"] == ledger["billed_quota"]


def test_a_version_1_log_with_duplicate_keys_is_repaired_on_open(tmp_path):
    """Logs written before the claim: the extra rows for one key become zero-cost views."""
    log = wan.Log(tmp_path)
    with sqlite3.connect(log.path) as conn:
        conn.execute("DROP INDEX runs_idem_key")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        for rid, status, at in (("r-a", "completed", 1.0), ("r-b", "completed", 2.0), ("r-c", "error", 3.0)):
            conn.execute(
                "INSERT INTO runs (run_id, created_at, idempotency_key, status, cost_quota, cache_hit) "
                "VALUES (?, ?, 'k1', ?, ?, 0)",
                (rid, at, status, UNIT if status == "completed" else None),
            )
    repaired = wan.Log(tmp_path)
    runs = repaired.runs().set_index("run_id")
    assert runs.loc["r-a", "idempotency_key"] == "k1" and runs.loc["r-a", "cost_quota"] == UNIT
    assert runs.loc[["r-b", "r-c"], "cost_quota"].tolist() == [0, 0]
    assert runs.loc[["r-b", "r-c"], "cached_from"].tolist() == ["r-a", "r-a"]
    assert repaired.spend().loc["all", "billed_quota"] == UNIT


# -- (5) nothing blocks the event loop -----------------------------------------------------------

LOCKED_SWEEP = textwrap.dedent("""
    import sys, time, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    sw = wan.sweep("locked {i}", i=list(range(4)), resolution="1K", concurrency=4, quiet=True)
    try:
        sw.wait()
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
""")


@pytest.mark.subprocess
def test_ctrl_c_cancels_queued_tasks_within_a_second_while_another_process_locks_the_log(tmp_path):
    home = tmp_path / "runs"
    wan.Log(home / "log.sqlite")  # the log exists, so the test can lock it
    # a task holds the only slot for 3 s: the test reads "2 queued" well inside that window
    with Simulator(latency=3.0, concurrency=1) as sim, child([sys.executable, "-c", LOCKED_SWEEP, sim.base_url,
                                                              str(home)], env=_env()) as proc:
        lock = sqlite3.connect(home / "log.sqlite", isolation_level=None, timeout=30)
        try:
            wait_for(lambda: sim.ledger()["submitted"] == 4, proc=proc, what="the sweep to submit its 4 cells")
            lock.execute("BEGIN IMMEDIATE")  # another process holds the log: every write waits
            wait_for(lambda: sim.ledger()["by_status"]["completed"] >= 1, proc=proc,
                     what="the first task to complete")
            time.sleep(0.3)  # the sweep is now waiting to write that completion
            queued = sim.ledger()["by_status"]["queued"]
            assert queued == 2
            proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            _wait_for(lambda: sim.ledger()["by_status"]["cancelled"] == queued, seconds=5, what="the cancels")
            took = time.monotonic() - sent
            assert took < 1.0, f"queued tasks cancelled {took:.1f} s after Ctrl-C"
        finally:
            lock.execute("ROLLBACK") if lock.in_transaction else None
            lock.close()
        out, err = communicate(proc, what="the sweep to exit after Ctrl-C")
    assert "INTERRUPTED" in out, describe(out, err)
    assert sim.ledger()["refunded_quota"] == 2 * UNIT


@pytest.mark.slow
def test_the_live_view_is_drawn_off_the_event_loop(tmp_path, monkeypatch):
    """A cell that takes a second to render must not stall the loop that polls tasks."""
    from wan_nb import _live_grid
    from wan_nb._portal import get_portal

    with Simulator(latency=0.3, concurrency=4) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path, quiet=True)
        try:
            sw = wan.sweep("view {i}", i=[1, 2, 3], resolution="1K", start=False, quiet=True)
            sw._repr_mimebundle_()
            drawn = threading.Event()
            render = _live_grid.LiveGrid._cell_html

            def slow_cell(self, key):
                time.sleep(1.0)
                drawn.set()
                return render(self, key)

            monkeypatch.setattr(_live_grid.LiveGrid, "_cell_html", slow_cell)
            sw.start()
            assert drawn.wait(10), "the view was never drawn"

            async def nothing() -> float:
                return time.monotonic()

            worst = 0.0
            while sw.running:
                asked = time.monotonic()
                answered = get_portal().run(nothing())
                worst = max(worst, answered - asked)
                time.sleep(0.05)
            assert worst < 0.5, f"the event loop stalled {worst:.2f} s while the view was drawn"
            assert sw.counts()["completed"] == 3
        finally:
            sess.close()
