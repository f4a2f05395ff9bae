"""What the client itself costs: CPU per task, memory during a 4K sweep.

Each figure is taken in a fresh Python process (``python -m benchmarks.client_cost``)
talking to a simulator in another one, so the simulator's rendering is not counted
and imports done once are not either (a one-task warm-up runs first).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from ._sims import simulator


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    """This process's own peak RSS (ru_maxrss would start from the parent's peak: Linux
    keeps it across exec, and the benchmark's parent holds big DataFrames)."""
    return _status_mb("VmHWM")


def child(kind: str, url: str, n: int, resolution: str, concurrency: int | None) -> dict[str, Any]:
    """Runs in the measuring process: a warm-up task, then the sweep being measured."""
    import wan_nb as wan

    with tempfile.TemporaryDirectory() as home:
        wan.connect(api_key="bench", base_url=url, home=home, quiet=True)
        wan.sweep("bench warm-up", seed=[1], resolution="1K", quiet=True).wait()
        kw: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
        rss0, cpu0, t0 = _rss_mb(), _cpu(), time.perf_counter()
        sw = wan.sweep(f"bench {kind} {resolution}", seed=list(range(1, n + 1)), resolution=resolution,
                       quiet=True, confirm=True, **kw).wait()
        cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
        peak = _peak_mb()
        done = sw.counts()["completed"]
        wan.session().close()
    return {"cpu_s": cpu, "wall_s": wall, "rss0_mb": rss0, "peak_mb": peak, "completed": done}


def _run_child(kind: str, url: str, n: int, resolution: str, concurrency: int | None) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.client_cost", kind, url, str(n), resolution, str(concurrency or 0)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["completed"] != n:
        raise RuntimeError(f"{kind}: {res['completed']}/{n} completed")
    return res


def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    n_cpu, n_mem = (8, 4) if short else (48, 16)
    out = []
    with simulator(0.0, 8) as url:
        for res in ("1K", "2K"):  # 1K: the figure; 2K: the default, decoding 4× the pixels
            r = _run_child("cpu", url, n_cpu, res, None)
            per_task = r["cpu_s"] / n_cpu * 1000
            judged = res == "1K"
            out.append((f"client CPU per task, ms ({n_cpu} × {res}, instant simulator)"
                        + ("" if judged else " (informational)"), per_task, "< 5 ms" if judged else "",
                        per_task < 5 or not judged))
        for conc in (None, 8):
            r = _run_child("mem", url, n_mem, "4K", conc)
            grow = r["peak_mb"] - r["rss0_mb"]
            name = "default" if conc is None else f"concurrency={conc}"
            out.append((f"client memory growth, {n_mem} × 4K sweep, {name} (MB)", grow, "< 150 MB", grow < 150))
    out.append(render_4k())
    return out


def render_4k() -> tuple[str, float, str, bool]:
    from wan_nb._request import build_request
    from wan_nb.sim import _render

    req = build_request(prompt="bench render", resolution="4K", seed=11)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        _render.render(req)
        times.append(time.perf_counter() - t)
    best = statistics.median(times)
    return ("simulator render of a 4K image", best, "< 0.5 s", best < 0.5)


if __name__ == "__main__":
    kind, url, n, resolution, conc = sys.argv[1:6]
    print(json.dumps(child(kind, url, int(n), resolution, int(conc) or None)))
