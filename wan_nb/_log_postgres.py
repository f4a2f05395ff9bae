"""The log in PostgreSQL: a team's runs in one database, behind the same ``Engine`` interface.

``Log("postgresql://user:password@host:5432/db", home=SHARED_FOLDER)`` (or ``WAN_NB_LOG``)
opens it. The writer, the row reads and the DataFrame queries send the same SQL as on
SQLite (``?`` placeholders, turned into psycopg's ``%s`` here, at the boundary); what the
two say differently is the dialect's (``_log_dialect``). Image files stay in the run
folder ``home``, a shared folder, under paths relative to it.

Why the choices:

- **Writes are serialised** by one transaction-scoped advisory lock, as SQLite's
  ``BEGIN IMMEDIATE`` serialises them: every read-change-write of the writer (a claim, a
  guarded state move, tagging) keeps the meaning it has on SQLite, and a write waits for
  another at most ``LOCK_TIMEOUT_S`` (SQLite's busy timeout). Writes are a few
  milliseconds; a team's machines queue on them, readers never do.
- **One claim per idempotency key** is the unique index ``runs_idem_key``, as on SQLite:
  the same sweep started on two machines at once submits and bills each cell once.
- **Reads** see one snapshot (``REPEATABLE READ READ ONLY``): the runs and their images
  read in one call agree.
- **A lost server** (restarted, a dropped connection) is noticed when a transaction
  begins: the connection is made again, waiting up to ``RECONNECT_S`` for the server to
  come back, and the transaction goes on. A connection lost inside a transaction is a
  ``LogWriteError`` (as a lock past the wait is on SQLite), so what the server billed is
  kept by the session and written again until it lands (``Session._record``).
- **The password** never leaves the URL given: messages and reprs name the log by
  ``label`` (the URL without it) and every driver message is scrubbed (``_config.scrub``).

psycopg 3 is the optional extra ``wan_nb[postgres]``, imported when a PostgreSQL log is
opened; without it, a ConfigError names the extra. Schema: ``_log_schema.PG_DDL``, made or
migrated in one transaction; opening a current log only reads.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from . import _config
from . import _log_schema as schema
from ._exceptions import ConfigError, LogWriteError
from ._log_dialect import ICU_COLLATION, POSTGRES, POSTGRES_WITHOUT_ICU, Dialect

LOCK_TIMEOUT_S = 60.0  # a write waits this long for another machine's write (SQLite's busy timeout)
RECONNECT_S = 30.0  # a server that went away is waited for this long when a transaction begins
CONNECT_TIMEOUT_S = 10  # one attempt to reach the server
MAX_IDLE = 2  # connections a process keeps open between transactions (the rest are closed after use)
WRITE_LOCK = 0x77616E5F6E62  # the advisory lock every write transaction takes ("wan_nb")
# driver messages that no waiting will change; the others are waited out
# (too many clients, a server starting or shutting down, a refused or dropped connection)
_PERMANENT = ("password authentication failed", "no password supplied", "does not exist",
              "could not translate host name", "failed to resolve host", "invalid ", "not permitted",
              "permission denied", "unsupported", "SSL is not enabled", "SSL was required", "certificate")
# SQLSTATEs a wait may clear: a LogWriteError, so what the server billed is kept and written
# again (Session._record). Classes 08 connection, 40 rollback (serialization, deadlock),
# 53 out of resources, 57 operator intervention (shutdown, cancel), 58 system (I/O); and
# 25006: a read-only transaction, as on a standby a failover left us on until it is promoted
# or the name points at the new primary (the connection is dropped: the next one may get there)
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_STATES = ("25006", "55P03", "55006")  # read-only, lock not available, object in use
_RECONNECT_STATES = ("25006",)  # the connection is not given back to the pool


def driver() -> Any:
    """The psycopg module, or a ConfigError naming the extra that brings it."""
    try:
        import psycopg  # the postgres extra: loaded when a PostgreSQL log is opened, never by `import wan_nb`
    except ImportError:
        raise ConfigError("a PostgreSQL log needs the driver psycopg 3, which is not installed: "
                          "pip install 'wan_nb[postgres]'") from None
    return psycopg


@functools.lru_cache(maxsize=2048)
def pg_sql(sql: str) -> str:
    """The log's SQL for psycopg: ``?`` → ``%s`` outside quotes, a literal ``%`` doubled."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote:
            out.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        else:
            out.append("%s" if ch == "?" else ch)
    return "".join(out)


