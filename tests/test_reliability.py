"""The reliability suite: a careful user's worst day, with the simulator's ledger as the truth.

Over real loopback HTTP, it tries fault scenarios, SIGKILLs at many points of a sweep
(one deterministic, inside a slow download), several processes sweeping one run
folder, and a battery of bad inputs, and scans everything written or shown for the API
key. For every fault scenario:

* after the faults (once every task has ended on the server), the log never
  under-reports: ``billed <= ledger's billed <= billed + unconfirmed``;
* after re-running the same sweep without faults, the log's billed quota equals the
  ledger's exactly, nothing is unconfirmed, and no cell was billed twice.

Its figures are printed at the end of the run (``conftest.pytest_terminal_summary``):
``python -m pytest tests/test_reliability.py -q``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import sqlite3
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from children import child, communicate, describe, wait_for

import wan_nb as wan
from wan_nb import _spec
from wan_nb import _states as S
from wan_nb.sim import Simulator

pytestmark = pytest.mark.reliability

UNIT = _spec.UNIT_QUOTA
SECRET = "sk-reliability-SECRET-7f3e9a"
EVIL = "a <b>fox</b> & an \"owl\" <script>alert(1)</script>"
FAST = wan.RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=0.1)

FIGURES: Counter[str] = Counter()
TEXTS: list[str] = []  # every message and repr a user was shown: scanned for the key
FOLDERS: list[Path] = []  # every run folder written: scanned for the key


def report_lines() -> list[str]:
    """The suite's figures, as conftest prints them after the run."""
    f = FIGURES
    lines = ["reliability suite (tests/test_reliability.py; the simulator's ledger is the truth)"]
    if f["scenarios_tried"]:
        lines.append(f"  fault scenarios      {f['scenarios_tried']} tried, {f['scenarios_reconciled']} reconciled "
                     "(after faults: billed <= ledger <= billed + unconfirmed; after a clean re-run: "
                     "billed == ledger, each cell billed once)")
    if f["kills_tried"]:
        lines.append(f"  kill points          {f['kills_tried']} tried, {f['kills_clean']} clean "
                     f"(SIGKILL; {f['kills_in_download']} inside a slow download; one billed row per cell, "
                     "spend == ledger after the re-run)")
    if f["shared_processes"]:
        lines.append(f"  one folder, many     {f['shared_processes']} processes, {f['shared_cells']} cells: "
                     f"{f['shared_rows']} rows, {f['shared_counted_once']} counted once")
    if f["bad_tried"]:
        lines.append(f"  bad inputs           {f['bad_tried']} tried, {f['bad_rejected']} rejected before sending")
    if f["leak_scans"]:
        lines.append(f"  leak scans           {f['leak_scans']} scans of files, outputs and errors, "
                     f"{f['leak_hits']} hits of the API key")
    if f["reports"]:
        lines.append(f"  reports              {f['reports']} exported, "
                     f"{f['reports_escaped']} with every prompt escaped")
    if f["lookups_checked"]:
        lines.append(f"  network              {f['lookups_off_loopback']} host lookups off loopback")
    return lines


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Nothing in this process may look up a host off loopback; counted, and refused."""
    real = socket.getaddrinfo

    def guarded(host: Any, *a: Any, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", None):
            FIGURES["lookups_off_loopback"] += 1
            raise OSError(f"network use in a test: {host}")
        return real(host, *a, **kw)

    class Keep(logging.Handler):  # every record of the wan_nb logger, for the leak scan
        def emit(self, record: logging.LogRecord) -> None:
            TEXTS.append(record.getMessage())

    keep, logger = Keep(logging.DEBUG), logging.getLogger("wan_nb")
    logger.addHandler(keep)
    level, logger.level = logger.level, logging.DEBUG
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", guarded)
        mp.delenv("WAVE_API_KEY", raising=False)
        mp.delenv("WAN_NB_BASE_URL", raising=False)
        mp.delenv("WAN_NB_HOME", raising=False)
        yield
    logger.removeHandler(keep)
    logger.setLevel(level)
    FIGURES["lookups_checked"] += 1
    if wan._session_module._current is not None:
        wan._session_module._current.close()
        wan._session_module._current = None


def _wait_for(check: Callable[[], bool], what: str) -> None:
    wait_for(check, what=what)  # bounded and generous; its failure names what did not happen


def _connect(sim: Simulator, home: Path, *, http_timeout: float = 5.0, prefer_wait: int | None = None) -> wan.Session:
    FOLDERS.append(home)
    sess = wan.connect(api_key=SECRET, base_url=sim.base_url, home=home, quiet=True, http_timeout=http_timeout)
    sess.aio.retry = FAST
    if prefer_wait is not None:
        sess.aio.prefer_wait = prefer_wait
    TEXTS.append(repr(sess) + repr(sess.aio) + repr(sess.client))
    return sess


def _money(sess: wan.Session) -> tuple[int, int]:
    row: Any = sess.log.spend().loc["all"]
    return int(row["billed_quota"]), int(row["unconfirmed_quota"])


def _settled(sim: Simulator) -> dict[str, Any]:
    """The ledger once no task holds quota any more (every task ended on the server)."""
    _wait_for(lambda: sim.ledger()["held_quota"] == 0, what="every task to end on the server")
    return sim.ledger()


def _billed_per_cell(sess: wan.Session, sweep_id: str) -> Counter[int]:
    runs = sess.log.runs(sweep_id=sweep_id)
    billed = runs[runs["status"].isin(S.BILLED) & ~runs["cache_hit"].fillna(False).astype(bool)]
    return Counter(int(i) for i in billed["cell_index"])


def _export_is_escaped(sess: wan.Session, where: Path) -> None:
    html = sess.log.export_html(where).read_text(encoding="utf-8")
    FIGURES["reports"] += 1
    assert "<script>alert" not in html and "<b>fox</b>" not in html
    FIGURES["reports_escaped"] += 1
    TEXTS.append(html)


# -- fault scenarios -------------------------------------------------------------------------------

# name, simulator settings, fault settings, options (session / sweep / what happens mid-run)
SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("no faults", {}, {}, {}),
    ("5xx 30% (503)", {}, {"error_rate": 0.3}, {}),
    ("5xx 30% (500)", {}, {"error_rate": 0.3, "error_status": 500}, {}),
    ("5xx 90%", {}, {"error_rate": 0.9}, {}),
    ("drops 30%", {}, {"drop_rate": 0.3}, {}),
    ("drops 90%", {}, {"drop_rate": 0.9}, {}),
    ("rate window 2/s", {}, {"rate_cap": 2, "rate_window": 1.0}, {}),
    ("every call slower than the HTTP timeout", {}, {"slow": 0.5}, {"http_timeout": 0.2, "prefer_wait": 0}),
    ("tasks fail 50% (refunded)", {}, {"task_fail_rate": 0.5}, {}),
    ("tasks fail upstream_unavailable 60% (new task)", {},
     {"task_fail_rate": 0.6, "task_fail_code": "upstream_unavailable"}, {}),
    ("corrupt downloads 50%", {}, {"corrupt_rate": 0.5}, {}),
    ("corrupt downloads 100%", {}, {"corrupt_rate": 1.0}, {}),
    ("expired links", {"link_ttl": 0.001}, {}, {}),
    ("evicted links (tiny result memory)", {"max_result_mb": 0.03, "latency": 0.02}, {}, {"concurrency": 4}),
    ("every download dropped", {}, {"next": [{"endpoint": "file", "fault": "drop"}] * 16}, {}),
    ("polls answered 503", {"latency": 0.4}, {"next": [{"endpoint": "get", "fault": "503"}] * 16},
     {"prefer_wait": 0}),
    ("polls dropped", {"latency": 0.4}, {"next": [{"endpoint": "get", "fault": "drop"}] * 16}, {"prefer_wait": 0}),
    ("submits dropped, scripted", {}, {"next": [{"endpoint": "submit", "fault": "drop"}] * 16}, {}),
    ("scripted 429s on submit", {}, {"next": [{"endpoint": "submit", "fault": "429"}] * 4}, {}),
    ("held submits slower than the HTTP timeout", {"latency": 0.3},
     {"next": [{"endpoint": "submit", "fault": "slow:1"}] * 16}, {"http_timeout": 0.3, "prefer_wait": 0}),
    ("deadline shorter than the task", {"latency": 0.8, "concurrency": 2}, {}, {"timeout": 0.3}),
    ("sweep cancelled mid-way", {"latency": 0.5, "concurrency": 1}, {}, {"cancel_after": 2}),
    ("mixed: 5xx, drops, failures", {}, {"error_rate": 0.2, "drop_rate": 0.2, "task_fail_rate": 0.2}, {}),
    ("mixed: drops and corrupt downloads", {}, {"drop_rate": 0.3, "corrupt_rate": 0.3}, {}),
    ("group of 2 with corrupt downloads", {}, {"corrupt_rate": 0.5}, {"action": "group", "n": 2}),
    ("8 cells, drops 50% + 5xx 20%", {}, {"drop_rate": 0.5, "error_rate": 0.2}, {"cells": 8, "concurrency": 8}),
]

SCENARIO_SEEDS = {"5xx 30% (503)": 14, "5xx 30% (500)": 14, "drops 30%": 14, "mixed: 5xx, drops, failures": 4}


def _sweep(options: dict[str, Any]) -> wan.Sweep:
    seeds = list(range(1, options.get("cells", 4) // 2 + 1))
    extra = {k: options[k] for k in ("action", "n", "timeout") if k in options}
    return wan.sweep(EVIL + " {animal}", animal=["fox", "owl"], seed=seeds, resolution="1K", quiet=True,
                     concurrency=options.get("concurrency", 4), **extra)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_fault_scenario_reconciles_with_the_ledger(scenario, tmp_path):
    name, sim_kw, faults, options = scenario
    FIGURES["scenarios_tried"] += 1
    settings = {"latency": 0.05, "seed": SCENARIO_SEEDS.get(name, 11), "api_key": SECRET, **sim_kw}
    with Simulator(**settings) as sim:
        sess = _connect(sim, tmp_path / "runs", http_timeout=options.get("http_timeout", 5.0),
                        prefer_wait=options.get("prefer_wait"))
        try:
            sim.set_faults(**faults)
            sw = _sweep(options)
            if "cancel_after" in options:
                _wait_for(lambda: sim.ledger()["submitted"] >= options["cancel_after"], what="submits")
                sw.cancel()
            sw.wait()
            TEXTS.extend(c.error or "" for c in sw.cells)
            TEXTS.append(sw.progress_line())
            injected = sum(sim.ledger()["faults"].values())
            assert injected or not faults, f"{name}: no fault was injected, so nothing was tested"
            sim.set_faults(reset=True)

            # after the faults: never less than the server billed, never more confirmed
            ledger = _settled(sim)
            billed, maybe = _money(sess)
            assert billed <= ledger["billed_quota"] <= billed + maybe, (name, billed, maybe, ledger["billed_quota"])

            # a clean re-run of the same sweep settles every cell: billed once, log == ledger
            again = _sweep({k: v for k, v in options.items() if k != "timeout"})
            assert again.id == sw.id or "timeout" in options
            again.wait()
            TEXTS.extend(c.error or "" for c in again.cells)
            ledger = _settled(sim)
            billed, maybe = _money(sess)
            assert maybe == 0 and billed == ledger["billed_quota"], (name, billed, maybe, ledger["billed_quota"])
            price = sum(c.request.cost_quota for c in again.cells)
            assert ledger["billed_quota"] == price, f"{name}: a cell was billed twice, or never"
            per_cell = _billed_per_cell(sess, again.id)
            assert set(per_cell.values()) == {1} and len(per_cell) == len(again.cells)
            lost = sim_kw.get("link_ttl") or sim_kw.get("max_result_mb")
            for c in again.cells:
                assert c.status == S.COMPLETED or (lost and c.status == S.IMAGES_LOST), (name, c.status, c.error)
                if c.status == S.COMPLETED:
                    assert all(p.is_file() for p in c.result.paths)
            _export_is_escaped(sess, tmp_path / "report.html")
        finally:
            sess.close()
    FIGURES["scenarios_reconciled"] += 1


# -- SIGKILL at many points ------------------------------------------------------------------------

KILLED_SWEEP = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(api_key=sys.argv[3], base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    sw = wan.sweep("killed {animal}", animal=["fox", "owl", "cat", "yak"], seed=[1, 2], resolution="1K",
                   concurrency=3, quiet=True)
    sw.wait()
    print("DONE", sw.counts()["completed"], flush=True)
""")


