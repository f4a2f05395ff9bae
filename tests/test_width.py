"""The width estimate (``_width``): how many tasks a sweep keeps in flight.

Pure logic, tested against a model of a server in plain Python: a FIFO queue in front
of ``width`` slots, each task taking 0.5–1.5 × its latency (as the simulator's do).
The sweep end-to-end against the simulator's ``concurrency`` is in test_sweep.py.
"""

from __future__ import annotations

import heapq
import random

import pytest

from wan_nb._width import START, WidthEstimate


def serve(est: WidthEstimate, n: int, width: int, *, latency: float = 2.0, seed: int = 0,
          cap: int | None = None, refuse_above: int | None = None) -> tuple[float, list[float], int]:
    """Run ``n`` tasks through a FIFO server of ``width`` slots, keeping ``est.limit(cap)``
    in flight. ``refuse_above``: the server answers 429 to a task sent with more in flight.
    Returns (wall / ideal, the window after each task, the most tasks ever in flight)."""
    rng = random.Random(seed)
    times = [latency * (0.5 + rng.random()) for _ in range(n)]
    events: list[tuple[float, int, int]] = []  # (time, kind, task): 0 arrives, 1 processed, 2 answer back
    queue: list[int] = []
    tickets: dict[int, tuple[object, float]] = {}
    free, sent, most, windows = width, 0, 0, []
    now = 0.0

    def fill(now: float) -> None:
        nonlocal sent, most
        while sent < n and est.in_flight < est.limit(cap):
            ticket = est.sent()
            most = max(most, est.in_flight)
            if refuse_above is not None and ticket.ahead > refuse_above:
                est.rate_limited()
                est.ended(ticket)  # refused: frees the slot, says nothing of the server's time
                heapq.heappush(events, (now + 0.5, 3, -1))  # try again after the 429's wait
                return
            tickets[sent] = (ticket, now)
            heapq.heappush(events, (now + 0.005, 0, sent))
            sent += 1

    fill(0.0)
    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 0:
            queue.append(i)
        elif kind == 1:
            free += 1
            heapq.heappush(events, (now + 0.005, 2, i))
        elif kind == 2:
            ticket, t0 = tickets.pop(i)
            est.ended(ticket, now - t0, now)  # type: ignore[arg-type]
            windows.append(est.window)
        fill(now)
        while queue and free:
            free -= 1
            j = queue.pop(0)
            heapq.heappush(events, (now + times[j], 1, j))
    slots, ideal = [0.0] * width, 0.0
    for t in times:
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + t)
        ideal = max(ideal, start + t)
    return now / ideal, windows, most


def test_starts_safe_and_keeps_to_a_cap():
    est = WidthEstimate()
    assert est.limit() == START == 4
    assert est.limit(2) == 2
    est.trust(8)  # the user said 8: start there
    assert est.limit() == 8 and est.limit(6) == 6
    _ratio, _windows, most = serve(WidthEstimate(), 60, 16, cap=5)
    assert most == 5, "went above the explicit cap"


def test_grows_while_the_server_answers_promptly():
    est = WidthEstimate()
    _ratio, windows, _ = serve(est, 16, 64)  # a wide server: nothing ever queues
    assert windows == sorted(windows) and windows[-1] > 2 * START, windows


@pytest.mark.parametrize("width", [2, 4, 8])
def test_finds_the_width_of_a_queueing_server(width):
    ratios = []
    for seed in range(10):
        est = WidthEstimate()
        ratio, windows, _ = serve(est, 48, width, seed=seed)
        ratios.append(ratio)
        assert est.limit() >= width, f"settled below the server's width {width}: {windows}"
    assert max(ratios) <= 1.10, ratios


def test_backs_off_when_queueing_time_grows():
    est = WidthEstimate()
    _ratio, windows, most = serve(est, 300, 3, seed=4)
    assert most > 3, "never probed above the width"
    assert not est.slow_start, "never saw the queue"
    settled = windows[-100:]
    assert min(settled) >= 3 and max(settled) <= 2 * 3 + 3, f"did not settle near the width 3: {settled}"
    est2 = WidthEstimate()
    est2.trust(40)  # told 40 is fine; the server takes 4
    serve(est2, 200, 4, seed=1)
    assert 4 <= est2.limit() <= 2 * 4 + 3, est2


def test_a_429_halves_the_window_and_it_stays_near_what_the_server_takes():
    est = WidthEstimate()
    est.trust(32)
    est.rate_limited()
    assert est.window == 16 and not est.slow_start
    est = WidthEstimate()
    _ratio, windows, _most = serve(est, 120, 64, refuse_above=6)
    assert est.limit() <= 8, f"kept sending past the 429s: {windows[-20:]}"


def test_an_estimate_is_shared_by_later_sweeps():
    est = WidthEstimate()
    serve(est, 48, 8)
    learnt = est.limit()
    ratio, windows, _ = serve(est, 48, 8, seed=5)  # the next sweep starts where the last one ended
    assert windows[0] >= learnt - 1 and ratio <= 1.05, (learnt, windows[:5], ratio)
