"""The storage engine under the log: one small interface, SQLite behind it by default
(PostgreSQL for a team: ``_log_postgres``).

The writer, the row reads and the DataFrame queries talk to an ``Engine``: a
transaction (read or write) that yields a DB-API connection, the engine's name, a
label for messages, and the column that orders rows written in the same instant. The
SQL they send is common SQL plus what ``_log_query`` writes for the engine's dialect.

Why SQLite in WAL mode with one short ``BEGIN IMMEDIATE`` transaction per write:
users run two notebooks against one folder and lose kernels mid-sweep. WAL lets
readers read while a writer writes; ``BEGIN IMMEDIATE`` takes the write lock up
front (two writers queue on the busy timeout instead of failing on a lock upgrade),
and a write that fails its checks never starts a transaction. Each thread keeps its
own connection (a forked worker opens its own).

Opening a log whose schema is current writes nothing and takes no lock: a reader
never waits for a writer, however long another process holds the write lock.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from . import _log_schema as schema
from ._exceptions import ConfigError, LogWriteError, WanWarning
from ._log_dialect import SQLITE, Dialect

BUSY_TIMEOUT_S = 60.0
STATS_FROM_ROWS = 1000  # below this any plan is quick: no statistics kept
STATS_CHECK_ROWS = 1000  # rows written between two looks at whether the runs table has doubled


class Engine(Protocol):
    """What the log needs of a database (``SQLiteEngine`` here, ``_log_postgres.PostgresEngine``)."""

    kind: str  # "sqlite" | "postgresql"
    label: str  # where the log is, for messages (never a password)
    tiebreak: str  # orders rows created in the same instant
    dialect: Dialect  # the SQL that differs between engines
    schema_version: int
    read_only: bool
    integrity_error: type[Exception]  # what the driver raises when a key or constraint refuses a row

    def transaction(self, write: bool) -> AbstractContextManager[Any]:
        """One transaction on this thread's connection; yields the connection."""
        ...

    def refresh_statistics(self) -> None:
        """Bring the query planner's statistics up to date (after a bulk load: ``copy_to``)."""
        ...

    def close(self) -> None: ...


