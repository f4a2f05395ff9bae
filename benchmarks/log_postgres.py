"""The 100,000-run queries on PostgreSQL beside SQLite (issue 19): a team's log answers as fast.

The log of ``log_scale`` (64-cell sweeps, 98 % completed) is written to SQLite with the
bulk writer, copied into PostgreSQL with ``Log.copy_to`` (timed: what ``wan-nb log copy``
costs a team moving in), and the same queries are timed on both engines.

The server: ``WAN_NB_BENCH_PG`` (a ``postgresql://`` URL of an empty database or schema
you provide), else a throwaway one started from the machine's PostgreSQL programs the way
the tests start theirs (``tests/pg_server.py``); with neither, the section says so and
measures nothing (PostgreSQL is optional).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wan_nb._log import Log

from ._timing import best
from .log_scale import _row, build

REPO = Path(__file__).resolve().parents[1]
Figure = tuple[str, float, str, bool]


@contextmanager
def _server() -> Iterator[Callable[[], str | None] | None]:
    """What gives URLs of empty PostgreSQL logs (None when it has no more), or None when
    there is no PostgreSQL here."""
    given = os.environ.get("WAN_NB_BENCH_PG")
    if given:
        urls = [given]
        yield lambda: urls.pop() if urls else None  # one log: the million-run section says so
        return
    spec = importlib.util.spec_from_file_location("pg_server", REPO / "tests" / "pg_server.py")
    if spec is None or spec.loader is None:
        yield None
        return
    pg_server: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pg_server)
    if pg_server.missing_reason() is not None:
        yield None
        return
    server = pg_server.PgServer().init()
    try:
        yield server.new_schema
    finally:
        server.close()



def _queries(log: Log, label: str, n: int) -> list[Figure]:
    out: list[Figure] = []
    failed = log.runs(where="status == 'failed'")
    assert len(failed) == n // 100, len(failed)
    q = best(lambda: log.runs(where="status == 'failed'"))
    out.append((f"{label}: runs(where=\"status == 'failed'\") [{len(failed)} rows]", q, "< 0.2 s", q < 0.2))
    sweep_id = f"sw-{(n // 64) // 2:06d}"
    g = best(lambda: log.grid("style", "seed", sweep_id=sweep_id))
    out.append((f"{label}: grid() of a 64-cell slice", g, "< 0.2 s", g < 0.2))
    c = best(lambda: log.count(status="completed", style="ink"))
    out.append((f"{label}: count(status=..., style=...) (a sweep-cell key)", c, "< 0.5 s", c < 0.5))
    d = best(lambda: log.distinct("sweep_id", newest_first=True))
    out.append((f"{label}: distinct('sweep_id', newest_first=True)", d, "< 0.5 s", d < 0.5))
    page = best(lambda: log.runs(status="completed", limit=36, offset=n // 2))
    out.append((f"{label}: one page of 36 runs at offset {n // 2:,} (OFFSET walks the rows before it)", page,
                "< 0.5 s", page < 0.5))
    s = best(lambda: log.search("lighthouse take 42", limit=20))
    out.append((f"{label}: search('lighthouse take 42') (the full-text index)", s, "< 0.3 s", s < 0.3))
    whole = best(log.runs, 1)
    out.append((f"{label}: runs() of every run (informational)", whole, "", True))
    appends = []
    for i in range(20):
        row = {**_row(n + 100 + i, time.time()), "run_id": f"run-append-{log.kind}-{i}",
               "idempotency_key": f"append-{log.kind}-{i}"}
        t = time.perf_counter()
        log.add_run(row)
        appends.append(time.perf_counter() - t)
    a = statistics.median(appends)
    out.append((f"{label}: one append (median of 20)", a, "<= 0.010 s", a <= 0.010))
    return out


def measure(short: bool) -> list[Figure]:
    n = 2_000 if short else 100_000
    with _server() as fresh:
        url = fresh() if fresh is not None else None
        if fresh is None or url is None:
            return [("log_postgres: no PostgreSQL here (set WAN_NB_BENCH_PG or install it): not measured",
                     0.0, "", True)]
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            Log(home / "laptop" / "log.sqlite").close()  # the log first: files without a log would warn
            sqlite = build(home / "laptop", n)
            team = Log(url, home=home / "team")
            t = time.perf_counter()
            report = sqlite.copy_to(team)
            copied = time.perf_counter() - t
            assert report.copied == n and team.count() == n, report
            out: list[Figure] = [(f"copy_to of {n:,} runs, SQLite -> PostgreSQL (informational; "
                                  f"{report.files_copied} files)", copied, "", True)]
            for log in (sqlite, team):
                out += _queries(log, f"{log.kind} log of {n:,} runs", n)
            team.close()
            sqlite.close()
            if not short:
                out += _million(fresh(), home)
    return out


def _million(url: str | None, home: Path) -> list[Figure]:
    """Issue 20's targets on PostgreSQL: log_million's million-run log copied in (timed)."""
    from .log_million import fixture, selective

    if url is None:
        return [("postgresql log of 1,000,000 runs: WAN_NB_BENCH_PG gives one database, used above: "
                 "not measured", 0.0, "", True)]
    n = 1_000_000
    source = Log(fixture(n)[0] / "log.sqlite")
    team = Log(url, home=home / "team-million")
    t = time.perf_counter()
    report = source.copy_to(team)
    copied = time.perf_counter() - t
    label = f"postgresql log of {n:,} runs"
    out: list[Figure] = [(f"copy_to of {report.copied:,} runs, SQLite -> PostgreSQL (informational)", copied,
                          "", True)]
    out += selective(team, label, n, home=home / "team-million", log=url)
    team.close()
    source.close()
    return out
