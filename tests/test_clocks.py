"""A client whose clock is wrong: the server's timestamps are read on the server's clock.

The client reads the wall clock through ``wan_nb._clock.now`` only; these tests skew
that one function (+30 s, -700 s, +150 s, ...) while the simulator, in the same
process, keeps real time (``skew`` checks that no simulator code reads the skewed
clock). What is counted comes from the simulator's side (its ledger): 429s answered,
submit requests received, image downloads tried.

``python -m pytest tests/test_clocks.py -q -s`` prints the figures README's
reliability table quotes.
"""

from __future__ import annotations

import ast
import collections
import email.utils
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wan_nb as wan
from wan_nb import _clock, _spec
from wan_nb._images import ImageRef, to_image_ref
from wan_nb._retry import RetryPolicy
from wan_nb.sim import Simulator

UNIT = _spec.UNIT_QUOTA
SIM_DIR = Path(wan.__file__).parent / "sim"


# -- the skewed client clock -----------------------------------------------------------------------------

class Skew:
    """``_clock.now`` moved by ``seconds``; counts calls made from simulator code (there must be none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seconds = 0.0
        self.from_sim = 0
        real = time.time

        def skewed() -> float:
            frame = sys._getframe(1)
            while frame is not None:
                if frame.f_globals.get("__name__", "").startswith("wan_nb.sim"):
                    self.from_sim += 1
                    break
                frame = frame.f_back  # type: ignore[assignment]
            return real() + self.seconds

        monkeypatch.setattr(_clock, "now", skewed)

    def __call__(self, seconds: float) -> Skew:
        self.seconds = float(seconds)
        return self


@pytest.fixture
def skew(monkeypatch: pytest.MonkeyPatch) -> Iterator[Skew]:
    s = Skew(monkeypatch)
    yield s
    assert s.from_sim == 0, "simulator code read the client's (skewed) clock"


@pytest.fixture(autouse=True)
def no_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    yield
    if wan._session_module._current is not None:
        wan._session_module._current.close()
        wan._session_module._current = None


def test_the_simulator_never_reads_the_clients_clock() -> None:
    """Skewing ``_clock.now`` moves the client only: no simulator module imports ``_clock``."""
    for path in sorted(SIM_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names]
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert "_clock" not in names and not any(m.endswith("_clock") for m in modules), path


# -- the simulator's Date and Retry-After -----------------------------------------------------------------

def _date(text: str) -> float:
    return email.utils.parsedate_to_datetime(text).timestamp()


def _fill_window(sim: Simulator, **settings: Any) -> httpx.Response:
    """One submit admitted, the next refused: the 429."""
    sim.set_faults(reset=True, rate_cap=1, rate_window=30, **settings)
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer k"}) as http:
        assert http.post("/tasks", json={"prompt": "first", "seed": 1}).status_code == 200
        return http.post("/tasks", json={"prompt": "second", "seed": 2})


def test_the_simulator_dates_every_answer_and_can_leave_out_date_or_retry_after(skew: Skew) -> None:
    skew(+3600)  # the client's clock only: the simulator's Date stays true
    with Simulator(latency=0.05) as sim:
        r = _fill_window(sim)
        now = time.time()
        assert r.status_code == 429
        date = _date(r.headers["date"])
        assert now - 2 <= date <= now + 1, r.headers["date"]
        assert r.headers["date"].endswith(" GMT")
        reset_at = r.json()["error"]["reset_at"]
        assert 1 <= int(r.headers["retry-after"]) <= 31 and reset_at - date <= 31
        # every answer is dated, not only the 429s
        assert "date" in httpx.get(sim.url + "/sim/ledger").headers

        r = _fill_window(sim, omit_headers=["Date"])
        assert r.status_code == 429 and "date" not in r.headers and "retry-after" in r.headers
        assert "date" not in httpx.get(sim.url + "/sim/ledger").headers

        r = _fill_window(sim, omit_headers=["Retry-After"])
        assert r.status_code == 429 and "retry-after" not in r.headers and "date" in r.headers
        assert "reset_at" in r.json()["error"]

        r = _fill_window(sim, retry_after="date")
        until = _date(r.headers["retry-after"])
        assert until == r.json()["error"]["reset_at"], r.headers["retry-after"]

        with pytest.raises(ValueError, match="omit_headers"):
            sim.set_faults(omit_headers=["Content-Length"])
        with pytest.raises(ValueError, match="retry_after"):
            sim.set_faults(retry_after="minutes")
        assert sim.faults()["retry_after"] == "date"


# -- the wait a 429 asks for ----------------------------------------------------------------------------------

def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def test_a_429_is_waited_out_on_the_servers_clock_never_less_than_asked_never_a_spin(skew: Skew) -> None:
    policy = RetryPolicy(rng=random.Random(1))
    server = 1_800_000_000.0  # the server's time when it answered
    reset = {"reset_at": server + 4}
    for local in (+30, -700, 0):  # whatever the client's clock says
        skew(server - time.time() + local)
        # 1. Retry-After in seconds, first
        assert 7 < policy.rate_limit_wait({"retry-after": "7", "date": _http_date(server)}, reset, 1) <= 7.25
        # ... or as an HTTP date, read against the answer's Date
        waited = policy.rate_limit_wait({"retry-after": _http_date(server + 5), "date": _http_date(server)}, {}, 1)
        assert 5 < waited <= 5.25
        # 2. reset_at minus the answer's Date
        assert 4 < policy.rate_limit_wait({"date": _http_date(server)}, reset, 1) <= 4.25
        # 3. reset_at minus the server time the client estimated from earlier Date headers
        assert 4 < policy.rate_limit_wait({}, reset, 1, server_now=server) <= 4.25
    # with no Date anywhere, the local clock is all there is
    skew(server - time.time())
    assert 4 < policy.rate_limit_wait({}, reset, 1) <= 4.25
    # asked for nothing, or for a time already past: the backoff, never under the minimum wait
    past = ({"date": _http_date(server)}, {"reset_at": server - 9})
    for headers, extra in (({}, {}), ({"retry-after": "0"}, {}), past, ({"retry-after": "soon"}, {})):
        waits = [policy.rate_limit_wait(headers, extra, attempt) for attempt in (1, 2, 3, 4, 5)]
        assert all(w >= policy.min_rate_limit_wait for w in waits), waits
        assert waits[-1] > policy.min_rate_limit_wait * 2, waits  # 429 after 429: the backoff grows
    fast = RetryPolicy(base_delay=0.01, max_delay=0.02)
    assert fast.rate_limit_wait({}, {}, 1) >= fast.min_rate_limit_wait > 0


def test_the_client_estimates_the_servers_clock_from_date_headers(skew: Skew, tmp_path: Path) -> None:
    skew(-700)
    with Simulator(latency=0.05) as sim, wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as client:
        assert not client.aio.server_clock.known and client.aio.server_clock.offset == 0
        client.run({"prompt": "a fox", "seed": 1, "resolution": "1K"})
        clock = client.aio.server_clock
        assert clock.known and 698.5 <= clock.offset <= 701.5, clock.offset
        assert abs(clock.now() - time.time()) < 1.5


# -- a sweep against a rate-limited API, the client's clock skewed ------------------------------------------

HEADERS: dict[str, dict[str, Any]] = {  # what the simulator's 429s carry
    "Retry-After + Date": {},
    "Retry-After only": {"omit_headers": ["Date"]},
    "Date only (reset_at - Date)": {"omit_headers": ["Retry-After"]},
    "Retry-After as an HTTP date": {"retry_after": "date"},
}


def _honest_429s(cells: int, cap: int) -> int:
    """429s a client that waits as asked gets: every wave sends all cells left, ``cap`` pass."""
    left, count = cells, 0
    while left > cap:
        count += left - cap
        left -= cap
    return count


def _rate_limited_sweep(tmp_path: Path, cells: int, cap: int, headers: dict[str, Any]) -> dict[str, Any]:
    with Simulator(latency=0.05, concurrency=16, faults={"rate_cap": cap, "rate_window": 2.0, **headers}) as sim:
        wan.connect(api_key="k", base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        started = time.monotonic()
        sw = wan.sweep("a {thing}", thing=[f"t{i}" for i in range(cells)], seed=1, resolution="1K",
                       concurrency=cells, quiet=True)
        sw.wait()
        ledger = sim.ledger()
        statuses = collections.Counter(sw.df["status"])
    return {"429": ledger["responses"].get("429", 0), "submits": ledger["requests"].get("submit", 0),
            "failed": cells - statuses["completed"], "seconds": time.monotonic() - started}


SKEWED_SWEEPS = [  # (client clock, cells, the server's cap per 2 s window, what its 429s carry)
    *[(+30, 10, 8, headers) for headers in HEADERS],  # every way of saying it
    (-700, 8, 3, "Retry-After + Date"),
    (-700, 8, 3, "Date only (reset_at - Date)"),  # the one a slow clock could still misread
]


@pytest.mark.parametrize(("seconds", "cells", "cap", "headers"), SKEWED_SWEEPS)
def test_a_skewed_client_clock_waits_as_the_server_asked(skew: Skew, tmp_path: Path, seconds: float, cells: int,
                                                         cap: int, headers: str) -> None:
    """+30 s: the old client saw reset_at in the past and asked again and again (2 429s became
    10-23 here, 87 in the issue); -700 s: it saw a 704 s wait, over its 600 s cap, and failed
    5 of the 8 cells at once though the server asked for 2 s."""
    skew(seconds)
    got = _rate_limited_sweep(tmp_path, cells, cap, HEADERS[headers])
    honest = _honest_429s(cells, cap)
    print(f"\nclient clock {seconds:+} s, {headers}: 429s {got['429']} (honest {honest}), "
          f"submit requests {got['submits']}, {got['failed']} of {cells} cells failed, {got['seconds']:.1f} s")
    assert got["failed"] == 0, got
    assert got["429"] <= 2 * honest, got
    assert got["submits"] <= cells + 2 * honest, got


# -- result links: the server's answer decides ------------------------------------------------------------

def test_a_fast_client_clock_still_downloads_a_link_its_clock_calls_expired(skew: Skew, tmp_path: Path) -> None:
    """+150 s with 120 s links: the old client called the link expired and gave up without
    trying (images_lost, billed); the link works, so it is downloaded."""
    skew(+150)
    with Simulator(latency=0.05, link_ttl=120) as sim:
        wan.connect(api_key="k", base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        r = wan.generate("a heron at dawn", seed=3, resolution="1K")
        ledger = sim.ledger()
    assert r.status == "completed" and r.paths and r.paths[0].is_file()
    assert ledger["requests"].get("file") == 1 and ledger["billed_quota"] == UNIT
    print(f"\nclient clock +150 s, 120 s links: {r.status}, {ledger['requests'].get('file')} download(s) tried")


def test_an_expired_link_is_still_tried_and_the_servers_refusal_is_said(skew: Skew, tmp_path: Path) -> None:
    skew(-700)  # the client's clock says the link has minutes left: only the server knows
    with Simulator(latency=0.05, link_ttl=0.2) as sim, \
            wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as client:
        done = client.complete({"prompt": "too late", "seed": 4, "resolution": "1K"})
        time.sleep(0.4)
        with pytest.raises(wan.LinkExpiredError) as info:
            client.download(done.task)
        assert sim.ledger()["requests"].get("file") == 1
    assert "is gone (the server answered 410" in str(info.value) and "billed" in str(info.value)

    skew(+150)  # and a link the local clock calls expired is tried too (the old client raised without asking)
    with Simulator(latency=0.05, link_ttl=0.2) as sim, \
            wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as client:
        done = client.complete({"prompt": "too late again", "seed": 5, "resolution": "1K"})
        time.sleep(0.4)
        with pytest.raises(wan.LinkExpiredError, match="410"):
            client.download(done.task)
        assert sim.ledger()["requests"].get("file") == 1


def _result_link(client: wan.Client) -> ImageRef:
    """A fresh result as an input: its file, and its own link with the expiry the server set."""
    out = client.run({"prompt": "the source image", "seed": 6, "resolution": "1K"})
    ref = to_image_ref(out.images[0])
    assert ref.url and ref.expires_at
    return ref


def test_a_result_link_is_reused_by_the_servers_clock_not_ours(skew: Skew, tmp_path: Path) -> None:
    """A link is reused while it has ``link_margin`` (10 min) left on the server's clock.

    Client clock +10 min, link with 15 min left: the old client thought 5 min were left,
    and without an uploader refused the input though its link had time to spare. Client
    clock -700 s, link with 5 min left: the old client thought 16 min were left and sent
    a link about to die; now it uploads the file instead."""
    skew(+600)
    with Simulator(latency=0.05, link_ttl=900, urls_only=True) as sim, \
            wan.Client("k", sim.base_url, store=wan.Store(tmp_path / "a")) as client:
        ref = _result_link(client)
        placed = client.place(ref)
        assert placed.via == "link" and placed.url == ref.url

    skew(-700)
    with Simulator(latency=0.05, link_ttl=300) as sim, \
            wan.Client("k", sim.base_url, store=wan.Store(tmp_path / "b")) as client:
        ref = _result_link(client)
        placed = client.place(ref)
        assert placed.via == "upload" and placed.url != ref.url

    skew(-700)  # hosted-like, the same link: refused before sending, with the server's time in the message
    with Simulator(latency=0.05, link_ttl=300, urls_only=True) as sim, \
            wan.Client("k", sim.base_url, store=wan.Store(tmp_path / "c")) as client:
        ref = _result_link(client)
        with pytest.raises(wan.RequestError, match="too soon to send it"):
            client.submit({"prompt": "an edit", "action": "edit", "image_urls": [ref], "seed": 1})
        assert sim.ledger()["submitted"] == 1


def test_a_fast_client_clock_still_chains_results_on_a_hosted_like_api(skew: Skew, tmp_path: Path) -> None:
    """wan.edit(r) on an API that takes URLs only, no uploader, the client's clock 10 min fast
    and the link 15 min from its end: the old client refused the input ("too soon to send it")."""
    skew(+600)
    with Simulator(latency=0.05, link_ttl=900, urls_only=True) as sim:
        wan.connect(api_key="k", base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        r = wan.generate("a lighthouse", seed=7, resolution="1K")
        e = wan.edit("the same lighthouse at night", r, seed=8)
        assert e.status == "completed" and sim.ledger()["submitted"] == 2
    inputs = wan.log().inputs(e.run_id)
    assert [row["via"] for row in inputs] == ["link"], inputs
