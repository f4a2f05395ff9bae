"""The durable experiment log: every request, task, cost and file of a run folder.

Why SQLite in WAL mode with one short ``BEGIN IMMEDIATE`` transaction per write:
users run two notebooks against one folder and lose kernels mid-sweep. WAL lets
readers work while a writer writes, ``BEGIN IMMEDIATE`` takes the write lock up
front (so two writers queue on the busy timeout instead of failing on a lock
upgrade), and a write that fails its checks never starts a transaction, so the log
never holds half a run. Each thread keeps its own connection (a forked worker opens
its own): safe across threads, forked workers and kernels.

Image paths are stored relative to the log's folder so a project folder can be
moved, zipped or published on Binder and still find its images; a path read back
that leads out of the folder (a tampered or received log) is refused, not followed.

The run pipeline writes through ``claim_run`` (one row per idempotency key: two
processes running the same cell share one row and so one bill) and ``transition``
(the moves of ``_states``, guarded in SQL; the final state, its cost and its images
in one transaction), on the log's own writer thread (``submit``) so that async code
never waits on SQLite's lock in the event loop.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import difflib
import io
import json
import numbers
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from . import _log_query as query
from . import _log_schema as schema
from . import _spec, _states
from ._atomic import atomic_write_bytes
from ._exceptions import ConfigError
from ._log_query import Clause
from ._request import unicode_problem
from ._store import StoredImage

BUSY_TIMEOUT_S = 60.0
IMAGE_FIELDS = ("path", "thumb_path", "sha256", "bytes", "width", "height", "format", "source_url", "expires_at")

Where = str | Callable[[pd.DataFrame], Any] | None
T = TypeVar("T")
NO_SWEEP = "(single runs)"  # spend(): the row of runs made outside any sweep
ALL = "all"  # spend(): the total row


# ----------------------------------------------------------------- value checks



def stored_images(run: dict[str, Any]) -> list[StoredImage]:
    """A logged run's images (``get_run``/``find_runs`` rows) as StoredImage objects; an
    image whose path was refused (outside the run folder) is left out."""
    return [StoredImage(**{k: im.get(k) for k in IMAGE_FIELDS}) for im in run.get("images") or []
            if im.get("path") is not None]

def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_known(names: Iterable[str], known: Mapping[str, Any], what: str) -> None:
    for name in names:
        if name not in known:
            raise ValueError(
                f"unknown {what} column {name!r}{_did_you_mean(name, known)}; known columns: {', '.join(known)}"
            )


def to_sql_value(col: schema.Column, value: Any) -> Any:
    """Check one value against its column and turn it into what SQLite stores.

    Raises ValueError naming the column, so a bad row is refused before any write.
    """
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        pass
    elif schema.is_missing(value):
        return None
    elif type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # np.int64 from a DataFrame, np.bool_, ...
    name, kind = col.name, col.kind
    got = f"got {type(value).__name__} {value!r}"
    if kind in ("text", "category"):
        if name == "request_json" and isinstance(value, dict):
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, {got}")
        bad = unicode_problem(value)
        if bad:
            raise ValueError(f"{name}: {bad}")
        if col.choices and value not in col.choices:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(col.choices)}")
        return value
    if kind == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            return int(float(value))
        raise ValueError(f"{name}: expected an integer, {got}")
    if kind == "bool":
        if isinstance(value, bool):
            return int(bool(value))
        if isinstance(value, numbers.Integral) and int(value) in (0, 1):
            return int(value)
        raise ValueError(f"{name}: expected True or False, {got}")
    if kind in ("real", "time"):
        if kind == "time" and isinstance(value, _dt.datetime):
            return value.timestamp()
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name}: expected a number{' (unix seconds)' if kind == 'time' else ''}, {got}")
    # JSON columns: Python lists/dicts, or JSON text of one
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            hint = f" (e.g. {name}=[{value!r}])" if kind == "json_list" else ""
            raise ValueError(f"{name}: expected a list/dict or JSON text, {got}{hint}") from None
    if isinstance(value, (tuple, set, frozenset)):
        value = list(value) if isinstance(value, tuple) else sorted(value)
    if kind == "json_list" and not isinstance(value, list):
        raise ValueError(f"{name}: expected a list, {got}")
    if kind == "json_dict" and not isinstance(value, dict):
        raise ValueError(f"{name}: expected a dict (axis name → value), {got}")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be stored as JSON ({exc})") from None


def _from_sql(col: schema.Column | None, value: Any) -> Any:
    if value is None or col is None:
        return value
    if col.is_json:
        return json.loads(value)
    if col.kind == "bool":
        return bool(value)
    return value


# ----------------------------------------------------------------- DataFrame typing


def _as_time(s: pd.Series) -> pd.Series:
    # one unit (ns) whether or not the column has values, so frames concat and compare cleanly
    secs = pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.to_datetime(secs, unit="s", utc=True).astype("datetime64[ns, UTC]")


def _typed_column(col: schema.Column, s: pd.Series) -> pd.Series:
    kind = col.kind
    if kind == "time":
        return _as_time(s)
    if kind == "int":
        return pd.to_numeric(s, errors="coerce").astype("Int64")
    if kind == "real":
        return pd.to_numeric(s, errors="coerce").astype("Float64")
    if kind == "bool":
        flags = [None if schema.is_missing(v) else bool(v) for v in s]
        return pd.Series(pd.array(flags, dtype="boolean"), index=s.index)
    if kind == "category":
        seen = list(pd.unique(s.dropna()))
        order = schema.CATEGORY_ORDER.get(col.name, ())
        cats = [c for c in order if c in seen] + sorted(v for v in seen if v not in order)
        return pd.Series(pd.Categorical(s.where(s.notna(), None), categories=cats), index=s.index)
    if col.is_json:
        return pd.Series([None if v is None else json.loads(v) for v in s], index=s.index, dtype=object)
    return s


def _infer_series(values: list[Any], index: pd.Index) -> pd.Series:
    """dtype for a column made from sweep ``cell`` values: Int64 / Float64 / boolean / object."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, index=index, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, index=index, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series(values, index=index, dtype="Float64")
    return pd.Series(values, index=index, dtype=object)


