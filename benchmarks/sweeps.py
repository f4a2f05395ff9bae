"""Sweep throughput against a server of fixed width, and the loop a user would write.

The simulator processes ``width`` tasks at once; each takes ``latency`` × 0.5–1.5
(from its seed and prompt, so the durations are known in advance). The ideal is the
time the server itself needs: the tasks' own durations scheduled in order on
``width`` slots, as if every task had been handed to it at once. A sweep's
``wall / ideal`` says how much of the server's width it used; each setting runs
``REPEATS`` times, in turn (another prompt each time), and the figure is the mean.
"""

from __future__ import annotations

import heapq
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import wan_nb as wan
from wan_nb import _wire
from wan_nb._request import build_request
from wan_nb.sim._render import rng_for

from ._sims import ledger, requests_made, simulator

RESOLUTION = "1K"
REPEATS = 2


def durations(prompt: str, seeds: list[int], latency: float) -> list[float]:
    """Each task's processing time, as the simulator draws it."""
    return [latency * (0.5 + rng_for("latency", s, prompt).random()) for s in seeds]


def fifo_makespan(times: list[float], width: int) -> float:
    """Tasks started in order on ``width`` slots, each as soon as one is free."""
    slots = [0.0] * width
    end = 0.0
    for t in times:
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + t)
        end = max(end, start + t)
    return end


def run_sweep(url: str, prompt: str, seeds: list[int], concurrency: int | None) -> dict[str, Any]:
    """One sweep through wan_nb in a fresh run folder: wall time and HTTP requests."""
    with tempfile.TemporaryDirectory() as home:
        wan.connect(api_key="bench", base_url=url, home=home, quiet=True)
        kw: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
        before = ledger(url)
        t0 = time.perf_counter()
        sw = wan.sweep(prompt, seed=seeds, resolution=RESOLUTION, quiet=True, **kw).wait()
        wall = time.perf_counter() - t0
        after = ledger(url)
        done = sw.counts()["completed"]
        line = sw.progress_line()
        wan.session().close()
    if done != len(seeds):
        raise RuntimeError(f"sweep ended with {done}/{len(seeds)} completed: {line}")
    return {"wall": wall, "requests": requests_made(before, after), "line": line}


def documented_loop(url: str, prompt: str, seeds: list[int], poll_s: float = 2.0) -> float:
    """The provider's documented client loop: submit one task, poll it every 2 s until it
    ends, download its image, then the next. Returns the wall time."""
    headers = {"Authorization": "Bearer bench"}
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as http, tempfile.TemporaryDirectory() as out:
        for seed in seeds:
            body = _wire.to_body(build_request(prompt=prompt, seed=seed, resolution=RESOLUTION))
            task = http.post(url + "/tasks", json=body, headers=headers).json()
            while task["status"] not in ("completed", "failed", "cancelled"):
                time.sleep(poll_s)
                task = http.get(f"{url}/tasks/{task['task_id']}", headers=headers).json()
            if task["status"] != "completed":
                raise RuntimeError(f"baseline task ended {task['status']}")
            for i, image in enumerate(task["result"]["images"]):
                Path(out, f"{seed}-{i}.jpg").write_bytes(http.get(image["url"][0]).content)
    return time.perf_counter() - t0


def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    n, width, latency = (8, 4, 0.4) if short else (48, 8, 2.0)
    seeds = list(range(1, n + 1))
    out = []
    with simulator(latency, width) as url:
        ratios: dict[str, list[float]] = {}
        walls: dict[str, dict[str, Any]] = {}
        for take in range(REPEATS):  # each setting twice, in turn, with its own prompts: less noise
            for name, conc in (("default", None), (f"concurrency={width}", width)):
                prompt = f"bench {name} lighthouse, take {take}"
                res = run_sweep(url, prompt, seeds, conc)
                ratios.setdefault(name, []).append(
                    res["wall"] / fifo_makespan(durations(prompt, seeds, latency), width)
                )
                walls.setdefault(name, res)
        prompt = "bench documented loop lighthouse"
        base_ideal = fifo_makespan(durations(prompt, seeds, latency), width)
        base_wall = documented_loop(url, prompt, seeds)
    d = sum(ratios["default"]) / REPEATS
    c = sum(ratios[f"concurrency={width}"]) / REPEATS
    b = base_wall / base_ideal
    out.append(
        (
            f"{n}-task sweep, server width {width}, ~{latency:g} s/task: wall/ideal, default settings "
            f"(mean of {REPEATS})",
            d,
            "<= 1.10",
            d <= 1.10,
        )
    )
    out.append((f"same, concurrency={width}: wall/ideal", c, "<= 1.10", c <= 1.10))
    out.append(("same, documented loop (sequential submit, poll every 2 s): wall/ideal", b, "(baseline)", True))
    out.append(("wan_nb default vs documented loop: times faster", b / d, "(baseline)", True))
    out.append((f"wan_nb concurrency={width} vs documented loop: times faster", b / c, "(baseline)", True))
    per_task = walls["default"]["requests"] / n
    out.append(("HTTP requests per task (default sweep)", per_task, "<= 2.0", per_task <= 2.0))
    return out