def _rows_exist(home: Path) -> bool:
    try:
        with sqlite3.connect(home / "log.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _file_requests(sim: Simulator) -> int:
    return sim.ledger()["requests"].get("file", 0)


# name, trigger(sim, home) -> bool, scripted faults
KILLS: list[tuple[str, Callable[[Simulator, Path], bool], list[dict[str, str]]]] = [
    ("a run claimed, nothing sent yet", lambda sim, home: _rows_exist(home), []),
    ("1st submit held", lambda sim, home: sim.ledger()["submitted"] >= 1, []),
    ("3 submitted", lambda sim, home: sim.ledger()["submitted"] >= 3, []),
    ("5 submitted", lambda sim, home: sim.ledger()["submitted"] >= 5, []),
    ("7 submitted", lambda sim, home: sim.ledger()["submitted"] >= 7, []),
    ("1st task billed", lambda sim, home: sim.ledger()["billed_quota"] >= UNIT, []),
    ("4 billed", lambda sim, home: sim.ledger()["billed_quota"] >= 4 * UNIT, []),
    ("7 billed", lambda sim, home: sim.ledger()["billed_quota"] >= 7 * UNIT, []),
    ("2nd download", lambda sim, home: _file_requests(sim) >= 2, []),
    ("6th download", lambda sim, home: _file_requests(sim) >= 6, []),
    ("inside a slow download", lambda sim, home: _file_requests(sim) >= 1,
     [{"endpoint": "file", "fault": "slow:30"}]),
    ("inside a slow 3rd download", lambda sim, home: _file_requests(sim) >= 3,
     [{"endpoint": "file", "fault": "slow:0"}] * 2 + [{"endpoint": "file", "fault": "slow:30"}]),
    ("a held submit hanging after the task was made", lambda sim, home: sim.ledger()["submitted"] >= 1,
     [{"endpoint": "submit", "fault": "slow:30"}]),
]


@pytest.mark.parametrize("kill", KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_then_rerun_is_clean(kill, tmp_path):
    name, trigger, scripted = kill
    FIGURES["kills_tried"] += 1
    home = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    with Simulator(latency=0.3, concurrency=3, seed=5, api_key=SECRET) as sim:
        if scripted:
            sim.set_faults(next=scripted)
        with child([sys.executable, "-c", KILLED_SWEEP, sim.base_url, str(home), SECRET], env=env) as proc:
            wait_for(lambda: trigger(sim, home), proc=proc, what=f"the kill point: {name}")
            proc.kill()
            out, err = communicate(proc)
        TEXTS.extend([out, err])
        assert "DONE" not in out, f"{name}: the kill came too late"
        sim.set_faults(reset=True)
        ledger = _settled(sim)
        log = wan.Log(home / "log.sqlite")
        row = log.spend().loc["all"]
        billed, maybe = int(row["billed_quota"]), int(row["unconfirmed_quota"])
        assert billed <= ledger["billed_quota"] <= billed + maybe, (name, billed, maybe, ledger["billed_quota"])
        runs = log.runs()  # wherever the kill hit: billed runs carry their cost, completed ones their files
        billed_rows = runs[runs["status"].isin(S.BILLED)]
        assert (billed_rows["cost_quota"] == UNIT).all(), billed_rows[["status", "cost_quota"]]
        done = runs[runs["status"] == S.COMPLETED]
        assert all(len(p) == 1 and os.path.isfile(p[0]) for p in done["paths"])
        if "slow" in name and "download" in name:  # deterministic: the run being fetched is billed, not completed
            assert (runs["status"] == S.DOWNLOADING).sum() >= 1
            FIGURES["kills_in_download"] += 1

        sess = _connect(sim, home)
        try:
            sw = wan.sweep("killed {animal}", animal=["fox", "owl", "cat", "yak"], seed=[1, 2], resolution="1K",
                           concurrency=3, quiet=True).wait()
            TEXTS.extend(c.error or "" for c in sw.cells)
            ledger = _settled(sim)
            billed, maybe = _money(sess)
            assert [c.status for c in sw.cells] == [S.COMPLETED] * 8, [(c.status, c.error) for c in sw.cells]
            assert ledger["submitted"] == 8 and ledger["billed_quota"] == 8 * UNIT == billed and maybe == 0
            runs = sess.log.runs(sweep_id=sw.id)
            assert len(runs) == 8 and runs["idempotency_key"].nunique() == 8, f"{name}: {len(runs)} rows"
            assert all(os.path.isfile(p) for paths in runs["paths"] for p in paths)
        finally:
            sess.close()
    FIGURES["kills_clean"] += 1


# -- several processes, one folder --------------------------------------------------------------------

SHARED = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(api_key=sys.argv[3], base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    animals = sys.argv[4].split(",")
    sw = wan.sweep("shared {animal}", animal=animals, seed=[1, 2, 3], resolution="1K", concurrency=4, quiet=True)
    sw.wait()
    print("DONE", sw.counts()["completed"], flush=True)
""")


def test_processes_sharing_a_run_folder_count_each_task_once(tmp_path):
    """Three processes: two run the same sweep, one an overlapping one (the owl cells are
    the same fixed-seed requests). Every task is billed once and counted once."""
    home = tmp_path / "runs"
    FOLDERS.append(home)
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    plans = ["fox,owl,cat,yak", "fox,owl,cat,yak", "owl,emu"]
    with Simulator(latency=0.3, concurrency=8, seed=9, api_key=SECRET) as sim:
        with contextlib.ExitStack() as stack:
            procs = [stack.enter_context(child([sys.executable, "-c", SHARED, sim.base_url, str(home), SECRET, animals],
                                               env=env)) for animals in plans]
            outs = [communicate(p, what=f"sweep process {i + 1} to finish") for i, p in enumerate(procs)]
        ledger = _settled(sim)
    for out, err in outs:
        TEXTS.extend([out, err])
        assert "DONE" in out, describe(out, err)
    requests = {(a, s) for animals in plans for a in animals.split(",") for s in (1, 2, 3)}
    log = wan.Log(home / "log.sqlite")
    runs = log.runs()
    paid = runs[runs["status"].isin(S.BILLED) & ~runs["cache_hit"].fillna(False).astype(bool)]
    assert ledger["submitted"] == len(requests) and ledger["billed_quota"] == len(requests) * UNIT
    assert len(paid) == len(requests) and paid["request_hash"].nunique() == len(requests)
    assert int(log.spend().loc["all", "billed_quota"]) == ledger["billed_quota"]
    assert (runs["status"] == S.COMPLETED).all()
    FIGURES["shared_processes"] += len(plans)
    FIGURES["shared_cells"] += len(requests)
    FIGURES["shared_rows"] += len(paid)
    FIGURES["shared_counted_once"] += paid["request_hash"].nunique()


# -- bad inputs ---------------------------------------------------------------------------------------

P3 = [("#0A2540", 50), ("#F5F5F0", 35), ("#E04B3A", 15)]
URL = "https://cdn.example.com/a.jpg"
BAD_FIELDS: list[dict[str, Any]] = [
    {"prompt": None}, {"prompt": ""}, {"prompt": "   "}, {"prompt": 5}, {"prompt": b"bytes"}, {"prompt": ["a"]},
    {"prompt": "lone \ud800 surrogate"}, {"prompt": "\udfff"},
    {"n": 0}, {"n": 5}, {"n": -1}, {"n": "2"}, {"n": 1.5}, {"n": True},
    {"seed": -2}, {"seed": 2**31}, {"seed": 1.5}, {"seed": "7"}, {"seed": True},
    {"aspect_ratio": "5:4"}, {"aspect_ratio": ""}, {"aspect_ratio": 16}, {"aspect_ratio": "16/9"},
    {"resolution": "8K"}, {"resolution": 2}, {"resolution": ""}, {"action": "group", "resolution": "4K"},
    {"action": "edit", "image_urls": [URL], "resolution": "4K"},
    {"action": "paint"}, {"action": 3}, {"model": "wan2.6-image"},
    {"action": "edit"}, {"action": "edit", "image_urls": [URL, URL]}, {"action": "edit", "image_urls": "notalist"},
    {"action": "edit", "image_urls": [5]}, {"action": "edit", "image_urls": ["ftp://x/y.png"]},
    {"action": "edit", "image_urls": ["/no/such/file.png"]}, {"action": "edit", "image_urls": [b"not an image"]},
    {"action": "edit", "image_urls": ["https://cdn.example.com/\ud800.jpg"]},
    {"action": "reference", "image_urls": [URL]}, {"action": "reference", "image_urls": [URL] * 10},
    {"action": "group", "image_urls": [URL]}, {"action": "generate", "image_urls": [URL]},
    {"action": "group", "n": 13}, {"enable_sequential": "true"}, {"enable_sequential": True, "action": "generate"},
    {"action": "group", "enable_sequential": False},
    {"color_palette": P3[:2]}, {"color_palette": [("0A2540", 50), *P3[1:]]}, {"color_palette": "#0A2540"},
    {"color_palette": [("#000000", 33.5), ("#111111", 33.5), ("#222222", 33)]},
    {"color_palette": [*P3[:2], ("#E04B3A", 5)]}, {"color_palette": [("#000000", 0), *P3]},
    {"color_palette": [("#000000", 10)] * 11},
    {"action": "interactive_edit", "image_urls": [URL]},
    {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5]]]},
    {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[50, 50, 10, 10]]]},
    {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[-5, 0, 10, 10]]]},
    {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5, 5]] * 3]},
    {"action": "interactive_edit", "image_urls": [URL, URL], "bbox_list": [[[0, 0, 5, 5]]]},
    {"action": "edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5, 5]]]},
    {"callback_url": "ftp://hooks.example.com/x"}, {"callback_url": "not a url"}, {"callback_url": 5},
    {"callback_url": "https://hooks.example.com/\ud800"},
    {"callback_url": URL, "callback_events": "completed"}, {"callback_url": URL, "callback_events": [""]},
    {"callback_url": URL, "callback_events": [5]}, {"callback_url": URL, "callback_events": ["\ud800"]},
    {"watermark": "yes"}, {"watermark": 1}, {"thinking_mode": "no"}, {"aspect": "16:9"}, {"sed": 5},
]
BAD_RUN_OPTIONS: list[dict[str, Any]] = [
    {"timeout": 0}, {"timeout": -1}, {"timeout": float("nan")}, {"timeout": "5"}, {"timeout": float("inf")},
    {"tags": "portrait"}, {"tags": [5]}, {"tags": ["\ud800"]}, {"note": 5}, {"note": "\udcff"},
]
BAD_SWEEPS: list[tuple[str, dict[str, Any]]] = [
    ("p {i}", {"i": [1, 2], "concurrency": 1.5}), ("p {i}", {"i": [1, 2], "concurrency": 0}),
    ("p {i}", {"i": [1, 2], "concurrency": True}), ("p {i}", {"i": [1, 2], "concurrency": "2"}),
    ("p {i}", {"i": [1, 2], "budget_usd": float("nan")}), ("p {i}", {"i": [1, 2], "budget_usd": -1}),
    ("p {i}", {"i": [1, 2], "budget_usd": "1"}), ("p {i}", {"i": [1, 2], "budget_usd": float("inf")}),
    ("p {i}", {"i": [1, 2], "timeout": float("nan")}), ("a {} fox", {}), ("a {0} fox", {}), ("a {x", {"x": [1]}),
    ("a {animal}", {}), ("p", {"seed": "x"}), ("p", {"resolution": "8K"}), ("p {i}", {"i": [1], "aspekt": "1:1"}),
    ("p", {"action": "group", "resolution": ["1K", "4K"]}), ("p", {"budget_usd": 0.01, "seed": [1, 2, 3]}),
]
BAD_BUDGETS: list[dict[str, Any]] = [
    {"usd": float("nan")}, {"usd": float("inf")}, {"usd": float("-inf")}, {"usd": -1}, {"usd": "5"}, {"usd": [1]},
    {"usd": True}, {"per_sweep": float("nan")}, {"per_sweep": float("inf")}, {"per_sweep": -0.5},
    {"per_sweep": "2"},
]
BAD_CONNECTS: list[dict[str, Any]] = [
    {"http_timeout": 0}, {"http_timeout": float("nan")}, {"http_timeout": -1}, {"http_timeout": "5"},
    {"timeout": 0}, {"timeout": float("inf")},
]


def test_bad_inputs_are_rejected_before_anything_is_sent(tmp_path):
    with Simulator(latency=0.05, api_key=SECRET) as sim:
        sess = _connect(sim, tmp_path / "runs")
        calls: list[Callable[[], Any]] = [functools.partial(wan.run, **{"prompt": "a fox", "resolution": "1K", **f})
                                          for f in BAD_FIELDS]
        calls += [lambda o=o: wan.generate("a fox", resolution="1K", **o) for o in BAD_RUN_OPTIONS]
        calls += [lambda t=t, kw=kw: wan.sweep(t, quiet=True, **kw) for t, kw in BAD_SWEEPS]
        for kw in BAD_BUDGETS:
            calls.append(lambda kw=kw: wan.set_budget(kw["usd"]) if "usd" in kw
                         else wan.set_budget(per_sweep=kw["per_sweep"]))
        try:
            for call in calls:
                FIGURES["bad_tried"] += 1
                with pytest.raises(wan.WanError) as info:
                    call()
                TEXTS.append(str(info.value) + repr(info.value))
                FIGURES["bad_rejected"] += 1
            assert sess.budget_usd is None and sess.sweep_budget_usd == 2.00, "a refused budget was kept"
            for kw in BAD_CONNECTS:  # last: a refused connect keeps the session it had
                FIGURES["bad_tried"] += 1
                with pytest.raises(wan.RequestError) as info:
                    wan.connect(api_key=SECRET, base_url=sim.base_url, home=tmp_path / "runs", quiet=True, **kw)
                TEXTS.append(str(info.value))
                FIGURES["bad_rejected"] += 1
            requests = sim.ledger()["requests"]
            assert requests.get("submit", 0) == 0 and requests.get("upload", 0) == 0, requests
            assert wan.generate("a fox after all that", resolution="1K", seed=1).paths[0].is_file()
        finally:
            sess.close()


# -- the key never leaks ------------------------------------------------------------------------------


def test_zz_the_api_key_is_nowhere():
    """Last in this module: every run folder written above, every message shown, every log record."""
    hits = []
    for folder in FOLDERS:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                FIGURES["leak_scans"] += 1
                if SECRET.encode() in path.read_bytes():
                    hits.append(str(path))
    for text in TEXTS:
        FIGURES["leak_scans"] += 1
        if SECRET in text:
            hits.append(text[:200])
    FIGURES["leak_hits"] += len(hits)
    assert FOLDERS and TEXTS and not hits, hits[:5]