def _norm(value: Any) -> Any:
    """Lists/tuples compared alike when filtering JSON columns."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _filter_mask(s: pd.Series, name: str, want: Any) -> pd.Series:
    values = [want] if isinstance(want, (str, bytes, dict)) or not isinstance(want, Iterable) else list(want)
    if name in schema.CONTAINS_FILTER:  # tags="portrait": rows whose list contains it
        return s.map(lambda xs: isinstance(xs, list) and any(v in xs for v in values)).astype(bool)
    if s.dtype == object:
        normed = [_norm(v) for v in values]

        def hit(x: Any) -> bool:
            if isinstance(x, (list, tuple, dict)):
                return _norm(x) in normed
            if schema.is_missing(x):
                return any(not isinstance(v, (list, dict)) and schema.is_missing(v) for v in values)
            return any(not isinstance(v, (list, dict)) and x == v for v in values)

        return s.map(hit).astype(bool)
    present = [v for v in values if not schema.is_missing(v)]
    mask = s.isin(present)
    if len(present) < len(values):
        mask = mask | s.isna()
    return mask.fillna(False).astype(bool)


def apply_filters(df: pd.DataFrame, where: Where = None, **filters: Any) -> pd.DataFrame:
    """``column=value`` / ``column=[values]`` filters, then ``where`` (query string or callable)."""
    for name, want in filters.items():
        if name not in df.columns:
            raise ValueError(
                f"unknown column {name!r} in filter{_did_you_mean(name, df.columns)}; "
                f"columns are: {', '.join(map(str, df.columns))}"
            )
        df = df[_filter_mask(df[name], name, want)]
    if where is None:
        pass
    elif isinstance(where, str):
        try:
            df = df.query(where)
        except Exception as exc:  # pandas raises many types here; name the query and the columns
            raise ValueError(
                f"where={where!r} could not be evaluated ({type(exc).__name__}: {exc}); "
                f"columns are: {', '.join(map(str, df.columns))}"
            ) from exc
    elif callable(where):
        mask = where(df)
        if isinstance(mask, pd.Series):
            mask = mask.fillna(False).astype(bool)
        df = df[mask]
    else:
        raise TypeError(f"where: expected a pandas query string or a callable(df) -> mask, got {type(where).__name__}")
    return df.reset_index(drop=True)


def _check_page(limit: Any, offset: Any) -> None:
    for name, value, least in (("limit", limit, 0), ("offset", offset, 0)):
        if value is None and name == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"{name}: expected a whole number, {least} or more (got {value!r})")


def _ordered(column: str, values: list[Any]) -> list[Any]:
    """Distinct values in reading order: the document's order for its vocabularies,
    numbers ascending, text alphabetically, anything else as found; missing last."""
    present = [v for v in values if v is not None]
    tail = [None] * (len(present) < len(values))
    order = schema.CATEGORY_ORDER.get(column)
    if order:
        rank = {v: i for i, v in enumerate(order)}
        return sorted(present, key=lambda v: (rank.get(v, len(rank)), str(v))) + tail
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in present):
        return sorted(present) + tail
    if all(isinstance(v, str) for v in present):
        return sorted(present) + tail
    return present + tail


# ----------------------------------------------------------------- the log


class Log:
    """The experiment log of one run folder (``log.sqlite``), with pandas views."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "log.sqlite"
        self.path = path.absolute()
        self.root = self.path.parent
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()
        self._folders: dict[Path, bool] = {}  # folder → inside the run folder (resolved)
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._writer_lock = threading.Lock()
        self._local = threading.local()  # one connection per thread
        self._init_schema()

    def __repr__(self) -> str:
        return f"Log({str(self.path)!r})"

    # -- connections ----------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the log, opened on first use (and again in a
        forked child): opening one reads the schema, which costs more than a write."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("wan_contains", 3, query.contains, deterministic=True)
            local.conn, local.pid = conn, os.getpid()
        conn.row_factory = None
        yield conn

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE for writes (lock taken up front), deferred for reads."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._connect() as conn:
            for attempt in range(50):  # two kernels creating the same fresh log at once
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    time.sleep(0.05 * (attempt + 1))
        with self._transaction(write=True) as conn:
            conn.execute(schema.DDL[0])
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > schema.SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer wan_nb (log schema {version}, this one knows "
                    f"{schema.SCHEMA_VERSION}); upgrade wan_nb to read it"
                )
            if version and version < schema.SCHEMA_VERSION:
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

    @property
    def schema_version(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # -- paths -----------------------------------------------------------------------
    def _relative(self, path: str | Path) -> str:
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()  # already relative to the log's folder
        try:
            return Path(os.path.relpath(p, self.root)).as_posix()
        except ValueError:  # another drive (Windows): nothing relative exists
            return p.as_posix()

    def _absolute(self, stored: str | None) -> str | None:
        """The file a stored path names, or None when it leads out of the run folder
        (``../x.jpg``, an absolute path, a symlink elsewhere): never followed."""
        if stored is None:
            return None
        path = Path(os.path.normpath(self.root / stored))
        if not self.contains(path):
            return None
        return str(path)

    def contains(self, path: str | Path) -> bool:
        """Is ``path`` inside this log's run folder, with ``..`` and symlinks resolved?

        Lexical check first (``../x.jpg``, absolute paths); then the file itself if it
        is a symlink, and its folder (resolved once per folder: a log lists thousands
        of images in a few hundred folders).
        """
        p = Path(os.path.normpath(self.root / path))
        if not p.is_relative_to(self.root):
            return False
        try:
            if p.is_symlink():
                return p.resolve().is_relative_to(self._real_root)
            folder = p.parent
            inside = self._folders.get(folder)
            if inside is None:
                inside = self._folders[folder] = folder.resolve().is_relative_to(self._real_root)
            return inside
        except (OSError, RuntimeError):  # unreadable, or a symlink loop
            return False

    # -- the writer thread -------------------------------------------------------------
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on this log's one writer thread and return its future.

        Why: SQLite waits up to ``BUSY_TIMEOUT_S`` for a lock another process holds;
        async code must not wait in the event loop. One thread keeps writes in order
        (a progress write is never committed after the final one).
        """
        with self._writer_lock:
            if self._writer is None:
                self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wan_nb-log")
            return self._writer.submit(fn, *args, **kwargs)

    # -- writes ----------------------------------------------------------------------
    def add_run(self, run: Mapping[str, Any], images: Iterable[Any] | None = None) -> None:
        """Insert one run (keys = column names), with its ``images``, in one transaction.
        ``created_at`` defaults to now."""
        if not isinstance(run, Mapping):
            raise TypeError(f"add_run expects a dict of column values, got {type(run).__name__}")
        _check_known(run, schema.RUNS, "run")
        run_id = run.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id: required, a non-empty string (got {run_id!r})")
        values = {k: to_sql_value(schema.RUNS[k], v) for k, v in run.items()}
        if values.get("created_at") is None:
            values["created_at"] = time.time()
        cols = list(values)
        sql = f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        rows = None if images is None else [self._image_row(run_id, i, im) for i, im in enumerate(images)]
        try:
            with self._transaction(write=True) as conn:
                conn.execute(sql, [values[c] for c in cols])
                if rows is not None:
                    self._put_images(conn, run_id, rows)
        except sqlite3.IntegrityError as exc:
            if "idempotency_key" in str(exc):
                raise ValueError(f"idempotency_key {values.get('idempotency_key')!r} is already held by another "
                                 f"run in the log ({self.path}); one run per key") from exc
            raise ValueError(f"run_id {run_id!r} is already in the log ({self.path})") from exc

    def add_runs(self, runs: Iterable[Mapping[str, Any]],
                 images: Mapping[str, Iterable[Any]] | None = None) -> int:
        """Insert many runs (and ``images``: run_id → its images) in one transaction.

        For imports and fixtures: a thousand rows cost about what one ``add_run``
        does. Every value is checked as ``add_run`` checks it; one bad row refuses
        the whole batch (nothing written). Returns the number of runs written.
        """
        cols = [c.name for c in schema.RUN_COLUMNS]
        created, now = cols.index("created_at"), time.time()
        values: list[list[Any]] = []
        for i, run in enumerate(runs):
            if not isinstance(run, Mapping):
                raise TypeError(f"runs[{i}]: expected a dict of column values, got {type(run).__name__}")
            _check_known(run, schema.RUNS, "run")
            if not isinstance(run.get("run_id"), str) or not run.get("run_id"):
                raise ValueError(f"runs[{i}].run_id: required, a non-empty string (got {run.get('run_id')!r})")
            row = [to_sql_value(schema.RUNS[c], run[c]) if c in run else None for c in cols]
            if row[created] is None:
                row[created] = now
            values.append(row)
        image_rows = [self._image_row(rid, i, im) for rid, ims in (images or {}).items() for i, im in enumerate(ims)]
        image_cols = ["run_id", "idx", *IMAGE_FIELDS]
        try:
            with self._transaction(write=True) as conn:
                conn.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                                 values)
                conn.executemany(
                    f"INSERT INTO images ({', '.join(image_cols)}) VALUES ({', '.join('?' for _ in image_cols)})",
                    [[r.get(c) for c in image_cols] for r in image_rows])
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"add_runs: {exc} ({self.path}); nothing was written") from exc
        return len(values)

    def _put_images(self, conn: sqlite3.Connection, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace a run's image rows (inside the caller's transaction)."""
        cols = ["run_id", "idx", *IMAGE_FIELDS]
        conn.execute("DELETE FROM images WHERE run_id = ?", (run_id,))
        try:
            conn.executemany(f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                             [[r.get(c) for c in cols] for r in rows])
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"images of run {run_id!r}: two images share one idx ({exc})") from exc

    def update_run(self, run_id: str, **cols: Any) -> None:
        """Change some columns of one run (one transaction). Unknown run → KeyError."""
        _check_known(cols, schema.RUNS, "run")
        if "run_id" in cols:
            raise ValueError("run_id: cannot be changed by update_run")
        values = {k: to_sql_value(schema.RUNS[k], v) for k, v in cols.items()}
        with self._transaction(write=True) as conn:
            if values:
                sets = ", ".join(f"{c} = ?" for c in values)
                cur = conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*values.values(), run_id])
                found = cur.rowcount > 0
            else:
                found = conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None
            if not found:
                raise KeyError(f"no run with run_id {run_id!r} in {self.path}")

    def claim_run(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Insert ``run`` unless a run already holds its ``idempotency_key``; return the
        row that holds the key (``run`` as written, or the other one).

        The key is the claim on one server task: two processes sweeping the same cells
        end up writing one row, so the task is counted once.
        """
        key = run.get("idempotency_key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"idempotency_key: claim_run needs one (got {key!r})")
        _check_known(run, schema.RUNS, "run")
        values = {k: to_sql_value(schema.RUNS[k], v) for k, v in run.items()}
        if values.get("created_at") is None:
            values["created_at"] = time.time()
        cols = list(values)
        with self._transaction(write=True) as conn:
            conn.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                [values[c] for c in cols],
            )
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM runs WHERE idempotency_key = ?", (key,)).fetchone()
        return self._decode_run(row)

    def transition(self, run_id: str, status: str, *, images: Iterable[Any] | None = None,
                   **cols: Any) -> str | None:
        """Move a run to ``status`` with ``cols`` (and its ``images``, replaced) in one
        transaction, if the state machine allows the move from where the row is now.

        Returns the run's status after the call: ``status`` when the move was made,
        the row's own state when it was refused (e.g. another process completed it),
        None when there is no such run.
        """
        if "run_id" in cols or "status" in cols:
            raise ValueError("transition: run_id and status are not columns to set here")
        _check_known(cols, schema.RUNS, "run")
        values = {k: to_sql_value(schema.RUNS[k], v) for k, v in {**cols, "status": status}.items()}
        rows = None if images is None else [self._image_row(run_id, i, im) for i, im in enumerate(images)]
        allowed = _states.sources(status)
        sets = ", ".join(f"{c} = ?" for c in values)
        marks = ", ".join("?" for _ in allowed)
        with self._transaction(write=True) as conn:
            cur = conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ? AND (status IN ({marks}) OR status IS NULL)",
                               [*values.values(), run_id, *allowed])
            if cur.rowcount == 0:
                found = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                return None if found is None else found[0]
            if rows is not None:
                self._put_images(conn, run_id, rows)
        return status

    def _image_row(self, run_id: str, idx: int, image: Any) -> dict[str, Any]:
        if isinstance(image, Mapping):
            data = dict(image)
            _check_known(data, dict.fromkeys(("idx", *IMAGE_FIELDS), 1), "image")
        elif all(hasattr(image, f) for f in ("path", "sha256")):  # StoredImage or alike
            data = {f: getattr(image, f, None) for f in IMAGE_FIELDS}
        else:
            raise TypeError(f"images[{idx}]: expected a StoredImage or a dict, got {type(image).__name__}")
        data.setdefault("idx", idx)
        if schema.is_missing(data.get("path")) or not str(data.get("path")):
            raise ValueError(f"images[{idx}].path: required")
        for key in ("path", "thumb_path"):
            if not schema.is_missing(data.get(key)):
                data[key] = self._relative(data[key])
                if not self.contains(self.root / data[key]):
                    raise ValueError(f"images[{idx}].{key}: {data[key]!r} is outside the run folder {self.root}")
        row = {"run_id": run_id}
        for name, value in data.items():
            try:
                row[name] = to_sql_value(schema.IMAGES[name], value)
            except ValueError as exc:
                raise ValueError(f"images[{idx}].{exc}") from None
        return row

    def add_images(self, run_id: str, images: Iterable[Any]) -> None:
        """Record a run's images (StoredImage or dicts), replacing any it had, in one transaction."""
        rows = [self._image_row(run_id, i, im) for i, im in enumerate(images)]
        with self._transaction(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run with run_id {run_id!r} in {self.path}; add_run first")
            self._put_images(conn, run_id, rows)

    def add_inputs(self, run_id: str, images: Iterable[Any]) -> None:
        """Record how each input image of a run went out (placed ``ImageRef``s: ``via``,
        ``sha256``, ``url``, ``expires_at``), replacing any it had, in one transaction."""
        rows = []
        for idx, ref in enumerate(images):
            via = getattr(ref, "via", None)
            row = {"run_id": run_id, "idx": idx, "via": via, "sha256": getattr(ref, "sha256", None),
                   "url": None if via == "upload" else getattr(ref, "url", None),
                   "expires_at": getattr(ref, "expires_at", None) if via == "link" else None}
            try:
                rows.append([to_sql_value(schema.INPUTS[k], v) for k, v in row.items()])
            except ValueError as exc:
                raise ValueError(f"inputs[{idx}].{exc}") from None
        cols = [c.name for c in schema.INPUT_COLUMNS]
        with self._transaction(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run with run_id {run_id!r} in {self.path}; add_run first")
            conn.execute("DELETE FROM inputs WHERE run_id = ?", (run_id,))
            conn.executemany(f"INSERT INTO inputs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", rows)

    # -- reads as dicts --------------------------------------------------------------
    def _decode_run(self, row: sqlite3.Row) -> dict[str, Any]:
        return {k: _from_sql(schema.RUNS.get(k), row[k]) for k in row.keys()}  # noqa: SIM118 - a sqlite3.Row iterates values

    def _decode_image(self, row: sqlite3.Row) -> dict[str, Any]:
        out = {k: _from_sql(schema.IMAGES.get(k), row[k]) for k in row.keys()}  # noqa: SIM118 - a sqlite3.Row iterates values
        for key in ("path", "thumb_path"):
            if out.get(key) is not None:
                inside = self._absolute(out[key])
                out[key] = None if inside is None else Path(inside)
        return out

    def _select_runs(self, where_sql: str = "", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._transaction(write=False) as conn:
            conn.row_factory = sqlite3.Row
            runs = [self._decode_run(r) for r in conn.execute(
                f"SELECT * FROM runs {where_sql} ORDER BY created_at, rowid", list(params)
            )]
            ids = [r["run_id"] for r in runs]
            images: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                for r in conn.execute(
                    f"SELECT * FROM images WHERE run_id IN ({', '.join('?' for _ in part)}) ORDER BY run_id, idx", part
                ):
                    images[r["run_id"]].append(self._decode_image(r))
        for run in runs:
            run["images"] = images[run["run_id"]]
        return runs

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run as a dict (JSON columns decoded, flags as bool) plus ``images`` (absolute paths)."""
        found = self._select_runs("WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def run_images(self, run_id: str) -> list[StoredImage]:
        """A run's images as StoredImage objects (e.g. to serve a cache hit)."""
        run = self.get_run(run_id)
        if run is None:
            raise KeyError(f"no run with run_id {run_id!r} in {self.path}")
        return stored_images(run)

    def find_runs(
        self,
        *,
        idempotency_key: str | None = None,
        sweep_id: str | Iterable[str] | None = None,
        request_hash: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        task_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching every given criterion (each may also be a list), oldest first.

        Dicts as ``get_run`` returns them, with their ``images``: what resuming a sweep,
        serving a cache hit or re-fetching a task by id needs, without pandas.
        """
        clauses, params = [], []
        for name, value in (
            ("idempotency_key", idempotency_key), ("sweep_id", sweep_id),
            ("request_hash", request_hash), ("status", status), ("task_id", task_id),
        ):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            clauses.append(f"{name} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        return self._select_runs(("WHERE " + " AND ".join(clauses)) if clauses else "", params)

    def inputs(self, run_id: str) -> list[dict[str, Any]]:
        """How each input image of a run went out (``via``: url / link / upload), by ``idx``."""
        with self._transaction(write=False) as conn:
            cur = conn.execute("SELECT * FROM inputs WHERE run_id = ? ORDER BY idx", (run_id,))
            names, rows = [d[0] for d in cur.description], cur.fetchall()
        return [{k: _from_sql(schema.INPUTS.get(k), v) for k, v in zip(names, row, strict=True)} for row in rows]

    def result_link(self, sha256: str) -> tuple[str, float] | None:
        """(url, expires_at) of the result link that serves the image with this sha256
        and lives longest, expired or not; links without a known expiry are not trusted."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT source_url, expires_at FROM images WHERE sha256 = ? AND source_url IS NOT NULL "
                "AND expires_at IS NOT NULL ORDER BY expires_at DESC LIMIT 1", (sha256,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def mark_link_dead(self, url: str, when: float) -> None:
        """The server refused ``url`` as expired (evicted before its announced end): it
        ended by ``when``, whatever expiry was recorded, so no later run sends it again."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE images SET expires_at = ? WHERE source_url = ? AND (expires_at IS NULL "
                         "OR expires_at > ?)", (when, url, when))
            conn.execute("UPDATE inputs SET expires_at = ? WHERE url = ? AND via = 'link' AND (expires_at IS NULL "
                         "OR expires_at > ?)", (when, url, when))

    def dead_links(self, urls: Iterable[str], now: float) -> set[str]:
        """Those of ``urls`` that the log knows ended before ``now`` (expired or refused)."""
        wanted = sorted(set(urls))
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT source_url FROM images WHERE source_url IN ({marks}) AND expires_at <= ?",
                (*wanted, now),
            ).fetchall()
        return {r[0] for r in rows}

    def made_from(self) -> dict[str, list[str]]:
        """run_id → the runs whose images it took as inputs, in input order.

        An input is matched by its sha256 (however it was sent), or, for a URL given by
        hand, by the result link it is; an image belongs to the first run that made it
        (not to a later cache hit that shows the same file).
        """
        with self._transaction(write=False) as conn:
            runs = conn.execute("SELECT run_id, images_in FROM runs ORDER BY created_at, rowid").fetchall()
            images = conn.execute(
                "SELECT i.run_id, i.sha256, i.source_url FROM images i JOIN runs r ON r.run_id = i.run_id "
                "ORDER BY COALESCE(r.cache_hit, 0), r.created_at, r.rowid, i.idx"
            ).fetchall()
        maker: dict[str, str] = {}
        by_link: dict[str, str] = {}
        for run_id, sha, url in images:
            maker.setdefault(sha, run_id)
            if url:
                by_link.setdefault(url, sha)
        out: dict[str, list[str]] = {}
        for run_id, images_in in runs:
            parents: list[str] = []
            for name in json.loads(images_in) if images_in else []:
                sha = name[len("sha256:"):] if name.startswith("sha256:") else by_link.get(name)
                parent = maker.get(sha) if sha else None
                if parent and parent != run_id and parent not in parents:
                    parents.append(parent)
            out[run_id] = parents
        return out

    def lineage(self, run: Any) -> pd.DataFrame:
        """The run and every run it was made from, back to the first: ``runs()`` rows,
        oldest first (the first row is where the chain started, the last is ``run``).

        ``run``: a run id or anything with ``.run_id`` (a ``Result``). Added columns:
        ``made_from`` (run ids whose images this run took as inputs) and ``depth``
        (steps back from ``run``: 0 is the run itself, 1 its sources, ...).
        """
        run_id = run if isinstance(run, str) else getattr(run, "run_id", None)
        if not isinstance(run_id, str):
            raise TypeError(f"lineage: expected a run id or an object with .run_id, got {run!r}")
        parents = self.made_from()
        if run_id not in parents:
            raise KeyError(f"lineage: no run {run_id!r} in {self.path}")
        depth = {run_id: 0}
        queue = [run_id]
        while queue:
            current = queue.pop(0)
            for parent in parents[current]:
                if parent not in depth:
                    depth[parent] = depth[current] + 1
                    queue.append(parent)
        df = self.runs(run_id=list(depth))
        df["made_from"] = pd.Series([parents[r] for r in df["run_id"]], index=df.index, dtype=object)
        df["depth"] = pd.Series([depth[r] for r in df["run_id"]], index=df.index, dtype="Int64")
        return df

    # -- DataFrames ------------------------------------------------------------------
    def _read_tables(self, clause: Clause, limit: int | None = None, offset: int = 0,
                     sources: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The runs ``clause`` selects (oldest first, ``limit``/``offset`` applied) and their
        image rows, in one snapshot; ``sources``: also the images of the runs a cache hit
        among them was served from."""
        page = "" if limit is None and not offset else " LIMIT ? OFFSET ?"
        page_params = [] if not page else [-1 if limit is None else int(limit), int(offset)]
        selected = f"SELECT {{}} FROM runs WHERE {clause.sql} ORDER BY created_at, rowid{page}"
        with self._transaction(write=False) as conn:
            cur = conn.execute(selected.format("*"), [*clause.params, *page_params])
            runs = pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])
            ids = f"SELECT run_id FROM ({selected.format('run_id, cached_from')})"
            params = [*clause.params, *page_params]
            if sources:
                ids += f" UNION SELECT cached_from FROM ({selected.format('run_id, cached_from')})"
                params += params
            cur = conn.execute(f"SELECT * FROM images WHERE run_id IN ({ids}) ORDER BY run_id, idx", params)
            images = pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])
        runs = runs.astype(object)
        images = images.astype(object)
        return runs.where(runs.notna(), None), images.where(images.notna(), None)

    def _typed(self, raw_runs: pd.DataFrame, raw_images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, images) with documented dtypes and the derived columns."""
        runs = pd.DataFrame(index=raw_runs.index)
        for col in schema.RUN_COLUMNS:
            runs[col.name] = _typed_column(col, raw_runs[col.name])

        images = pd.DataFrame(index=raw_images.index)
        for col in schema.IMAGE_COLUMNS:
            images[col.name] = _typed_column(col, raw_images[col.name])
        for key in ("path", "thumb_path"):
            images[key] = pd.Series([self._absolute(v) for v in raw_images[key]], index=raw_images.index, dtype=object)

        paths: dict[str, list[str]] = {}
        for rid, p in zip(images["run_id"], images["path"], strict=True):
            paths.setdefault(rid, []).append(p)
        runs["n_images"] = pd.Series([len(paths.get(r, ())) for r in runs["run_id"]], index=runs.index, dtype="Int64")
        runs["paths"] = pd.Series([paths.get(r, []) for r in runs["run_id"]], index=runs.index, dtype=object)
        runs["duration_s"] = (runs["finished_at"] - runs["submitted_at"]).dt.total_seconds().astype("Float64")

        # each key of a sweep's `cell` as its own column (unless a real column has the name)
        keys: list[str] = []
        for cell in runs["cell"]:
            if isinstance(cell, dict):
                keys.extend(k for k in cell if k not in keys and k not in runs.columns)
        for key in keys:
            values = [c.get(key) if isinstance(c, dict) else None for c in runs["cell"]]
            runs[key] = _infer_series(values, runs.index)
        return runs, images

    def _selection(self, where: Where, filters: dict[str, Any]) -> tuple[Clause, dict[str, Any], Where]:
        """(the SQL of what translates, filters left for pandas, ``where`` left for pandas)."""
        clause, rest = Clause(), {}
        for name, want in filters.items():
            try:
                clause = clause.also(query.filter_clause(name, want))
            except query.Untranslatable:
                rest[name] = want
        if isinstance(where, str):
            with suppress(query.Untranslatable):
                clause, where = clause.also(query.where_clause(where)), None
        return clause, rest, where

    def _check_keys(self, filters: dict[str, Any]) -> None:
        """A filter on a name that is no column and no sweep-cell key of any run: say so."""
        known = [*schema.RUNS, *schema.DERIVED_COLUMNS]
        with self._transaction(write=False) as conn:
            for name in filters:
                if name in known:
                    continue
                try:
                    exists = query.cell_key_exists_sql(name)
                except query.Untranslatable:
                    continue
                if conn.execute(f"SELECT 1 FROM runs WHERE {exists.sql} LIMIT 1", exists.params).fetchone() is None:
                    raise ValueError(f"unknown column {name!r} in filter{_did_you_mean(name, known)}; "
                                     f"columns are: {', '.join(known)} and the keys of sweep cells")

    def frames(self, where: Where = None, *, limit: int | None = None, offset: int = 0,
               **filters: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, images) of the selected runs: ``runs()`` rows and the image rows they
        show (their own, and those a cache hit among them was served from).

        Filters and ``where`` strings run as SQL on the log's indexes (see
        ``_log_query``); what SQL cannot say is evaluated with pandas on the rows SQL
        selected. ``limit``/``offset`` page through the selection, oldest first.
        """
        _check_page(limit, offset)
        clause, rest, pwhere = self._selection(where, filters)
        exact = not rest and pwhere is None
        raw = self._read_tables(clause, limit if exact else None, offset if exact else 0, sources=True)
        runs, images = self._typed(*raw)
        if not len(runs) and len(rest) < len(filters):
            self._check_keys({k: v for k, v in filters.items() if k not in rest})
        if not exact:
            runs = apply_filters(runs, pwhere, **rest)
            if limit is not None or offset:
                runs = runs.iloc[offset:None if limit is None else offset + limit].reset_index(drop=True)
        return runs, images

    def runs(self, where: Where = None, *, limit: int | None = None, offset: int = 0, **filters: Any) -> pd.DataFrame:
        """One row per run, oldest first, filtered by ``column=value(s)`` and ``where``.

        dtypes: ``*_at`` UTC datetimes; action/aspect_ratio/resolution/status/model/backend
        categories; counts and sizes Int64; flags boolean; cost_usd Float64; JSON columns
        as Python objects. Added: ``n_images``, ``paths`` (absolute), ``duration_s``
        (finished − submitted) and one column per sweep-cell key (e.g. ``style``) of the
        selected runs. ``limit``/``offset``: one page of the selection. Filters and
        simple ``where`` strings run as indexed SQL (see ``frames``).
        """
        return self.frames(where, limit=limit, offset=offset, **filters)[0]

    def count(self, where: Where = None, **filters: Any) -> int:
        """How many runs ``runs(where, **filters)`` would return, without reading them."""
        clause, rest, pwhere = self._selection(where, filters)
        if rest or pwhere is not None:
            return len(self.runs(where, **filters))
        with self._transaction(write=False) as conn:
            n = int(conn.execute(f"SELECT COUNT(*) FROM runs WHERE {clause.sql}", clause.params).fetchone()[0])
        if not n:
            self._check_keys(filters)
        return n

    def distinct(self, column: str, where: Where = None, *, newest_first: bool = False, **filters: Any) -> list[Any]:
        """The values ``column`` takes in the selected runs, each once, in order
        (documented vocabularies in the document's order, numbers ascending, text
        alphabetically; a missing value last; ``newest_first``: by their latest run).
        A sweep-cell key works as a column."""
        clause, rest, pwhere = self._selection(where, filters)
        col = schema.RUNS.get(column)
        if rest or pwhere is not None or column in schema.DERIVED_COLUMNS or (col is not None and col.is_json):
            df = self.runs(where, **filters)
            if column not in df.columns:
                raise ValueError(f"unknown column {column!r}{_did_you_mean(column, df.columns)}")
            found = {json.dumps(v, sort_keys=True, default=str) if isinstance(v, (list, dict)) else v: v
                     for v in (None if schema.is_missing(v) else v
                               for v in df[column].tolist()[::-1 if newest_first else 1])}
            values = list(found.values())
            if newest_first:
                return values
        else:
            try:
                target = column if col is not None else f"json_extract(runs.cell, '{query.cell_path(column)}')"
            except query.Untranslatable:
                raise ValueError(f"unknown column {column!r}") from None
            sql = (f"SELECT {target} FROM runs WHERE {clause.sql} GROUP BY 1 ORDER BY MAX(created_at) DESC"
                   if newest_first else f"SELECT DISTINCT {target} FROM runs WHERE {clause.sql}")
            with self._transaction(write=False) as conn:
                rows = conn.execute(sql, clause.params).fetchall()
            if col is None and not rows:
                self._check_keys({column: None})
            values = [_from_sql(col, r[0]) for r in rows]
            if newest_first:
                return values
        return _ordered(column, values)

    def cell_keys(self) -> list[str]:
        """The keys of sweep cells in the log (what ``runs()`` adds as columns), first seen first."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT j.key FROM runs, json_each(runs.cell) AS j WHERE runs.cell IS NOT NULL "
                                "GROUP BY j.key ORDER BY MIN(runs.created_at)").fetchall()
        return [r[0] for r in rows if r[0] not in schema.RUNS and r[0] not in schema.DERIVED_COLUMNS]

    def images(self, where: Where = None, **filters: Any) -> pd.DataFrame:
        """One row per image, with its run's parameters alongside (width/height are the image's)."""
        own = {k: v for k, v in filters.items() if k in schema.RUNS and (k == "run_id" or k not in schema.IMAGES)}
        runs, images = self.frames(**own)
        rest = {k: v for k, v in filters.items() if k not in own}
        order = {rid: i for i, rid in enumerate(runs["run_id"])}
        images = images[images["run_id"].isin(list(order))]
        # the image's own columns win (width/height are its real size, not the requested one)
        clash = [c for c in runs.columns if c in images.columns and c != "run_id"]
        params = runs.drop(columns=[*clash, "paths", "n_images"])
        merged = images.merge(params, on="run_id", how="left", sort=False)
        merged["_order"] = [order.get(r, len(order)) for r in merged["run_id"]]
        merged = merged.sort_values(["_order", "idx"], kind="stable").drop(columns="_order")
        return apply_filters(merged.reset_index(drop=True), where, **rest)

    # -- money -----------------------------------------------------------------------
    def spend(self) -> pd.DataFrame:
        """What the server billed, per sweep and in all: the figures to reconcile with
        the account.

        One row per sweep (runs outside a sweep under ``"(single runs)"``) and a last
        row ``"all"``. ``billed_*``: runs the server said completed, at the cost it
        reported, whether or not their images were downloaded (``images_lost`` counts
        those whose links expired first). ``unconfirmed_*``: runs with no answer yet (in
        flight, or the answer was lost), at their price: they may have been billed;
        running them again settles them (same Idempotency-Key, billed once). Quota is
        exact (500,000 = $1); ``*_usd`` are the same figures in dollars.
        """
        billed = ", ".join(f"'{s}'" for s in _states.BILLED)
        maybe = ", ".join(f"'{s}'" for s in _states.MAYBE_BILLED)
        sql = (
            "SELECT sweep_id, COUNT(*), "
            f"SUM(status IN ({billed})), "
            f"SUM(CASE WHEN status IN ({billed}) THEN COALESCE(cost_quota, est_quota, 0) ELSE 0 END), "
            f"SUM(status IN ({maybe})), "
            f"SUM(CASE WHEN status IN ({maybe}) THEN COALESCE(est_quota, 0) ELSE 0 END), "
            f"SUM(status = '{_states.IMAGES_LOST}') "
            "FROM runs GROUP BY sweep_id ORDER BY MIN(created_at)"
        )
        with self._transaction(write=False) as conn:
            rows = conn.execute(sql).fetchall()
        names = ["runs", "billed_runs", "billed_quota", "unconfirmed_runs", "unconfirmed_quota", "images_lost"]
        labels = [NO_SWEEP if r[0] is None else r[0] for r in rows]
        df = pd.DataFrame([[int(v or 0) for v in r[1:]] for r in rows], columns=names, index=labels, dtype="int64")
        df.loc[ALL] = df.sum() if len(df) else 0
        df.index.name = "sweep_id"
        df["billed_usd"] = df["billed_quota"].map(_spec.quota_to_usd).astype("float64")
        df["unconfirmed_usd"] = df["unconfirmed_quota"].map(_spec.quota_to_usd).astype("float64")
        return df[["runs", "billed_runs", "billed_quota", "billed_usd", "images_lost",
                   "unconfirmed_runs", "unconfirmed_quota", "unconfirmed_usd"]].astype(
            dict.fromkeys(names, "int64"))

    # -- views -----------------------------------------------------------------------
    def grid(self, rows: str, cols: str, where: Where = None, **filters: Any) -> Any:
        """Images of the selected runs laid out by two parameters (``Grid``)."""
        from ._report import build_grid

        return build_grid(self, rows, cols, where=where, **filters)

    def explore(self, **options: Any) -> Any:
        """A widget over this log: a grid of any two parameters, filters, a run's details (``LogExplorer``)."""
        from ._explore import LogExplorer

        return LogExplorer(self, **options)

    def compare(self, a: Any, b: Any) -> Any:
        """Two runs or two sweeps side by side, differing parameters highlighted."""
        from ._report import build_comparison

        return build_comparison(self, a, b)

    def export_html(self, path: str | Path, where: Where = None, title: str | None = None, **filters: Any) -> Path:
        """A self-contained HTML report (no server, thumbnails embedded, relative links)."""
        from ._report import export_report

        return export_report(self, path, where=where, title=title, **filters)

    # -- flat files ------------------------------------------------------------------
    def _flat(self, where: Where, filters: dict[str, Any]) -> pd.DataFrame:
        """runs() with list/dict cells as JSON text, so CSV and Parquet can hold them."""
        df = self.runs(where, **filters).copy()
        for name in df.columns:
            if df[name].dtype != object:
                continue
            values = df[name].tolist()
            if all(v is None or isinstance(v, str) for v in values):
                continue
            df[name] = pd.Series(
                [None if v is None else json.dumps(v, ensure_ascii=False, default=_json_default) for v in values],
                index=df.index,
                dtype=object,
            )
        return df

    def to_csv(self, path: str | Path, where: Where = None, **filters: Any) -> Path:
        """runs() as CSV (JSON columns as JSON text), written atomically."""
        df = self._flat(where, filters)
        return atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))

    def to_parquet(self, path: str | Path, where: Where = None, **filters: Any) -> Path:
        """runs() as Parquet (JSON columns as JSON text, dtypes kept), written atomically.

        Needs pyarrow: ``pip install 'wan_nb[parquet]'``."""
        try:
            import pyarrow  # noqa: F401  # pandas writes Parquet with it
        except ImportError as exc:
            raise ConfigError("to_parquet needs pyarrow, which is not installed: "
                              "pip install 'wan_nb[parquet]' (or pip install pyarrow)") from exc
        df = self._flat(where, filters)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())
