"""The log answers with indexed SQL: same rows as pandas, and no full-table scans on a sweep's way.

Every ``where`` string and filter here is evaluated twice, by the SQL translation
(``Log.runs``) and by pandas on the whole log (``apply_filters`` over ``log.runs()``),
and the two must select the same runs, missing values included. A sweep run against
the simulator over loopback records every SQL statement its log connections run;
each is put through ``EXPLAIN QUERY PLAN``, and none may scan the runs table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import wan_nb as wan
from wan_nb import _log_query as query
from wan_nb import _log_rows
from wan_nb._log import Log
from wan_nb._log_frames import LogFrames, apply_filters
from wan_nb._states import STATES
from wan_nb.sim import Simulator

STYLES = ["ink", "oil", None]


def _rows(n: int = 60) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        style = STYLES[i % 3]
        cell = {"seed": i % 5, **({"style": style} if style else {}), **({"strength": i / 10} if i % 4 == 0 else {})}
        rows.append(
            {
                "run_id": f"run-{i:04d}",
                "created_at": 1_700_000_000 + i * 3600,
                "sweep_id": None if i % 7 == 0 else f"sw-{i % 3}",
                "cell": cell,
                "cell_index": i % 6,
                "tags": ["a", "b"] if i % 2 else ["c"],
                "prompt": f"p{i % 4}",
                "seed": None if i % 11 == 0 else i,
                "resolution": ["1K", "2K", "4K"][i % 3],
                "width": 1024,
                "status": ["completed", "failed", "cancelled", "queued"][i % 4],
                "watermark": bool(i % 2),
                "cost_quota": None if i % 5 == 0 else 11475 * (i % 2),
                "note": None if i % 3 else "n",
                "action": "generate",
                "n": 1 + i % 2,
            }
        )
    return rows


@pytest.fixture
def log(log_url: str, tmp_path: Path) -> Iterator[Log]:
    """The same 60 runs on each engine (``log_url``: SQLite, then PostgreSQL): one translator,
    two dialects, the answers pandas gives."""
    lg = Log(log_url, home=tmp_path / "wan_runs")
    lg.add_runs(_rows())
    yield lg
    lg.close()


WHERES = [
    "status == 'failed'",
    "status != 'failed'",
    "seed > 20",
    "seed != 22",
    "not (seed > 20)",
    "~(seed == 3)",
    "seed >= 10 and seed < 30 or status == 'queued'",
    "(status == 'failed') | (resolution == '4K')",
    "resolution in ['1K', '4K']",
    "resolution not in ['1K']",
    "note != 'n'",
    "note == 'n'",
    "sweep_id != 'sw-1'",
    "cost_quota == 0",
    "cost_quota != 0",
    "not (cost_quota != 0)",
    "watermark == True",
    "watermark",
    "10 < seed <= 40",
    "created_at > '2023-11-15T00:00:00+00:00'",
    "created_at <= '2023-11-15 10:13:20+00:00' or seed == 3",
    "prompt == 'p2' and n == 2",
    "seed == cell_index",
    "seed != cell_index",
    "status == ['failed', 'queued']",
    "not (resolution in ['1K', '4K'])",
    "prompt.str.contains('P1', case=False, regex=False)",
    "prompt.str.contains('p1', regex=False) or seed < 5",
    # a missing note contains nothing; a pattern without regex metacharacters is plain text
    "note.str.contains('n')",
    "not note.str.contains('n', regex=False)",
    "note.str.contains('N', case=False, na=False)",
    # a literal in a list column: the list holds it (what tags='a' means)
    "'a' in tags",
    "'c' not in tags",
    "'a' in tags and seed > 20",
]

FILTERS = [
    {"status": "failed"},
    {"status": ["failed", "queued"]},
    {"seed": None},
    {"seed": [None, 3, 4]},
    {"tags": "a"},
    {"tags": ["c", "zz"]},
    {"style": "ink"},
    {"style": None},
    {"style": ["oil", None]},
    {"strength": 0.8},
    {"sweep_id": "sw-2", "status": "completed"},
    {"watermark": False},
]


def _ids(df) -> list[str]:
    return list(df["run_id"])


@pytest.mark.parametrize("where", WHERES)
def test_where_string_runs_as_sql_and_selects_what_pandas_selects(log, where):
    query.where_clause(where, log._engine.dialect)  # translates: this is the SQL path, not the pandas fallback
    every = log.runs()
    assert _ids(log.runs(where=where)) == _ids(apply_filters(every, where))
    assert log.count(where=where) == len(apply_filters(every, where))


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_filters_run_as_sql_and_select_what_pandas_selects(log, filters):
    for name, want in filters.items():
        query.filter_clause(name, want, log._engine.dialect)
    every = log.runs()
    assert _ids(log.runs(**filters)) == _ids(apply_filters(every, **filters))


def test_a_date_without_a_zone_means_utc(log):
    # pandas refuses to compare a UTC column with a date without a zone; the log reads it as UTC
    assert _ids(log.runs(where="created_at > '2023-11-15'")) == _ids(
        log.runs(where="created_at > '2023-11-15T00:00:00+00:00'")
    )


def test_what_sql_cannot_say_falls_back_to_pandas_with_the_same_answer(log):
    every = log.runs()
    for where in ("seed > seed.median()", "n_images == 0", "prompt.str.endswith('2')"):
        with pytest.raises(query.Untranslatable):
            query.where_clause(where)
        assert _ids(log.runs(where=where, status="completed")) == _ids(
            apply_filters(apply_filters(every, status="completed"), where)
        )
    mask = log.runs(where=lambda df: df["seed"] > 50)
    assert _ids(mask) == _ids(every[every["seed"] > 50])


def test_text_tests_and_list_columns_mean_the_same_when_pandas_evaluates_them(log):
    every = log.runs()
    noted = [r for r, note in zip(every["run_id"], every["note"], strict=True) if note is not None and "n" in note]
    tagged = _ids(log.runs(tags="a"))
    assert noted and tagged
    for where, expected in (("note.str.contains('n')", noted), ("note.str.startswith('n')", noted),
                            ("note.str.endswith('n')", noted), ("note.str.contains('n.*')", noted),
                            ("'a' in tags", tagged), ("'a' not in tags", [r for r in _ids(every) if r not in tagged])):
        # the same where with a derived column (n_images: every run has none) goes to pandas whole
        fallback = f"({where}) and n_images == 0"
        with pytest.raises(query.Untranslatable):
            query.where_clause(fallback)
        assert _ids(log.runs(where=fallback)) == expected == _ids(apply_filters(every, where)), where
        assert _ids(log.runs(where=where)) == expected, where
    for where in ("tags == ['a']", "tags != []", "tags in [['a']]", "images_in == []"):
        for also in ("", " and n_images == 0"):  # SQL, pandas
            with pytest.raises(ValueError, match=r"is a list; ask whether it holds a value with 'x' in"):
                log.runs(where=where + also)


def test_pages_counts_and_distinct_values(log):
    every = _ids(log.runs(status=["completed", "failed"]))
    pages = [_ids(log.runs(status=["completed", "failed"], limit=7, offset=o)) for o in range(0, 40, 7)]
    assert [run for page in pages for run in page] == every
    assert log.count(status=["completed", "failed"]) == len(every)
    assert (
        _ids(log.runs(where="seed > seed.median()", limit=3, offset=2))
        == _ids(log.runs(where="seed > seed.median()"))[2:5]
    )
    assert log.distinct("resolution") == ["1K", "2K", "4K"]
    assert log.distinct("status", sweep_id="sw-1") == sorted(set(log.runs(sweep_id="sw-1")["status"]), key=STATES.index)
    assert log.distinct("style") == ["ink", "oil", None]
    assert log.distinct("seed", where="seed < 4") == [1, 2, 3]
    assert log.distinct("sweep_id", newest_first=True) == ["sw-2", "sw-1", "sw-0", None]
    assert set(log.cell_keys()) == {"strength", "style"}  # seed is a column of its own
    with pytest.raises(ValueError, match="limit"):
        log.runs(limit=-1)


@pytest.mark.parametrize(("column", "filters"), [
    ("seed", {}), ("seed", {"status": "completed"}), ("prompt", {"status": ["completed", "failed"]}),
    ("note", {}), ("sweep_id", {"where": "seed > 10"}), ("resolution", {}), ("style", {}),
    ("seed", {"where": "seed > seed.median()"}),
])
def test_a_page_of_distinct_values_is_that_slice_of_the_whole_list_and_counted_alike(log, column, filters):
    """The explorer's axes read one page of values (SQL and its index where it can): every
    page, the missing value last included, is the slice of the whole list, on both engines."""
    log.add_runs([{"run_id": f"u{i}", "prompt": f"Zebra {i}" if i % 2 else f"éclair {i}", "seed": 1000 + i,
                   "status": "completed", "created_at": 1_800_000_000 + i} for i in range(5)])
    where = filters.pop("where", None)
    whole = log.distinct(column, where, **filters)
    assert None in whole or column in ("resolution", "prompt") or where, whole  # the missing value is tried
    for size in (1, 3, 7):
        pages = [log.distinct(column, where, limit=size, offset=o, **filters)
                 for o in range(0, len(whole) + size, size)]
        assert [v for page in pages for v in page] == whole, (size, pages)
    assert log.distinct(column, where, offset=2, **filters) == whole[2:]
    assert log.count_distinct(column, where, **filters) == len(whole)
    assert log.count_distinct(column, where, at_most=2, **filters) == min(len(whole), 3)
    with pytest.raises(ValueError, match="at_most"):
        log.count_distinct(column, at_most=-1)


def test_unknown_filter_name_is_still_an_error_naming_the_columns(log):
    with pytest.raises(ValueError, match=r"unknown column 'stauts'.*did you mean 'status'"):
        log.runs(stauts="failed")
    with pytest.raises(ValueError, match="unknown column 'colour'"):
        log.count(colour="red")
    assert len(log.runs(style="watercolor")) == 0  # a known cell key, no run with that value


def test_a_grid_and_a_comparison_read_only_the_selected_runs(log, monkeypatch):
    read = LogFrames._read_tables

    def selected_only(self: LogFrames, clause: query.Clause, *a: Any, **k: Any) -> Any:
        assert clause.sql != query.EVERY, "read the whole log"
        return read(self, clause, *a, **k)

    monkeypatch.setattr(LogFrames, "_read_tables", selected_only)
    grid = log.grid("style", "seed", sweep_id="sw-1")
    assert len(grid.cells) == len({(r["style"], r["seed"]) for _, r in log.runs(sweep_id="sw-1").iterrows()})
    assert log.compare("sw-1", "sw-2").kind == "sweeps"


# ----------------------------------------------------------------- no scans on a sweep's way


class _Traced(sqlite3.Connection):
    statements: ClassVar[list[str]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_trace_callback(_Traced.statements.append)


def test_a_sweep_on_a_big_log_never_scans_the_runs_table(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    # every run the package writes has its request's hash (SQLite's statistics know it)
    Log(home / "log.sqlite").add_runs([{**r, "request_hash": f"{i:064x}"} for i, r in enumerate(_rows(3000))])
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=_Traced, **k))
    monkeypatch.delenv("WAVE_API_KEY", raising=False)
    decoded = []
    real_decode = _log_rows.decode_run
    monkeypatch.setattr(_log_rows, "decode_run", lambda row: decoded.append(1) or real_decode(row))
    _Traced.statements = []
    with Simulator(latency=0.05, concurrency=4) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, quiet=True)
        try:
            sw = wan.sweep("a {style} fox", style=["ink", "oil"], seed=[1, 2, 3], resolution="1K", quiet=True).wait()
            again = wan.sweep("a {style} fox", style=["ink", "oil"], seed=[1, 2, 3], resolution="1K", quiet=True).wait()
        finally:
            sess.close()
    assert sw.counts()["completed"] == 6 and again.counts()["completed"] == 6
    # 750 of the 3000 runs are completed: an index on status alone still reads them all
    assert len(decoded) < 100, f"{len(decoded)} runs read from the log for two 6-cell sweeps"
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    selects = {s for s in _Traced.statements if s.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT"))}
    assert len(selects) > 10, selects
    conn = real_connect(home / "log.sqlite")
    scans = {}
    for sql in selects:
        plan = " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        if re.search(r"\bSCAN (runs|images)\b", plan):
            scans[sql] = plan
    assert not scans, "full scans on a sweep's way:\n" + "\n".join(f"{s}\n  -> {p}" for s, p in scans.items())


def test_the_writer_keeps_the_planners_statistics_so_a_page_takes_the_narrow_index(tmp_path):
    """Most runs share one status: without statistics SQLite read a page of a big log through
    the status index (nearly every row); the writer ANALYZEs each time the table doubles."""
    log = Log(tmp_path / "log.sqlite")
    rows = [{**r, "run_id": f"r{i}", "prompt": f"p{i % 500}", "status": "completed" if i % 50 else "failed"}
            for i, r in enumerate(_rows(1) * 3000)]
    for start in range(0, len(rows), 600):
        log.add_runs(rows[start:start + 600])
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    known = int(conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs'").fetchone()[0].split()[0])
    assert known >= 1500, f"statistics of {known} rows for a table of 3000"
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT run_id FROM runs WHERE status = 'completed' "
                        "AND prompt IN ('p1', 'p2')").fetchall()
    assert "runs_prompt_status" in str(plan), plan
    conn.close()


def test_the_explorer_pages_with_indexed_queries_never_the_whole_log(tmp_path, monkeypatch):
    from wan_nb._explore import LogExplorer

    log = Log(tmp_path / "log.sqlite")
    log.add_runs(_rows(3000))
    reads: list[tuple[str, Any]] = []
    real = LogFrames._read_tables

    def recorded(self, clause, limit=None, offset=0, sources=False):
        reads.append((clause.sql, limit))
        return real(self, clause, limit, offset, sources)

    monkeypatch.setattr(LogFrames, "_read_tables", recorded)
    explorer = LogExplorer(log, rows="style", cols="seed", page_rows=2, page_cols=3, status="completed")
    explorer.prompt.value = "P0"  # "prompt has", case-insensitive
    explorer._page("right")
    assert explorer.grid is not None and explorer.grid.col_values and explorer.grid.row_values
    shown = {it.run_id for cell in explorer.grid.cells.values() for it in cell.items}
    expected = log.runs(where="prompt.str.contains('p0', case=False, regex=False)", status="completed")
    assert shown and shown <= set(expected["run_id"])
    assert reads and all(sql != query.EVERY or limit is not None for sql, limit in reads), reads


def test_an_axis_with_more_values_than_are_counted_still_pages_to_its_end(tmp_path, monkeypatch):
    from wan_nb import _explore

    monkeypatch.setattr(_explore, "AXIS_COUNT_CAP", 10)
    log = Log(tmp_path / "log.sqlite")
    log.add_runs(_rows(60))
    seeds = log.distinct("seed", status="completed")
    assert len(seeds) > 10
    explorer = _explore.LogExplorer(log, rows="seed", cols="prompt", page_rows=4, status="completed")
    assert "rows 1-4 of 10+" in explorer.summary.value
    shown: list[Any] = []
    for _ in range(len(seeds)):
        assert explorer.grid is not None
        shown += explorer.grid.row_values
        if explorer._pager["down"].disabled:
            break
        explorer._page("down")
    assert shown == seeds, "every seed, in order, page by page; the last page says so"


def test_a_filter_value_holding_a_nul_matches_nothing_on_both_engines(log):
    """The log never stores text with a NUL (it refuses it), so such a value matches no run:
    an empty answer, as pandas gives, never the driver's refusal of the parameter."""
    assert log.runs(prompt="p1\x00").empty and log.count(prompt="p1\x00") == 0
    assert set(log.runs(prompt=["p1", "p1\x00"])["prompt"]) == {"p1"}
    assert log.runs(tags="a\x00").empty and log.runs(style="ink\x00").empty
    assert len(log.runs(prompt=["p1\x00", None])) == log.count(prompt=None)


def test_values_with_sql_characters_are_parameters_on_both_engines(log):
    log.add_runs([{"run_id": "odd", "prompt": "50% off? it's 'quoted' -- \\ %s", "tags": ["a%b", "c?d"],
                   "cell": {"style": "it's?%"}, "created_at": 1_800_000_000}])
    odd = "50% off? it's 'quoted' -- \\ %s"
    assert list(log.runs(prompt=odd)["run_id"]) == ["odd"]
    assert list(log.runs(where=f"prompt == {odd!r}")["run_id"]) == ["odd"]
    assert list(log.runs(where="prompt.str.contains('% OFF?', case=False, regex=False)")["run_id"]) == ["odd"]
    assert list(log.runs(tags="c?d")["run_id"]) == ["odd"] and list(log.runs(style="it's?%")["run_id"]) == ["odd"]
    assert list(log.search("off quoted")["run_id"]) == ["odd"]