class SQLiteEngine:
    """A log in one SQLite file (``log.sqlite`` in the run folder).

    A folder that cannot be written (a published or archived copy) is opened read-only,
    as a snapshot; a damaged file is a ConfigError naming it and saying what to do; a
    new log is never made silently beside images it does not know (a warning).
    """

    kind = "sqlite"
    tiebreak = "rowid"
    dialect: Dialect = SQLITE
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self.label = str(self.path)
        self.read_only = not _writable(self.path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        self._indexes_pending = False  # indexes added without a version bump, made by the first write
        self.schema_version = self._open()

    def __repr__(self) -> str:
        return f"SQLiteEngine({self.label!r}{', read-only' if self.read_only else ''})"

    # -- connections ----------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again in a forked child)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            if self.read_only:
                # with a -wal file (rows not yet checkpointed) SQLite reads it beside the log;
                # without one, nothing can change the file: read it as immutable (no lock, no -shm)
                wal = self.path.with_name(self.path.name + "-wal")
                pending = wal.exists() and wal.stat().st_size > 0
                if pending and not self.path.with_name(self.path.name + "-shm").exists():
                    raise ConfigError(
                        f"{self.label} cannot be read here: its -wal file holds runs not yet in the log, and "
                        "without its -shm file SQLite reads them only where it may write, which this folder "
                        "is not. Copy the run folder somewhere writable and open the copy, or open it once "
                        "where it was written (that folds the -wal into the log)")
                target, uri = f"{self.path.as_uri()}?mode=ro{'' if pending else '&immutable=1'}", True
            else:
                target, uri = str(self.path), False
            try:
                conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise self._translated(exc, write=False) from exc
            conn.create_function("wan_contains", 3, contains, deterministic=True)
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._opened.append(conn)
        return conn

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """IMMEDIATE for writes (the lock taken up front), deferred for reads.

        SQLite's errors leave here as wan_nb's: a damaged file is a ConfigError naming it,
        a write that did not land (locked, disk full) a LogWriteError; a refused row
        (``integrity_error``) is left to the caller, who knows which key it was.
        """
        if write and self.read_only:
            raise ConfigError(f"{self.label} is read-only (its folder cannot be written): it can be read, "
                              "not changed; copy the run folder somewhere writable to add to it")
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise self._translated(exc, write) from exc
        try:
            if write and self._indexes_pending:
                for sql in _INDEX_DDL:
                    conn.execute(sql)
                self._indexes_pending = False
            yield conn
            if write:
                self._keep_statistics(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, self.integrity_error):
                raise self._translated(exc, write) from exc
            raise

    def refresh_statistics(self) -> None:
        with self.transaction(write=True) as conn:
            known, have = _statistics(conn)
            if have != known:  # the writer's own check may have just done it (see _keep_statistics)
                conn.execute("ANALYZE runs")

    def _keep_statistics(self, conn: sqlite3.Connection) -> None:
        """ANALYZE the runs table each time it has doubled (from 1,000 rows), checked on the
        first write and after every ``STATS_CHECK_ROWS`` rows written: without statistics
        SQLite takes an index on status (most runs share one) over one on prompt or sweep,
        and a page of a million-run log reads all of it. About a second at a million runs,
        ten times in all. A failed ANALYZE (a full disk) is let go: the write it follows stands."""
        changes, local = conn.total_changes, self._local  # per connection: one per thread
        checked_at = getattr(local, "stats_checked_at", None)
        if checked_at is not None and changes - checked_at < STATS_CHECK_ROWS:
            return
        local.stats_checked_at = changes
        known, have = _statistics(conn)
        if have >= STATS_FROM_ROWS and have > 2 * known:
            conn.execute("SAVEPOINT statistics")
            try:
                conn.execute("ANALYZE runs")
            except sqlite3.Error:
                conn.execute("ROLLBACK TO statistics")
            conn.execute("RELEASE statistics")

    def _translated(self, exc: sqlite3.Error, write: bool) -> Exception:
        """SQLite's error as the user should read it (the file named, what to do)."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return damaged(self.label, str(exc))
        if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
            why = f"another process holds its lock (waited {BUSY_TIMEOUT_S:g} s)"
        elif name.startswith("SQLITE_FULL"):
            why = "the disk is full"
        elif name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")):
            why = f"the file could not be {'written' if write else 'read'} ({exc})"
        else:
            return exc  # a programming error (bad SQL): not the user's to handle
        return LogWriteError(f"the log {self.label} could not be {'written' if write else 'read'}: {why}", why)

    def close(self) -> None:
        """Close every connection this engine opened (each thread's)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    # -- schema ------------------------------------------------------------------------
    def _open(self) -> int:
        """The schema version, after creating or migrating the log if it must be.

        A log whose schema is current is only read: no lock, no write (a reader never
        waits for a writer)."""
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh:
            if self.read_only:
                raise ConfigError(f"there is no log at {self.label}, and its folder cannot be written to make one")
            self._keep_aside_before_new_log()
        with self.transaction(write=False) as conn:
            version = _version(conn)
            missing = _missing_objects(conn)
            if not version and _has_tables(conn):
                raise ConfigError(f"{self.label} is an SQLite database, but not a wan_nb log (no meta table); "
                                  "move it aside, or open the run folder it belongs to")
        if version == schema.SCHEMA_VERSION and missing <= _INDEXES:
            # only indexes missing (added since this log was made): reads do without them, so
            # opening still takes no lock; the first write makes them (transaction())
            self._indexes_pending = bool(missing) and not self.read_only
            return version
        if version > schema.SCHEMA_VERSION:
            raise ConfigError(
                f"{self.label} was written by a newer wan_nb (log schema {version}, this one knows "
                f"{schema.SCHEMA_VERSION}); upgrade wan_nb to read it"
            )
        if self.read_only:
            raise ConfigError(f"{self.label} was written by an older wan_nb (log schema {version}); its folder "
                              "cannot be written, so it cannot be brought up to date here: copy the run folder "
                              "somewhere writable and open it there")
        self._set_wal()
        backup = self._backup() if version else None  # a copy beside it until the migration succeeded
        with self.transaction(write=True) as conn:
            version = _version(conn)  # another process may have done it meanwhile
            if version < schema.SCHEMA_VERSION or _missing_objects(conn):
                _migrate(conn, version)
        if backup is not None:
            backup.unlink(missing_ok=True)
        return schema.SCHEMA_VERSION

    def _keep_aside_before_new_log(self) -> None:
        """A new log beside images it does not know is said out loud, and an empty
        ``log.sqlite`` (a crash, a failed copy) is kept aside, not overwritten."""
        images = self.path.parent / "images"
        known = sum(1 for p in images.rglob("*") if p.is_file()) if images.is_dir() else 0
        kept = ""
        if self.path.exists() and _settled(self.path):  # 0 bytes, and not another process's log being made now
            aside = self.path.with_name(f"{self.path.name}.empty-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.rename(aside)
            kept = f" (the empty {self.path.name} was kept as {aside.name})"
        if known:
            warnings.warn(
                f"wan_nb: starting a new, empty log at {self.label}{kept}, but {images} holds {known} image "
                "file(s) it does not know. Your images are safe. If a log was lost or damaged, "
                f"`wan-nb log repair {self.path.parent}` adds them back to the log as recovered runs",
                WanWarning, stacklevel=4)

    def _backup(self) -> Path:
        """A consistent copy of the log beside it (SQLite's online backup)."""
        target = self.path.with_name(f"{self.path.name}.before-migration")
        dst = sqlite3.connect(target)
        try:
            self.connection().backup(dst)
        finally:
            dst.close()
        return target

    def _set_wal(self) -> None:
        conn = self.connection()
        for attempt in range(50):  # two kernels creating the same fresh log at once
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))


def damaged(label: str, detail: str) -> ConfigError:
    """The error for a log file SQLite cannot read: which file, that images are safe, what to do."""
    folder = Path(label).parent
    return ConfigError(
        f"the log {label} is damaged ({detail}). Your images are safe in {folder / 'images'}. "
        f"Move the damaged file aside and rebuild what can be saved with `wan-nb log repair {folder}` "
        f"(`wan-nb log check {folder}` says what is wrong first)")


EMPTY_SETTLED_S = 5.0  # an empty log file younger than this is another process's new log, not a crash's


def _settled(path: Path) -> bool:
    """Has this (empty) file been left as it is for a while? Two kernels opening a fresh run
    folder at once: the second must not put aside the file the first has just created."""
    try:
        return time.time() - path.stat().st_mtime > EMPTY_SETTLED_S
    except FileNotFoundError:
        return False


def _writable(path: Path) -> bool:
    """Can this process write the log (its file, and the folder for the WAL and -shm files)?"""
    folder = path.parent
    if not folder.exists():
        return True  # made on open
    if not os.access(folder, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None


def contains(text: str | None, needle: str, case: int) -> int | None:
    """pandas' ``str.contains(needle, case=..., regex=False)`` for one value (None stays unknown)."""
    if text is None:
        return None
    return int(needle in text if case else needle.upper() in text.upper())


def _version(conn: sqlite3.Connection) -> int:
    """The log's schema version (0: an empty file, nothing set up yet)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


# the tables and indexes DDL makes (some were added without a version bump: made on open)
_OBJECTS = tuple(re.findall(r"IF NOT EXISTS (\w+)", "\n".join(schema.DDL)))
_INDEX_DDL = [sql for sql in schema.DDL if re.match(r"CREATE (UNIQUE )?INDEX", sql)]
_INDEXES = {re.findall(r"IF NOT EXISTS (\w+)", sql)[0] for sql in _INDEX_DDL}


def _statistics(conn: sqlite3.Connection) -> tuple[int, int]:
    """(the runs the planner's statistics know of, the runs there are: the highest rowid)."""
    try:
        row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # no statistics yet: the first ANALYZE makes their table
        row = None
    known = int(str(row[0]).split()[0]) if row else 0
    return known, int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0])


def _missing_objects(conn: sqlite3.Connection) -> set[str]:
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")}
    return set(_OBJECTS) - have


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring the log from ``version`` to the current schema inside the caller's transaction."""
    conn.execute(schema.DDL[0])
    steps = range(version + 1, schema.SCHEMA_VERSION + 1) if version else range(0)
    tables = {"runs": schema.RUNS, "images": schema.IMAGES, "inputs": schema.INPUTS}
    for step in steps:
        for table, column in schema.NEW_COLUMNS.get(step, []):
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {tables[table][column].sql_type}")
        for sql in schema.MIGRATIONS.get(step, []):
            conn.execute(sql)
    for sql in schema.DDL[1:]:
        conn.execute(sql)
    for step in steps:
        for sql in schema.AFTER_DDL.get(step, []):
            conn.execute(sql)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(schema.SCHEMA_VERSION),),
    )
