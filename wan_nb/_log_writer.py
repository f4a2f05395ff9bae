"""Every write to the log: runs claimed, moved through their states, imported.

The run pipeline writes through ``claim_run`` (one row per idempotency key: two
processes running the same cell share one row and so one bill) and ``transition``
(the moves of ``_states``, guarded in SQL; the final state, its cost and its images
in one transaction), on the writer's own thread (``submit``) so that async code never
waits on the database's lock in the event loop. Every value is checked before a
transaction starts (``_log_values``), so a refused write changes nothing.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from . import _log_schema as schema
from . import _states
from ._exceptions import Problem, RequestError
from ._log_dialect import q
from ._log_engine import Engine
from ._log_paths import RunFolder
from ._log_rows import RUN_SELECT, decode_run
from ._log_values import check_known, row_to_sql, to_sql
from ._values import is_missing

T = TypeVar("T")
_IMAGE_COLS = ("run_id", "idx", *schema.IMAGE_FIELDS)


def _insert(table: str, names: Iterable[str], suffix: str = "") -> str:
    names = list(names)
    return f"INSERT INTO {table} ({', '.join(q(n) for n in names)}) VALUES ({', '.join('?' for _ in names)}){suffix}"


class LogWriter:
    """The package's write access to one log (``Log`` is the user's read access)."""

    def __init__(self, engine: Engine, folder: RunFolder) -> None:
        self.engine = engine
        self.folder = folder
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- the writer thread -------------------------------------------------------------
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on this log's one writer thread and return its future.

        Why: the database waits up to its busy timeout for a lock another process
        holds; async code must not wait in the event loop. One thread keeps writes in
        order (a progress write is never committed after the final one).
        """
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wan_nb-log")
            return self._pool.submit(fn, *args, **kwargs)

    # -- runs ----------------------------------------------------------------------------
    def add_run(self, run: Mapping[str, Any], images: Iterable[Any] | None = None) -> None:
        """Insert one run (keys = column names), with its ``images``, in one transaction.
        ``created_at`` defaults to now."""
        if not isinstance(run, Mapping):
            raise TypeError(f"add_run expects a dict of column values, got {type(run).__name__}")
        run_id = run.get("run_id")
        check_known(run, schema.RUNS, "run")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id: required, a non-empty string (got {run_id!r})")
        values = row_to_sql(schema.RUNS, run)
        if values.get("created_at") is None:
            values["created_at"] = time.time()
        rows = None if images is None else [self.image_row(run_id, i, im) for i, im in enumerate(images)]
        try:
            with self.engine.transaction(write=True) as conn:
                conn.execute(_insert("runs", values), list(values.values()))
                if rows is not None:
                    self._put_images(conn, run_id, rows)
        except self.engine.integrity_error as exc:
            if "idempotency_key" in str(exc):
                raise ValueError(f"idempotency_key {values.get('idempotency_key')!r} is already held by another "
                                 f"run in the log ({self.engine.label}); one run per key") from exc
            raise ValueError(f"run_id {run_id!r} is already in the log ({self.engine.label})") from exc

    def add_runs(self, runs: Iterable[Mapping[str, Any]], images: Mapping[str, Iterable[Any]] | None = None) -> int:
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
            check_known(run, schema.RUNS, "run")
            if not isinstance(run.get("run_id"), str) or not run.get("run_id"):
                raise ValueError(f"runs[{i}].run_id: required, a non-empty string (got {run.get('run_id')!r})")
            row = [to_sql(schema.RUNS[c], run[c]) if c in run else None for c in cols]
            if row[created] is None:
                row[created] = now
            values.append(row)
        image_rows = [self.image_row(rid, i, im) for rid, ims in (images or {}).items() for i, im in enumerate(ims)]
        try:
            with self.engine.transaction(write=True) as conn:
                conn.executemany(_insert("runs", cols), values)
                conn.executemany(_insert("images", _IMAGE_COLS), [[r.get(c) for c in _IMAGE_COLS] for r in image_rows])
        except self.engine.integrity_error as exc:
            raise ValueError(f"add_runs: {exc} ({self.engine.label}); nothing was written") from exc
        return len(values)

    def update_run(self, run_id: str, **cols: Any) -> None:
        """Change some columns of one run (one transaction), around the state machine:
        for imports and repairs, never for the run pipeline. Unknown run → KeyError."""
        if "run_id" in cols:
            raise ValueError("run_id: cannot be changed by update_run")
        values = row_to_sql(schema.RUNS, cols)
        with self.engine.transaction(write=True) as conn:
            if values:
                sets = ", ".join(f"{q(c)} = ?" for c in values)
                cur = conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*values.values(), run_id])
                found = cur.rowcount > 0
            else:
                found = conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None
            if not found:
                raise KeyError(f"no run with run_id {run_id!r} in {self.engine.label}")

    def claim_run(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Insert ``run`` unless a run already holds its ``idempotency_key``; return the
        row that holds the key (``run`` as written, or the other one).

        The key is the claim on one server task: two processes sweeping the same cells
        end up writing one row, so the task is counted once.
        """
        key = run.get("idempotency_key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"idempotency_key: claim_run needs one (got {key!r})")
        values = row_to_sql(schema.RUNS, run)
        if values.get("created_at") is None:
            values["created_at"] = time.time()
        with self.engine.transaction(write=True) as conn:
            conn.execute(_insert("runs", values, " ON CONFLICT (idempotency_key) DO NOTHING"),
                         list(values.values()))
            cur = conn.execute(f"SELECT {RUN_SELECT} FROM runs WHERE idempotency_key = ?", (key,))
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
        return decode_run(dict(zip(names, row, strict=True)))

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
        values = row_to_sql(schema.RUNS, {**cols, "status": status})
        rows = None if images is None else [self.image_row(run_id, i, im) for i, im in enumerate(images)]
        allowed = _states.sources(status)
        sets = ", ".join(f"{q(c)} = ?" for c in values)
        marks = ", ".join("?" for _ in allowed)
        with self.engine.transaction(write=True) as conn:
            cur = conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ? AND (status IN ({marks}) OR status IS NULL)",
                               [*values.values(), run_id, *allowed])
            if cur.rowcount == 0:
                found = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                return None if found is None else str(found[0])
            if rows is not None:
                self._put_images(conn, run_id, rows)
        return status

    # -- images and inputs -------------------------------------------------------------
    def image_row(self, run_id: str, idx: int, image: Any) -> dict[str, Any]:
        """One image (a StoredImage or a dict) as its checked row, path relative to the run folder."""
        if isinstance(image, Mapping):
            data = dict(image)
            check_known(data, dict.fromkeys(("idx", *schema.IMAGE_FIELDS), 1), "image")
        elif all(hasattr(image, f) for f in ("path", "sha256")):  # StoredImage or alike
            data = {f: getattr(image, f, None) for f in schema.IMAGE_FIELDS}
        else:
            raise TypeError(f"images[{idx}]: expected a StoredImage or a dict, got {type(image).__name__}")
        data.setdefault("idx", idx)
        if is_missing(data.get("path")) or not str(data.get("path")):
            raise ValueError(f"images[{idx}].path: required")
        for key in ("path", "thumb_path"):
            if not is_missing(data.get(key)):
                data[key] = self.folder.relative(data[key])
                if not self.folder.contains(data[key]):
                    raise ValueError(f"images[{idx}].{key}: {data[key]!r} is outside the run folder "
                                     f"{self.folder.root}")
        row = {"run_id": run_id}
        for name, value in data.items():
            try:
                row[name] = to_sql(schema.IMAGES[name], value)
            except ValueError as exc:
                raise ValueError(f"images[{idx}].{exc}") from None
        return row

    def _put_images(self, conn: Any, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace a run's image rows (inside the caller's transaction)."""
        conn.execute("DELETE FROM images WHERE run_id = ?", (run_id,))
        try:
            conn.executemany(_insert("images", _IMAGE_COLS), [[r.get(c) for c in _IMAGE_COLS] for r in rows])
        except self.engine.integrity_error as exc:
            raise ValueError(f"images of run {run_id!r}: two images share one idx ({exc})") from exc

    def add_images(self, run_id: str, images: Iterable[Any]) -> None:
        """Record a run's images (StoredImage or dicts), replacing any it had, in one transaction."""
        rows = [self.image_row(run_id, i, im) for i, im in enumerate(images)]
        with self.engine.transaction(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run with run_id {run_id!r} in {self.engine.label}; add_run first")
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
                rows.append([to_sql(schema.INPUTS[k], v) for k, v in row.items()])
            except ValueError as exc:
                raise ValueError(f"inputs[{idx}].{exc}") from None
        cols = [c.name for c in schema.INPUT_COLUMNS]
        with self.engine.transaction(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run with run_id {run_id!r} in {self.engine.label}; add_run first")
            conn.execute("DELETE FROM inputs WHERE run_id = ?", (run_id,))
            conn.executemany(_insert("inputs", cols), rows)

    # -- choosing (values checked by ``_curation`` before they get here) -------------------
    def _one_run(self, conn: Any, run_id: str, cols: str) -> tuple[Any, ...]:
        row = conn.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RequestError([Problem("run", "unknown", f"no run with run_id {run_id!r} in {self.engine.label}")])
        return tuple(row)

    def rate(self, run_id: str, stars: int | None, by: str) -> None:
        """Set (or clear) a run's stars; the last rating wins."""
        with self.engine.transaction(write=True) as conn:
            self._one_run(conn, run_id, "run_id")
            conn.execute("UPDATE runs SET stars = ?, rated_by = ? WHERE run_id = ?",
                         (stars, None if stars is None else by, run_id))

    def retag(self, run_id: str, add: list[str], remove: list[str]) -> list[str]:
        """Add and remove tags in one transaction (read, change, write under the write lock:
        two processes tagging the same run at once lose nothing); returns the run's tags."""
        with self.engine.transaction(write=True) as conn:
            (stored,) = self._one_run(conn, run_id, "tags")
            tags = [t for t in (json.loads(stored) if stored else []) if t not in remove]
            tags += [t for t in add if t not in tags]
            conn.execute("UPDATE runs SET tags = ? WHERE run_id = ?",
                         (to_sql(schema.RUNS["tags"], tags), run_id))
        return tags

    def set_note(self, run_id: str, note: str | None) -> None:
        with self.engine.transaction(write=True) as conn:
            self._one_run(conn, run_id, "run_id")
            conn.execute("UPDATE runs SET note = ? WHERE run_id = ?", (note, run_id))

    def mark_link_dead(self, url: str, when: float) -> None:
        """The server refused ``url`` as expired (evicted before its announced end): it
        ended by ``when``, whatever expiry was recorded, so no later run sends it again."""
        with self.engine.transaction(write=True) as conn:
            conn.execute("UPDATE images SET expires_at = ? WHERE source_url = ? AND (expires_at IS NULL "
                         "OR expires_at > ?)", (when, url, when))
            conn.execute("UPDATE inputs SET expires_at = ? WHERE url = ? AND via = 'link' AND (expires_at IS NULL "
                         "OR expires_at > ?)", (when, url, when))
