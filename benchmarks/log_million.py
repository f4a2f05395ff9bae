"""The log as pandas at the speed of pandas: 100,000 and 1,000,000 runs (issue 20).

Each figure is printed beside its target; the DataFrame figures also beside the raw
``pd.read_sql`` of the same rows and columns, measured in the same run. The logs are
written with the package's own bulk writer (``Log.add_runs``) and kept between runs in
a cache folder (``WAN_NB_BENCH_CACHE``, default ``~/.cache/wan_nb-bench``), keyed by
size and schema version: the first full run builds the million-run log (minutes),
later runs reuse it. ``--short`` measures the 100,000-run log only.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

import wan_nb as wan
from wan_nb import _log_schema
from wan_nb._log import Log
from wan_nb._store import Store
from wan_nb._sweep_plan import plan_sweep

from ._sims import ledger, simulator
from ._timing import best
from .log_scale import STYLES, _images, _row

BUILDER = 2  # bump when the fixture changes (its rows, its indexes): the cache is rebuilt
RESUME_PROMPT = "bench million resume: a {style} harbour"
RESUME_SEEDS = list(range(1, 101))  # 10 styles x 100 seeds = 1,000 cells
RESUME_STYLES = [*STYLES, "gouache", "etching"]


def _cache_root() -> Path:
    return Path(os.environ.get("WAN_NB_BENCH_CACHE") or Path.home() / ".cache" / "wan_nb-bench")



def _resume_rows(log: Log, store: Store, t0: float) -> int:
    """A 1,000-cell sweep done earlier (every cell completed, its file on disk)."""
    plan = plan_sweep(RESUME_PROMPT, {"style": RESUME_STYLES, "seed": RESUME_SEEDS, "resolution": "1K"})
    files = _images(store, 4)
    rows = []
    for cell in plan.cells:
        req = cell.request
        rows.append({
            **_row(0, t0), "run_id": f"run-resume{cell.index:08d}", "sweep_id": plan.sweep_id, "cell": cell.coords,
            "cell_index": cell.index, "prompt": req.prompt, "seed": req.seed, "request_hash": req.request_hash,
            "idempotency_key": req.idempotency_key(), "request_json": req.canonical_json(),
            "task_id": f"task-resume{cell.index}",
        })
    log.add_runs(rows, {r["run_id"]: [files[i % 4]] for i, r in enumerate(rows)})
    return len(rows)


def fixture(n: int) -> tuple[Path, float]:
    """The run folder of an ``n``-run log (and the seconds it took to build, 0 when cached)."""
    home = _cache_root() / f"log-{n}-schema{_log_schema.SCHEMA_VERSION}-b{BUILDER}"
    if (home / "done").is_file():
        return home, 0.0
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    t = time.perf_counter()
    log = Log(home / "log.sqlite")  # the log first: a new log beside images it does not know would warn
    store = Store(home)
    files = _images(store)
    t0 = time.time() - n * 2.0 - 7200
    for start in range(0, n, 20_000):
        rows = [_row(i, t0) for i in range(start, min(n, start + 20_000))]
        log.add_runs(rows, {r["run_id"]: [files[i % len(files)]] for i, r in enumerate(rows, start)
                            if r["status"] == "completed"})
    _resume_rows(log, store, t0 + n * 2.0)
    (home / "done").write_text("ok")
    return home, time.perf_counter() - t


MEMORY_CHILD = """
import json, sys
import pandas, numpy
from wan_nb._log import Log

def high_water_kb():  # this process's own peak (ru_maxrss would carry the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

