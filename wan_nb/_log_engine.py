"""The storage engine under the log: one small interface, SQLite behind it by default.

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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from . import _log_schema as schema
from ._exceptions import ConfigError

BUSY_TIMEOUT_S = 60.0


class Engine(Protocol):
    """What the log needs of a database."""

    kind: str  # "sqlite"
    label: str  # where the log is, for messages (never a password)
    tiebreak: str  # orders rows created in the same instant
    schema_version: int
    integrity_error: type[Exception]  # what the driver raises when a key or constraint refuses a row

    def transaction(self, write: bool) -> AbstractContextManager[Any]:
        """One transaction on this thread's connection; yields the connection."""
        ...

    def close(self) -> None: ...


class SQLiteEngine:
    """A log in one SQLite file (``log.sqlite`` in the run folder)."""

    kind = "sqlite"
    tiebreak = "rowid"
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self.label = str(self.path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        self.schema_version = self._open()

    def __repr__(self) -> str:
        return f"SQLiteEngine({self.label!r})"

    # -- connections ----------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again in a forked child)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("wan_contains", 3, contains, deterministic=True)
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._opened.append(conn)
        return conn

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """IMMEDIATE for writes (the lock taken up front), deferred for reads."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this engine opened (each thread's)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    # -- schema ------------------------------------------------------------------------
    def _open(self) -> int:
        """The schema version, after creating or migrating the log if it must be."""
        with self.transaction(write=False) as conn:
            version = _version(conn)
            missing = _missing_objects(conn)
        if version == schema.SCHEMA_VERSION and not missing:
            return version
        if version > schema.SCHEMA_VERSION:
            raise ConfigError(
                f"{self.label} was written by a newer wan_nb (log schema {version}, this one knows "
                f"{schema.SCHEMA_VERSION}); upgrade wan_nb to read it"
            )
        self._set_wal()
        with self.transaction(write=True) as conn:
            version = _version(conn)  # another process may have done it meanwhile
            if version < schema.SCHEMA_VERSION:
                _migrate(conn, version)
        return schema.SCHEMA_VERSION

    def _set_wal(self) -> None:
        conn = self.connection()
        for attempt in range(50):  # two kernels creating the same fresh log at once
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))


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


def _missing_objects(conn: sqlite3.Connection) -> set[str]:
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    return set(_OBJECTS) - have


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring the log from ``version`` to the current schema inside the caller's transaction."""
    conn.execute(schema.DDL[0])
    if version:
        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
            for sql in schema.MIGRATIONS.get(step, []):
                conn.execute(sql)
    for sql in schema.DDL[1:]:
        conn.execute(sql)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(schema.SCHEMA_VERSION),),
    )
