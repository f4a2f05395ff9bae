"""``wan-nb log check`` / ``repair``: say what is wrong with a run folder's log, and rebuild what can be.

Why: a log is damaged by a full disk during a copy, a sync tool, a crash of the machine.
The images are content-addressed files beside it and outlive it, so a repair keeps the
damaged file aside, saves every row SQLite can still read, and adds each image the
saved rows do not name back to the log as a "recovered" run (its request and cost are
unknown: the report says so). Nothing is deleted.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import _log_schema as schema
from ._exceptions import ConfigError, WanWarning
from ._log_engine import SQLiteEngine
from ._log_paths import RunFolder
from ._log_writer import LogWriter
from ._store import Store

RECOVERED_TAG = "recovered"
_GAP = 5000  # unreadable rowids in a row after which the rest of a damaged table is taken as lost


@dataclass
class Report:
    """What check or repair found (``problems``) and did (``done``), in sentences."""

    home: Path
    problems: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"run folder: {self.home}"]
        out += [f"problem: {p}" for p in self.problems]
        out += [f"done: {d}" for d in self.done]
        if not self.problems and not self.done:
            out.append("the log and its images are in order")
        return out


def _image_files(home: Path) -> dict[str, Path]:
    """sha256 -> the image file under images/ (content-addressed: the name is the hash)."""
    out: dict[str, Path] = {}
    folder = home / "images"
    for path in sorted(folder.glob("??/*.*")) if folder.is_dir() else []:
        sha = path.name.split(".", 1)[0]
        if len(sha) == 64 and not path.name.startswith("."):
            out.setdefault(sha, path)
    return out


def check(home: str | Path) -> Report:
    """Read only (nothing is migrated or written): is the log readable and whole, does every
    image it names exist, which images does it not know?"""
    home = Path(home).absolute()
    report = Report(home)
    path = home / "log.sqlite"
    if not path.is_file():
        report.problems.append(f"there is no log at {path}")
        return report
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.problems.append(f"{path} cannot be opened ({exc})")
        return report
    try:
        verdict = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if verdict != ["ok"]:
            report.problems.append(f"{path} is damaged: {'; '.join(verdict[:5])}")
        named: dict[str, str] = dict(conn.execute("SELECT sha256, path FROM images"))
        has_index = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_fts'").fetchone() is not None
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{path} is damaged: {exc}")
        return report
    finally:
        conn.close()
    if has_index:
        _check_index(path, report)
    folder = RunFolder(home)
    missing = [p for p in named.values() if p and not Path(folder.absolute(p) or home / "?").is_file()]
    if missing:
        report.problems.append(f"{len(missing)} image file(s) the log names are missing (e.g. {missing[0]})")
    unknown = set(_image_files(home)) - set(named)
    if unknown:
        report.problems.append(f"{len(unknown)} image file(s) in images/ are in no run of the log: "
                               "`wan-nb log repair` adds them as recovered runs")
    return report


def _check_index(path: Path, report: Report) -> None:
    """FTS5's own integrity check (a command sent as an INSERT, in a transaction rolled back)."""
    try:
        conn = sqlite3.connect(path, timeout=2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO runs_fts (runs_fts) VALUES ('integrity-check')")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
    except sqlite3.OperationalError as exc:  # locked by a writer, or a read-only folder: not a fault of the log
        report.done.append(f"the search index was not checked ({exc})")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the search index does not match the runs ({exc}): `wan-nb log repair` rebuilds it")


def _salvage(path: Path, table: str, report: Report) -> list[dict[str, Any]]:
    """Every row of ``table`` SQLite can still read from a damaged file: rows are read in
    rowid order, and past a page that cannot be read the scan starts again a row later
    (up to ``_GAP`` unreadable rowids in a row, then what follows is taken as lost)."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        conn.execute("PRAGMA writable_schema = ON")  # read the schema even where its pages are damaged
        names = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        names = []
    if not names:
        report.problems.append(f"the {table} table of the damaged log could not be read at all")
        return []
    rows: list[dict[str, Any]] = []
    after, misses, skipped = 0, 0, 0
    try:
        while misses < _GAP:
            try:
                for row in conn.execute(f"SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid", (after,)):
                    rows.append(dict(zip(names, row[1:], strict=True)))
                    after, misses = row[0], 0
                break  # the end of the table, read cleanly
            except sqlite3.DatabaseError:
                after, misses, skipped = after + 1, misses + 1, skipped + 1
    finally:
        conn.close()
    if skipped:
        report.problems.append(f"parts of the {table} table could not be read from the damaged log "
                               f"({len(rows)} row(s) saved)")
    return rows


def repair(home: str | Path) -> Report:
    """Keep the log aside if it is damaged, save what it still holds into a new one, and
    add every image no run names as a recovered run. The search index is rebuilt."""
    home = Path(home).absolute()
    report = Report(home)
    path = home / "log.sqlite"
    runs: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    damaged = False
    if path.is_file() and path.stat().st_size:
        try:
            engine = SQLiteEngine(path)
            with engine.transaction(write=False) as conn:
                damaged = [r[0] for r in conn.execute("PRAGMA quick_check")] != ["ok"]
            engine.close()
        except ConfigError:
            damaged = True
    if damaged:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"log.sqlite.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = path.with_name(path.name + suffix)
            if part.exists():
                part.rename(aside.with_name(aside.name + suffix))
        report.done.append(f"kept the damaged log as {aside.name}")
        runs, images, inputs = (_salvage(aside, t, report) for t in ("runs", "images", "inputs"))
        report.done.append(f"saved {len(runs)} run(s), {len(images)} image row(s) and {len(inputs)} input row(s)")
    with warnings.catch_warnings():  # "a new log beside unknown images": this is the repair it advises
        warnings.simplefilter("ignore", WanWarning)
        engine = SQLiteEngine(path)
    try:
        writer = LogWriter(engine, RunFolder(home))
        _write_saved(writer, runs, images, inputs, report)
        _add_recovered(engine, writer, home, report)
        with engine.transaction(write=True) as conn:
            conn.execute("INSERT INTO runs_fts (runs_fts) VALUES ('rebuild')")
        report.done.append("rebuilt the search index")
    finally:
        engine.close()
    return report


def _write_saved(writer: LogWriter, runs: list[dict[str, Any]], images: list[dict[str, Any]],
                 inputs: list[dict[str, Any]], report: Report) -> None:
    kept = [{k: v for k, v in r.items() if k in schema.RUNS} for r in runs if r.get("run_id")]
    ids = {r["run_id"] for r in kept}
    by_run: dict[str, list[dict[str, Any]]] = {}
    files = _image_files(writer.folder.root)
    for im in sorted(images, key=lambda i: (str(i.get("run_id")), i.get("idx") or 0)):
        sha = im.get("sha256")
        # a row saved from a damaged page may hold garbage: kept only when it names an image that is there
        if im.get("run_id") in ids and isinstance(sha, str) and sha in files and \
                writer.folder.relative(files[sha]) == im.get("path"):
            by_run.setdefault(im["run_id"], []).append(
                {k: v for k, v in im.items() if k in schema.IMAGE_FIELDS or k == "idx"})
    if kept:
        writer.add_runs(kept, by_run)
    for run_id in ids:
        placed = [SimpleNamespace(**i) for i in sorted(inputs, key=lambda i: i.get("idx") or 0)
                  if i.get("run_id") == run_id]
        if placed:
            writer.add_inputs(run_id, placed)


def _add_recovered(engine: SQLiteEngine, writer: LogWriter, home: Path, report: Report) -> None:
    """Each image file no run names becomes a completed run tagged "recovered"."""
    with engine.transaction(write=False) as conn:
        named = {r[0] for r in conn.execute("SELECT sha256 FROM images")}
    store = Store(home)
    runs, images, unreadable = [], {}, 0
    for sha in sorted(set(_image_files(home)) - named):
        stored = store.get(sha)
        if stored is None:
            unreadable += 1
            continue
        run_id = f"recovered-{sha[:16]}"
        runs.append({"run_id": run_id, "status": "completed", "tags": [RECOVERED_TAG], "width": stored.width,
                     "height": stored.height, "created_at": stored.path.stat().st_mtime,
                     "note": "recovered by wan-nb log repair from images/: its request and cost are unknown"})
        images[run_id] = [stored]
    if runs:
        writer.add_runs(runs, images)
        report.done.append(f"added {len(runs)} image(s) no run named as recovered runs (tag '{RECOVERED_TAG}'; "
                           "their requests and costs are unknown)")
    if unreadable:
        report.problems.append(f"{unreadable} file(s) in images/ are not readable images and were left out")