class PgConnection:
    """A psycopg connection that takes the log's SQL (``?`` placeholders) through the DB-API
    calls the log uses: ``execute`` and ``executemany`` returning a cursor."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        cur = self.raw.cursor()
        cur.execute(pg_sql(sql), list(params))
        return cur

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Any:
        cur = self.raw.cursor()
        batch = [list(r) for r in rows]
        if batch:
            cur.executemany(pg_sql(sql), batch)
        return cur

    def copy_rows(self, table: str, names: list[str], rows: Iterable[Iterable[Any]]) -> None:
        """Rows appended with COPY (``Log.copy_to``: ten times the speed of INSERTs, one round trip)."""
        columns = ", ".join(f'"{n}"' for n in names)
        with self.raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


class PostgresEngine:
    """A log in a PostgreSQL database (its default schema, or the one the URL's
    ``options=-csearch_path=...`` names). A connection per transaction from a small pool
    (``MAX_IDLE`` kept open between transactions): a team's kernels, each with a writer
    thread and readers, stay well within the server's ``max_connections``."""

    kind = "postgresql"
    tiebreak = "seq"
    dialect: Dialect = POSTGRES
    read_only = False

    def __init__(self, target: _config.LogTarget) -> None:
        if target.url is None:
            raise ValueError("PostgresEngine needs a postgresql:// target")
        self._psycopg = driver()
        self._url = target.url
        self.label = target.label
        host = target.label.split("@")[-1].split("//")[-1].split("/")[0]
        self.host = host or "the default host"
        self.integrity_error: type[Exception] = self._psycopg.IntegrityError
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # open connections between transactions, at most MAX_IDLE
        self._opened: list[Any] = []  # every open connection (closed by close(), or when the engine is dropped)
        self._inherited: list[Any] = []  # a forked child's copy of its parent's: never used, never closed here
        self._pid = os.getpid()
        self._generation = 0  # bumped by close(): a connection taken before it is closed when given back
        # a Log dropped without close() (wan.log().runs() in a notebook) still closes its connections
        self._finalizer = weakref.finalize(self, _close_all, self._opened, self._lock)
        self._patience = 0.0  # opening: a server that is not there is said at once
        self.schema_version = self._open()
        self._patience = RECONNECT_S

    def __repr__(self) -> str:
        return f"PostgresEngine({self.label!r})"

    # -- connections ----------------------------------------------------------------
    def _connect(self, patience: float) -> Any:
        """A new connection; a server that is away (refusing, starting, shutting down) is
        tried again for up to ``patience`` seconds, anything else fails at once."""
        psycopg = self._psycopg
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                # no server-side prepared statements: a managed service's pooler (PgBouncer in
                # transaction mode) may give each transaction another server session
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                       application_name="wan_nb", prepare_threshold=None)
            except psycopg.Error as exc:
                text = str(exc)
                if any(p in text for p in _PERMANENT) or time.monotonic() + delay > deadline:
                    raise self._translated(exc, write=False, connecting=True) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            with self._lock:
                self._opened.append(conn)
            return conn

    def _take(self, patience: float) -> Any:
        """A connection for one transaction: an idle one, else a new one. A forked child
        leaves its parent's connections alone (closing them would end the parent's sessions)."""
        with self._lock:
            if self._pid != os.getpid():
                self._inherited += self._opened
                self._opened.clear()
                self._idle.clear()
                self._pid = os.getpid()
            conn = self._idle.pop() if self._idle else None
        return conn if conn is not None and not conn.closed else self._connect(patience)

    def _give(self, conn: Any, generation: int) -> None:
        """A connection back after its transaction: kept if few are idle (a team's kernels
        share the server's max_connections) and the engine was not closed meanwhile, else closed."""
        if not (conn.closed or conn.broken):
            with self._lock:
                if len(self._idle) < MAX_IDLE and self._pid == os.getpid() and generation == self._generation:
                    self._idle.append(conn)
                    return
        self._discard(conn)

    def _discard(self, conn: Any) -> None:
        with suppress(Exception):
            conn.close()
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)

    def _begin(self, write: bool) -> tuple[Any, int]:
        """BEGIN on a connection (writes: under the log's write lock), and the engine's generation
        it was taken in; a connection the server dropped since its last use is made again, once."""
        psycopg = self._psycopg
        generation = self._generation
        begin = (f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_S * 1000)}; "
                 f"SELECT pg_advisory_xact_lock({WRITE_LOCK})" if write
                 else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for attempt in range(2):
            conn = self._take(self._patience)
            try:
                conn.execute(begin)
                return conn, generation
            except psycopg.Error as exc:
                if conn.broken or conn.closed:  # the server went away since the last transaction:
                    with self._lock:  # so did the other idle connections' sessions
                        stale, self._idle[:] = [conn, *self._idle], []
                    for old in stale:
                        self._discard(old)
                    if attempt == 0:
                        continue
                else:
                    with suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                    self._give(conn, generation)
                raise self._translated(exc, write) from None
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self, write: bool) -> Iterator[PgConnection]:
        """One transaction; the driver's errors leave as wan_nb's (see ``_translated``), a
        refused row (``integrity_error``) is left to the caller, who knows which key it was."""
        psycopg = self._psycopg
        conn, generation = self._begin(write)
        try:
            yield PgConnection(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) in _RECONNECT_STATES:
                self._discard(conn)  # _give below finds it closed: the next transaction connects afresh
            elif not (conn.broken or conn.closed):
                with suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, psycopg.Error) and not isinstance(exc, self.integrity_error):
                raise self._translated(exc, write) from None
            raise
        finally:
            self._give(conn, generation)

    def _translated(self, exc: Exception, write: bool, connecting: bool = False) -> Exception:
        """The driver's error as the user should read it: the log and its host named, the
        password never (scrubbed from the driver's text too). What a wait may clear is a
        LogWriteError (the session tries a write again until it lands); the rest a ConfigError
        (a setting, a permission, a damaged schema): never the driver's own exception."""
        psycopg = self._psycopg
        detail = _config.scrub(" ".join(str(exc).split()))
        state = getattr(exc, "sqlstate", None) or ""
        verb = "written" if write else "read"
        where = f"the database server at {self.host}"
        if state == "55P03":
            why = f"another process holds its write lock (waited {LOCK_TIMEOUT_S:g} s)"
        elif state.startswith("40"):
            why = f"a concurrent transaction conflicted with it ({detail})"
        elif state.startswith("53"):
            why = f"{where} is out of resources ({detail})"
        elif state == "25006":
            why = f"{where} is read-only just now (a standby, after a failover?) ({detail})"
        elif (connecting or isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
              or state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES):
            if any(p in detail for p in _PERMANENT) and self._patience == 0.0:  # opening: a setting to fix
                return ConfigError(f"the log {self.label} cannot be opened: {detail}")
            # once open, even a refused login (a password changed under a running sweep) is a write
            # that did not land: what the server billed is kept and written again once it can be
            why = f"{where} cannot be reached ({detail})"
        else:  # a permission, a schema changed under us, a bug: nothing a wait clears
            code = f" (SQLSTATE {state})" if state else ""
            return ConfigError(f"the log {self.label} could not be {verb}: {where} refused it{code}: {detail}")
        return LogWriteError(f"the log {self.label} could not be {verb}: {why}", why)

    def refresh_statistics(self) -> None:
        """VACUUM (ANALYZE): autovacuum would get to it, but right after a bulk load (a
        ``copy_to`` of a million runs) queries were planned blind and counts read every row
        (an index-only scan needs the visibility map VACUUM sets). Outside a transaction,
        as VACUUM must be; a user who does not own the tables gets the server's warning only."""
        generation = self._generation
        conn = self._take(self._patience)
        try:
            conn.execute("VACUUM (ANALYZE) runs, images")
        except self._psycopg.Error as exc:
            raise self._translated(exc, write=True) from None
        finally:
            self._give(conn, generation)

    def close(self) -> None:
        """Close the idle connections now and the busy ones when their transaction ends (another
        thread's read is never cut off); a later transaction opens one again."""
        with self._lock:
            idle, self._idle[:] = self._idle[:], []
            self._generation += 1
        for conn in idle:
            self._discard(conn)

    # -- schema ------------------------------------------------------------------------
    def _open(self) -> int:
        """The schema version, after creating or migrating the log if it must be (in one
        transaction, under the write lock). A current log is only read."""
        with self.transaction(write=False) as conn:
            version, missing, foreign = _inspect(conn)
            if conn.execute("SELECT 1 FROM pg_collation WHERE collname = ?", (ICU_COLLATION,)).fetchone() is None:
                self.dialect = POSTGRES_WITHOUT_ICU  # a server built without ICU: upper() by LC_CTYPE
        if foreign:
            raise ConfigError(f"{self.label} holds a table named runs that is not a wan_nb log (no meta table); "
                              "use another database, or a schema of its own (?options=-csearch_path%3Dwan)")
        if version == schema.SCHEMA_VERSION and not missing:
            return version
        if version > schema.SCHEMA_VERSION:
            raise ConfigError(f"{self.label} was written by a newer wan_nb (log schema {version}, this one knows "
                              f"{schema.SCHEMA_VERSION}); upgrade wan_nb to read it")
        with self.transaction(write=True) as conn:
            version, missing, _ = _inspect(conn)  # another machine may have done it meanwhile
            if version < schema.SCHEMA_VERSION or missing:
                _migrate(conn, version)
        return schema.SCHEMA_VERSION


def _close_all(opened: list[Any], lock: threading.Lock) -> None:
    with lock:
        conns = opened[:]
        opened.clear()
    for conn in conns:
        with suppress(Exception):  # a broken connection may fail to close; it is dropped anyway
            conn.close()


_OBJECTS = {sql.split("IF NOT EXISTS ")[1].split()[0] for sql in schema.PG_DDL}


def _inspect(conn: PgConnection) -> tuple[int, set[str], bool]:
    """(schema version, missing tables and indexes, a runs table without a meta table)."""
    have = {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema()").fetchall()}
    version = 0
    if "meta" in have:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
    return version, _OBJECTS - have, "runs" in have and "meta" not in have


def _migrate(conn: PgConnection, version: int) -> None:
    """Bring the log from ``version`` to the current schema inside the caller's transaction."""
    if version:
        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
            for table, column in schema.NEW_COLUMNS.get(step, []):
                col = {"runs": schema.RUNS, "images": schema.IMAGES, "inputs": schema.INPUTS}[table][column]
                conn.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {col.pg_type}')
            for sql in schema.PG_MIGRATIONS.get(step, []):
                conn.execute(sql)
    for sql in schema.PG_DDL:
        conn.execute(sql)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(schema.SCHEMA_VERSION),))