log = Log(sys.argv[1])
before = high_water_kb()
df = log.runs()
peak = high_water_kb()
frame = int(df.memory_usage(deep=True).sum()) // 1024
print(json.dumps({"rows": len(df), "peak_kb": peak - before, "frame_kb": frame}))
"""


def _memory(home: Path) -> dict[str, Any]:
    """``runs()`` in a fresh process: the growth of its peak RSS against the frame's own size."""
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(home / "log.sqlite")], capture_output=True,
                         text=True, timeout=3600, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def selective(subject: Log, label: str, n: int, **connect: Any) -> list[tuple[str, float, str, bool]]:
    """The figures that must not grow with the log, on any engine (``connect``: what
    ``wan.connect`` needs besides the simulator to use this log, ``home=`` and maybe ``log=``)."""
    out: list[tuple[str, float, str, bool]] = []
    sweeps = [f"sw-{k:06d}" for k in range(3, 3 + 15)]
    sel = best(lambda: subject.runs(where=f"sweep_id in {sweeps!r} and seed >= 2"))
    rows = len(subject.runs(where=f"sweep_id in {sweeps!r} and seed >= 2"))
    out.append((f"{label}: selective runs(where=...) [{rows} rows]", sel, "< 0.2 s", sel < 0.2))
    c = best(lambda: subject.count(seed=3))
    out.append((f"{label}: count(seed=3)", c, "< 0.1 s", c < 0.1))
    c2 = best(lambda: subject.count(where="status == 'failed'"))
    out.append((f"{label}: count(where=\"status == 'failed'\")", c2, "< 0.1 s", c2 < 0.1))
    d = best(lambda: subject.distinct("seed"))
    out.append((f"{label}: distinct('seed')", d, "< 0.2 s", d < 0.2))
    take = f"take {(n // 64) // 3}"  # one sweep's charcoal runs: finding that sweep again
    s = best(lambda: subject.search(f"charcoal {take}", limit=20))
    out.append((f"{label}: search('charcoal {take}', limit=20)", s, "< 0.1 s", s < 0.1))
    broad = best(lambda: subject.search("charcoal lighthouse", limit=20), 1)
    out.append((f"{label}: search('charcoal lighthouse', limit=20): {n // 8:,} matches ranked, informational",
                broad, "", True))
    sweep_id = f"sw-{(n // 64) // 2:06d}"
    g = best(lambda: subject.grid("style", "seed", sweep_id=sweep_id))
    out.append((f"{label}: grid() of one sweep", g, "< 0.2 s", g < 0.2))

    from wan_nb._explore import LogExplorer

    explorer = LogExplorer(subject, rows="prompt", cols="seed", status="completed")
    page = best(explorer.draw)
    out.append((f"{label}: one explorer page (prompt x seed, completed runs)", page, "< 0.3 s", page < 0.3))
    explorer = LogExplorer(subject, rows="style", cols="seed", page_rows=4, page_cols=4, status="completed")
    wide = best(explorer.draw, 1)
    out.append((f"{label}: one explorer page of style x seed over every sweep ({n // 4:,} runs), informational",
                wide, "", True))

    with simulator(0.0, 16) as url:
        sess = wan.connect(api_key="bench", base_url=url, quiet=True, **connect)
        try:
            t = time.perf_counter()
            sw = wan.sweep("bench million start: a {style} pier", style=STYLES, seed=list(range(1, 9)),
                           resolution="1K", quiet=True, start=False)
            started = time.perf_counter() - t
            t = time.perf_counter()
            resumed = wan.sweep(RESUME_PROMPT, style=RESUME_STYLES, seed=RESUME_SEEDS, resolution="1K",
                                quiet=True).wait()
            resume = time.perf_counter() - t
            sent = ledger(url)["submitted"]
        finally:
            sess.close()
    assert len(sw.cells) == 64
    assert resumed.counts()["completed"] == 1000 and sent == 0, (resumed.progress_line(), sent)
    out.append((f"{label}: starting a 64-cell sweep (cost, cache and resume look-ups)", started, "< 0.5 s",
                started < 0.5))
    out.append((f"{label}: resuming a 1,000-cell sweep whose cells are all done (nothing sent)", resume,
                "< 1 s", resume < 1))

    return out


def _measure_one(n: int) -> list[tuple[str, float, str, bool]]:
    home, built = fixture(n)
    label = f"log of {n:,} runs"
    out: list[tuple[str, float, str, bool]] = []
    log = Log(home / "log.sqlite")
    conn = sqlite3.connect(home / "log.sqlite")
    total = log.count()

    raw = best(lambda: pd.read_sql("SELECT * FROM runs", conn), 2)
    ours = best(log.runs, 2)
    out.append((f"{label}: pd.read_sql of every run (the reference)", raw, "", True))
    out.append((f"{label}: runs() of every run, seconds", ours, "", True))
    out.append((f"{label}: runs() / read_sql", ours / raw, "<= 2", ours / raw <= 2))
    join = "SELECT * FROM images JOIN runs ON runs.run_id = images.run_id"
    raw_i = best(lambda: pd.read_sql(join, conn), 2)
    ours_i = best(log.images, 2)
    out.append((f"{label}: images() / read_sql of images joined to runs ({ours_i:.1f} s vs {raw_i:.1f} s)",
                ours_i / raw_i, "<= 2", ours_i / raw_i <= 2))

    out += selective(log, label, n, home=home)

    per_run = sum(p.stat().st_size for p in home.glob("log.sqlite*")) / total / 1024
    out.append((f"{label}: log file per run, indexes included, KB", per_run, "<= 2", per_run <= 2))
    mem = _memory(home)
    ratio = mem["peak_kb"] / max(1, mem["frame_kb"])
    out.append((f"{label}: runs() peak memory / the frame's own ({mem['peak_kb'] // 1024} MB / "
                f"{mem['frame_kb'] // 1024} MB)", ratio, "< 3", ratio < 3))
    out.append((f"{label}: fixture built with Log.add_runs (0: cached), informational", built, "", True))
    conn.close()
    return out


def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    out = []
    for n in (100_000,) if short else (100_000, 1_000_000):
        out += _measure_one(n)
    return out
