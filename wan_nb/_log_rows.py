"""Reads of the log as plain dicts, without pandas: what the run pipeline needs.

Resuming a sweep, serving a cache hit, placing an input as a result link, following
lineage: each reads a few rows by an index. pandas is not needed for that (and is not
loaded by it: ``import wan_nb`` and a run stay quick).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _log_schema as schema
from ._log_dialect import cols, q
from ._log_engine import Engine
from ._log_paths import RunFolder
from ._log_values import from_sql
from ._store import StoredImage

RUN_SELECT = cols(c.name for c in schema.RUN_COLUMNS)  # the stored columns (PostgreSQL's runs has two more)


def decode_run(row: Mapping[str, Any]) -> dict[str, Any]:
    """A runs row (column -> stored value) as Python values."""
    return {k: from_sql(schema.RUNS.get(k), v) for k, v in row.items()}


def stored_images(run: dict[str, Any]) -> list[StoredImage]:
    """A logged run's images (``get_run``/``find_runs`` rows) as StoredImage objects; an
    image whose path was refused (outside the run folder) is left out."""
    return [StoredImage(**{k: im.get(k) for k in schema.IMAGE_FIELDS}) for im in run.get("images") or []
            if im.get("path") is not None]


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class LogRows:
    """Indexed reads of one log, as dicts (image paths absolute, inside the run folder)."""

    def __init__(self, engine: Engine, folder: RunFolder) -> None:
        self.engine = engine
        self.folder = folder

    def _decode_image(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: from_sql(schema.IMAGES.get(k), v) for k, v in row.items()}
        for key in ("path", "thumb_path"):
            if out.get(key) is not None:
                inside = self.folder.absolute(out[key])
                out[key] = None if inside is None else Path(inside)
        return out

    def select_runs(self, where_sql: str = "", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Runs (oldest first) with their ``images``, in one snapshot."""
        with self.engine.transaction(write=False) as conn:
            runs = [decode_run(r) for r in _dicts(conn.execute(
                f"SELECT {RUN_SELECT} FROM runs {where_sql} ORDER BY created_at, {self.engine.tiebreak}",
                list(params)))]
            ids = [r["run_id"] for r in runs]
            images: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                for r in _dicts(conn.execute(
                    f"SELECT * FROM images WHERE run_id IN ({', '.join('?' for _ in part)}) ORDER BY run_id, idx", part
                )):
                    images[r["run_id"]].append(self._decode_image(r))
        for run in runs:
            run["images"] = images[run["run_id"]]
        return runs

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run as a dict (JSON columns decoded, flags as bool) plus ``images`` (absolute paths)."""
        found = self.select_runs("WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def run_images(self, run_id: str) -> list[StoredImage]:
        """A run's images as StoredImage objects (e.g. to serve a cache hit)."""
        run = self.get_run(run_id)
        if run is None:
            raise KeyError(f"no run with run_id {run_id!r} in {self.engine.label}")
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
            clauses.append(f"{q(name)} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        return self.select_runs(("WHERE " + " AND ".join(clauses)) if clauses else "", params)

    def inputs(self, run_id: str) -> list[dict[str, Any]]:
        """How each input image of a run went out (``via``: url / link / upload), by ``idx``."""
        with self.engine.transaction(write=False) as conn:
            rows = _dicts(conn.execute("SELECT * FROM inputs WHERE run_id = ? ORDER BY idx", (run_id,)))
        return [{k: from_sql(schema.INPUTS.get(k), v) for k, v in row.items()} for row in rows]

    def result_link(self, sha256: str) -> tuple[str, float] | None:
        """(url, expires_at) of the result link that serves the image with this sha256
        and lives longest, expired or not; links without a known expiry are not trusted."""
        with self.engine.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT source_url, expires_at FROM images WHERE sha256 = ? AND source_url IS NOT NULL "
                "AND expires_at IS NOT NULL ORDER BY expires_at DESC LIMIT 1", (sha256,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def dead_links(self, urls: Iterable[str], now: float) -> set[str]:
        """Those of ``urls`` that the log knows ended before ``now`` (expired or refused)."""
        wanted = sorted(set(urls))
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        with self.engine.transaction(write=False) as conn:
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
        order = f"created_at, {self.engine.tiebreak}"
        with self.engine.transaction(write=False) as conn:
            runs = conn.execute(f"SELECT run_id, images_in FROM runs ORDER BY {order}").fetchall()
            images = conn.execute(
                "SELECT i.run_id, i.sha256, i.source_url FROM images i JOIN runs r ON r.run_id = i.run_id "
                f"ORDER BY COALESCE(r.cache_hit, 0), r.created_at, r.{self.engine.tiebreak}, i.idx"
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
