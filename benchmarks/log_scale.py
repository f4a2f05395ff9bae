"""A log of 100,000 runs: filters, a grid slice, a sweep's start, one append.

The fixture is written in bulk (``Log.add_runs``, one transaction), not through
100,000 HTTP runs: 64-cell sweeps (8 styles × 8 seeds) with realistic columns, 98 %
completed (each with an image file of the run folder), 1 % failed, 1 % cancelled.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

import wan_nb as wan
from wan_nb import _states as S
from wan_nb._log import Log
from wan_nb._store import Store
from wan_nb._sweep_plan import plan_sweep

from ._sims import simulator
from ._timing import best

STYLES = ["watercolor", "ink", "oil", "pastel", "photo", "pixel", "charcoal", "neon"]
SWEEP_PROMPT = "bench resume: a {style} harbour"


def _images(store: Store, k: int = 64) -> list[Any]:
    out = []
    for i in range(k):
        im = Image.new("RGB", (512, 512), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        out.append(store.put(_jpeg(im)))
    return out


def _jpeg(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _row(i: int, t0: float) -> dict[str, Any]:
    sweep, cell = divmod(i, 64)
    style, seed = STYLES[cell // 8], cell % 8 + 1
    status = S.FAILED if i % 100 == 7 else S.CANCELLED if i % 100 == 13 else S.COMPLETED
    created = t0 + i * 2.0
    key = hashlib.sha256(f"bench{i}".encode()).hexdigest()
    row: dict[str, Any] = {
        "run_id": f"run-{i:016x}", "created_at": created, "sweep_id": f"sw-{sweep:06d}",
        "cell": {"style": style, "seed": seed}, "cell_index": cell, "tags": ["bench"], "backend": "simulator",
        "model": "wan2.7-image", "action": "generate", "prompt": f"a {style} lighthouse, take {sweep}", "n": 1,
        "seed": seed, "seed_random": False, "aspect_ratio": "1:1", "resolution": "1K", "width": 1024,
        "height": 1024, "images_in": [], "callback_events": [], "watermark": False, "thinking_mode": True,
        "enable_sequential": False, "warnings": [], "request_json": "{}", "request_hash": key[:32],
        "idempotency_key": "wan-nb-" + key, "task_id": f"task-bench{i:012d}", "status": status,
        "est_quota": 11475, "cost_quota": 11475 if status == S.COMPLETED else 0,
        "cost_usd": 0.02295 if status == S.COMPLETED else 0.0, "cache_hit": False,
        "submitted_at": created, "started_at": created + 0.2, "finished_at": created + 1.7,
    }
    if status == S.FAILED:
        row.update(error_code="task_failed", error_message="simulated failure")
    else:
        row["downloaded_at"] = created + 1.8
    return row


def _bulk(log: Log, rows: list[dict[str, Any]], images: dict[str, list[Any]]) -> None:
    log.add_runs(rows, images)


def build(home: Path, n: int) -> Log:
    """A run folder at ``home`` whose log holds ``n`` runs."""
    log = Log(home / "log.sqlite")  # the log first: a new log beside images it does not know would warn
    store = Store(home)
    files = _images(store)
    t0 = time.time() - n * 2.0 - 3600
    for start in range(0, n, 10_000):
        rows = [_row(i, t0) for i in range(start, min(n, start + 10_000))]
        images = {r["run_id"]: [files[i % len(files)]] for i, r in enumerate(rows, start)
                  if r["status"] == S.COMPLETED}
        _bulk(log, rows, images)
    return log


def _resume_rows(log: Log, store: Store, t0: float) -> list[dict[str, Any]]:
    """Half the cells of the sweep that the benchmark starts, completed earlier in its
    own sweep (resume) — the other half new."""
    plan = plan_sweep(SWEEP_PROMPT, {"style": STYLES, "seed": list(range(1, 7)), "resolution": "1K"})
    files = _images(store, 4)
    rows = []
    for cell in plan.cells[::2]:
        req = cell.request
        rows.append({
            **_row(0, t0), "run_id": f"run-resume{cell.index:08d}", "sweep_id": plan.sweep_id, "cell": cell.coords,
            "cell_index": cell.index, "prompt": req.prompt, "seed": req.seed, "request_hash": req.request_hash,
            "idempotency_key": req.idempotency_key(), "request_json": req.canonical_json(),
        })
    log.add_runs(rows, {r["run_id"]: [files[0]] for r in rows})
    return rows



def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    n = 2_000 if short else 100_000
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t = time.perf_counter()
        log = build(home, n)
        built = time.perf_counter() - t
        label = f"log of {n:,} runs"
        found = log.runs(where="status == 'failed'")
        assert len(found) == n // 100, len(found)
        q = best(lambda: log.runs(where="status == 'failed'"))
        out.append((f"{label}: runs(where=\"status == 'failed'\") [{len(found)} rows]", q, "< 0.2 s", q < 0.2))
        sweep_id = f"sw-{(n // 64) // 2:06d}"
        grid = log.grid("style", "seed", sweep_id=sweep_id)
        assert len(grid.cells) == 64, len(grid.cells)
        g = best(lambda: log.grid("style", "seed", sweep_id=sweep_id))
        out.append((f"{label}: grid() of a 64-cell slice", g, "< 0.2 s", g < 0.2))

        _resume_rows(log, Store(home), time.time() - 600)
        with simulator(0.0, 16) as url:
            wan.connect(api_key="bench", base_url=url, home=home, quiet=True)
            t = time.perf_counter()
            sw = wan.sweep(SWEEP_PROMPT, style=STYLES, seed=list(range(1, 7)), resolution="1K", quiet=True)
            started = time.perf_counter() - t
            sw.wait()
            ran = time.perf_counter() - t
            counts = sw.counts()
            wan.session().close()
        assert counts["completed"] == 48, sw.progress_line()
        out.append((f"{label}: starting a 48-cell sweep, 24 to resume (cost, cache and resume lookups)",
                    started, "< 0.5 s", started < 0.5))
        out.append((f"{label}: same sweep to the end, instant server (informational)", ran, "", True))

        appends = []
        for i in range(20):
            row = {**_row(n + 100 + i, time.time()), "run_id": f"run-append{i}"}
            t = time.perf_counter()
            log.add_run(row)
            appends.append(time.perf_counter() - t)
        a = statistics.median(appends)
        out.append((f"{label}: one append (median of 20)", a, "<= 0.010 s", a <= 0.010))
        out.append((f"{label}: fixture written in bulk (informational)", built, "", True))
    return out
