"""The log as pandas: ``runs``, ``images``, ``count``, ``distinct``, ``spend``, ``lineage``.

Filters and ``where`` strings run as SQL on the log's indexes (``_log_query``); what
SQL cannot say is evaluated with pandas on the rows SQL selected, so the answer is
the same either way. DataFrames get their documented dtypes from the column table
(``_log_schema``), set once per column.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

import numpy as np
import pandas as pd

from . import _log_query as query
from . import _log_schema as schema
from . import _spec, _states
from ._exceptions import Problem, RequestError
from ._log_dialect import q
from ._log_engine import Engine
from ._log_paths import RunFolder
from ._log_query import Clause
from ._log_rows import RUN_SELECT, LogRows
from ._log_values import from_sql
from ._options import is_whole
from ._text import did_you_mean
from ._values import is_missing

Where = str | Callable[[pd.DataFrame], Any] | None
NO_SWEEP = "(single runs)"  # spend(): the row of runs made outside any sweep
ALL = "all"  # spend(): the total row


# ----------------------------------------------------------------- DataFrame typing


Raw = dict[str, "np.ndarray[Any, Any]"]  # a table as read: column -> object array (what SQLite returned)


def _raw(cur: Any) -> Raw:
    """The cursor's rows as one object array per column: the values SQLite returned, with
    no per-row Python and no type inference (pandas would turn text into ``str``, then we
    would turn it back): each column gets its dtype once, in ``_typed_column``."""
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    columns = zip(*rows, strict=True) if rows else ((),) * len(names)
    out = {n: np.array(c, dtype=object) for n, c in zip(names, columns, strict=True)}
    del rows
    return out


def _sort(table: Raw, *keys: np.ndarray[Any, Any]) -> None:
    """Sort every column of ``table`` in place by ``keys`` (the first key first; stable)."""
    if len(keys[0]) < 2:
        return
    order = np.lexsort(keys[::-1])
    if (order[1:] > order[:-1]).all():  # already in order: the usual case
        return
    for name, values in table.items():
        table[name] = values[order]


# column kind -> (numpy dtype of the values, the nullable pandas array that holds them with a mask)
_MASKED: dict[str, tuple[type[Any], Any]] = {
    "int": (np.int64, pd.arrays.IntegerArray),
    "real": (np.float64, pd.arrays.FloatingArray),
    "bool": (np.bool_, pd.arrays.BooleanArray),
}


def _masked(values: np.ndarray[Any, Any], kind: str) -> Any:
    """Int64 / Float64 / boolean straight from the values and a mask of the missing ones."""
    np_dtype, array = _MASKED[kind]
    mask = np.asarray(pd.isna(values), dtype=bool)
    data = np.zeros(len(values), dtype=np_dtype)
    if not mask.all():
        data[~mask] = values[~mask].astype(np.float64 if kind == "real" else np.int64)
    return array(data, mask)


def _floats(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(pd.array(values, dtype="Float64").to_numpy(dtype="float64", na_value=np.nan))


def _json_values(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """JSON text decoded in bulk: one ``json.loads`` of all present values as one array
    (a C loop), not one call per row; None stays None."""
    out = np.full(len(values), None, dtype=object)
    present = ~pd.isna(values)
    if present.any():
        decoded = json.loads("[" + ",".join(values[present]) + "]")
        for i, v in zip(present.nonzero()[0], decoded, strict=True):
            out[i] = v
    return out


def _typed_column(col: schema.Column, values: np.ndarray[Any, Any]) -> Any:
    """One column with its documented dtype, vectorised (no Python call per row)."""
    kind = col.kind
    if kind == "time":  # one unit (ns) whether or not the column has values, so frames concat cleanly
        return pd.to_datetime(_floats(values), unit="s", utc=True).astype("datetime64[ns, UTC]")
    if kind in _MASKED:
        return _masked(values, kind)
    if kind == "category":
        seen = [v for v in pd.unique(values) if v is not None]
        order = schema.CATEGORY_ORDER.get(col.name, ())
        cats = pd.Index([c for c in order if c in seen] + sorted(v for v in seen if v not in order), dtype=object)
        codes = cats.get_indexer(pd.Index(values, dtype=object, copy=False))
        return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats))
    if col.is_json:
        return _json_values(values)
    return values  # text: object, None when missing


def _frame(columns: dict[str, Any], n: int) -> pd.DataFrame:
    """One DataFrame from typed columns; object arrays stay object (pandas 3 would infer its
    ``str`` dtype for text, turning None into NaN)."""
    return pd.DataFrame({k: pd.Series(v, dtype=object, copy=False) if isinstance(v, np.ndarray) and v.dtype == object
                         else v for k, v in columns.items()}, index=pd.RangeIndex(n))


def _objects(values: list[Any]) -> np.ndarray[Any, Any]:
    """Python objects (lists, dicts) as one object array, each element kept whole (numpy
    would broadcast a list of equal-length lists into a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _infer_array(values: list[Any]) -> Any:
    """dtype for a column made from sweep ``cell`` values: Int64 / Float64 / boolean / object."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.array(values, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.array(values, dtype="Float64")
    return _objects(values)


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
            if is_missing(x):
                return any(not isinstance(v, (list, dict)) and is_missing(v) for v in values)
            return any(not isinstance(v, (list, dict)) and x == v for v in values)

        return s.map(hit).astype(bool)
    present = [v for v in values if not is_missing(v)]
    mask = s.isin(present)
    if len(present) < len(values):
        mask = mask | s.isna()
    return mask.fillna(False).astype(bool)


def apply_filters(df: pd.DataFrame, where: Where = None, **filters: Any) -> pd.DataFrame:
    """``column=value`` / ``column=[values]`` filters, then ``where`` (query string or callable)."""
    for name, want in filters.items():
        if name not in df.columns:
            raise ValueError(
                f"unknown column {name!r} in filter{did_you_mean(name, df.columns)}; "
                f"columns are: {', '.join(map(str, df.columns))}"
            )
        df = df[_filter_mask(df[name], name, want)]
    if where is None:
        pass
    elif isinstance(where, str):
        expr = query.pandas_where(where)  # .str tests and list columns mean what they mean in SQL
        # rewritten (so without @variables of its own): @_wan_holds is the tags= filter's "contains"
        holds = {query.HOLDS: lambda s, value: _filter_mask(s, str(s.name), [value])} if expr != where else None
        try:
            df = df.query(expr, local_dict=holds)
        except Exception as exc:
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


def _has_missing(conn: Any, clause: Clause, target: str) -> bool:
    """Does a selected run lack ``target`` (distinct() lists that as None, last)?"""
    sql = f"SELECT 1 FROM runs WHERE ({clause.sql}) AND {target} IS NULL LIMIT 1"
    return conn.execute(sql, clause.params).fetchone() is not None


def _check_page(limit: Any, offset: Any) -> None:
    for name, value, least in (("limit", limit, 0), ("offset", offset, 0)):
        if value is None and name == "limit":
            continue
        if not is_whole(value, least):
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


# ----------------------------------------------------------------- the queries


class LogFrames:
    """DataFrame queries over one log."""

    def __init__(self, engine: Engine, folder: RunFolder, rows: LogRows) -> None:
        self.engine = engine
        self.folder = folder
        self.rows = rows

    def _read_tables(self, clause: Clause, limit: int | None = None, offset: int = 0,
                     sources: bool = False) -> tuple[Raw, Raw]:
        """The runs ``clause`` selects (oldest first, ``limit``/``offset`` applied) and their
        image rows (each run's in ``idx`` order), in one snapshot; ``sources``: also the images
        of the runs a cache hit among them was served from.

        Without a page, rows are read in storage order and sorted here: reading a big
        table in ``created_at`` order through its index costs a b-tree search per row."""
        tiebreak = self.engine.tiebreak
        page = "" if limit is None and not offset else " LIMIT ? OFFSET ?"
        page_params = [] if not page else [self.engine.dialect.no_limit if limit is None else int(limit), int(offset)]
        order = f" ORDER BY created_at, {tiebreak}{page}" if page else ""
        selected = f"SELECT {{}} FROM runs WHERE {clause.sql}{order}"
        with self.engine.transaction(write=False) as conn:
            runs = _raw(conn.execute(selected.format(f"{RUN_SELECT}, {tiebreak} AS _seq"),
                                     [*clause.params, *page_params]))
            if clause.sql == query.EVERY and not page:  # every run: every image
                images = _raw(conn.execute("SELECT * FROM images"))
            else:
                ids = f"SELECT run_id FROM ({selected.format('run_id, cached_from')}) AS page"
                params = [*clause.params, *page_params]
                if sources:
                    ids += f" UNION SELECT cached_from FROM ({selected.format('run_id, cached_from')}) AS sources"
                    params += params
                images = _raw(conn.execute(f"SELECT * FROM images WHERE run_id IN ({ids})", params))
        if not page:
            _sort(runs, _floats(runs["created_at"]), runs["_seq"].astype(np.int64))
        _sort(images, images["idx"].astype(np.int64))
        del runs["_seq"]
        return runs, images

    def _typed(self, raw_runs: Raw, raw_images: Raw) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, images) with documented dtypes and the derived columns, each DataFrame
        built once from its typed columns."""
        n_runs = len(raw_runs["run_id"])
        image_cols = {c.name: _typed_column(c, raw_images[c.name]) for c in schema.IMAGE_COLUMNS}
        for key in ("path", "thumb_path"):
            image_cols[key] = np.array(self.folder.absolute_many(raw_images[key].tolist()), dtype=object)
        images = _frame(image_cols, len(raw_images["run_id"]))

        cols: dict[str, Any] = {c.name: _typed_column(c, raw_runs[c.name]) for c in schema.RUN_COLUMNS}
        paths: dict[str, list[str]] = {}
        for rid, p in zip(image_cols["run_id"], image_cols["path"], strict=True):
            paths.setdefault(rid, []).append(p)
        run_ids = cols["run_id"]
        cols["n_images"] = pd.array([len(paths.get(r, ())) for r in run_ids], dtype="Int64")
        cols["paths"] = _objects([paths.get(r, []) for r in run_ids])
        cols["duration_s"] = pd.array((cols["finished_at"] - cols["submitted_at"]).total_seconds(), dtype="Float64")
        cols["tags"] = _objects([t if isinstance(t, list) else [] for t in cols["tags"]])  # untagged: []

        # each key of a sweep's `cell` as its own column (unless a real column has the name)
        cells = [c for c in cols["cell"] if c is not None]
        keys: dict[str, None] = {}
        for cell in cells:
            for k in cell:
                if k not in keys and k not in cols:
                    keys[k] = None
        for key in keys:
            cols[key] = _infer_array([c.get(key) if c is not None else None for c in cols["cell"]])
        return _frame(cols, n_runs), images

    def _selection(self, where: Where, filters: dict[str, Any]) -> tuple[Clause, dict[str, Any], Where]:
        """(the SQL of what translates, filters left for pandas, ``where`` left for pandas)."""
        filters = {("tags" if k == "tag" else k): v for k, v in filters.items()}  # tag="keeper": the same filter
        clause, rest = Clause(), {}
        for name, want in filters.items():
            try:
                clause = clause.also(query.filter_clause(name, want, self.engine.dialect))
            except query.Untranslatable:
                rest[name] = want
        if isinstance(where, str):
            with suppress(query.Untranslatable):
                clause, where = clause.also(query.where_clause(where, self.engine.dialect)), None
        return clause, rest, where

    def _check_keys(self, filters: dict[str, Any]) -> None:
        """A filter on a name that is no column and no sweep-cell key of any run: say so."""
        known = [*schema.RUNS, *schema.DERIVED_COLUMNS, "tag"]
        with self.engine.transaction(write=False) as conn:
            for name in filters:
                if name in known:
                    continue
                try:
                    exists = query.cell_key_exists_sql(name, self.engine.dialect)
                except query.Untranslatable:
                    continue
                if conn.execute(f"SELECT 1 FROM runs WHERE {exists.sql} LIMIT 1", exists.params).fetchone() is None:
                    raise ValueError(f"unknown column {name!r} in filter{did_you_mean(name, known)}; "
                                     f"columns are: {', '.join(known)} and the keys of sweep cells")

    def frames(self, where: Where = None, *, limit: int | None = None, offset: int = 0,
               **filters: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, images) of the selected runs (see ``Log.frames``)."""
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
        return self.frames(where, limit=limit, offset=offset, **filters)[0]

    def count(self, where: Where = None, **filters: Any) -> int:
        clause, rest, pwhere = self._selection(where, filters)
        if rest or pwhere is not None:
            return len(self.runs(where, **filters))
        with self.engine.transaction(write=False) as conn:
            n = int(conn.execute(f"SELECT COUNT(*) FROM runs WHERE {clause.sql}", clause.params).fetchone()[0])
        if not n:
            self._check_keys(filters)
        return n

    def _sorted_in_sql(self, column: str, clause: Clause, rest: dict[str, Any], pwhere: Where,
                       newest_first: bool) -> str | None:
        """The SQL that orders ``column`` as ``_ordered`` does (numbers ascending, text by code
        point), when SQL can: a plain column of text, numbers or times, every filter in SQL."""
        col = schema.RUNS.get(column)
        if (newest_first or rest or pwhere is not None or col is None or col.kind not in ("text", "int", "real", "time")
                or column in schema.CATEGORY_ORDER):
            return None
        return q(column) + (self.engine.dialect.byte_order if col.kind == "text" else "")

    def _target(self, column: str) -> str:
        """The SQL of ``column``: a run column, or a sweep-cell key read from the cell."""
        if column in schema.RUNS:
            return q(column)
        try:
            return self.engine.dialect.cell_value(query.cell_key(column))
        except query.Untranslatable:
            raise ValueError(f"unknown column {column!r}") from None

    @staticmethod
    def _walk(clause: Clause, target: str, order: str) -> tuple[str, list[Any]]:
        """The column's non-missing values in order, one index seek each (a loose index scan):
        a million runs with a hundred seeds give a hundred seeks, not a million index entries.
        SQL of ``walk(v)`` and its parameters; the caller pages it with LIMIT/OFFSET."""
        sql = (f"WITH RECURSIVE walk(v) AS ("
               f"SELECT * FROM (SELECT {order} AS v FROM runs WHERE ({clause.sql}) AND {target} IS NOT NULL "
               f"ORDER BY 1 LIMIT 1) AS first UNION ALL "
               f"SELECT (SELECT {order} FROM runs WHERE ({clause.sql}) AND {order} > walk.v ORDER BY 1 LIMIT 1) "
               f"FROM walk WHERE walk.v IS NOT NULL) ")
        return sql, [*clause.params, *clause.params]

    def _distinct_page(self, column: str, clause: Clause, limit: int | None, offset: int, order: str) -> list[Any]:
        """One page of ``distinct`` read in SQL: the column's index serves it (the explorer's axes)."""
        col = schema.RUNS[column]
        target = q(column)
        # one value before the page is read too (offset - 1): whether the values reach the page at all
        size = self.engine.dialect.no_limit if limit is None else int(limit) + (1 if offset else 0)
        walk, params = self._walk(clause, target, order)
        with self.engine.transaction(write=False) as conn:
            page = [r[0] for r in conn.execute(f"{walk}SELECT v FROM walk WHERE v IS NOT NULL LIMIT ? OFFSET ?",
                                               [*params, size, max(0, int(offset) - 1)]).fetchall()]
            reached = not offset or bool(page)
            if offset:
                page = page[1:]
            # a missing value comes last: on this page if the values end on it
            ends_here = reached and (limit is None or len(page) < limit)
            if ends_here and _has_missing(conn, clause, target):
                page.append(None)
        return [None if v is None else from_sql(col, v) for v in page]

    def count_distinct(self, column: str, where: Where = None, *, at_most: int | None = None,
                       **filters: Any) -> int:
        if at_most is not None and not is_whole(at_most, 0):
            raise ValueError(f"at_most: expected a whole number, 0 or more (got {at_most!r})")
        clause, rest, pwhere = self._selection(where, filters)
        col = schema.RUNS.get(column)
        if rest or pwhere is not None or column in schema.DERIVED_COLUMNS or (col is not None and col.is_json):
            n = len(self.distinct(column, where, **filters))
            return n if at_most is None else min(n, int(at_most) + 1)
        target = self._target(column)
        cap = "" if at_most is None else f" LIMIT {int(at_most) + 1}"
        order = self._sorted_in_sql(column, clause, rest, pwhere, False)
        with self.engine.transaction(write=False) as conn:
            if order is not None:  # counted along the index (see _walk), the missing value once
                walk, params = self._walk(clause, target, order)
                n = int(conn.execute(f"{walk}SELECT COUNT(*) FROM (SELECT v FROM walk WHERE v IS NOT NULL{cap}) "
                                     "AS found", params).fetchone()[0])
                n += _has_missing(conn, clause, target)
                n = n if at_most is None else min(n, int(at_most) + 1)
            else:
                n = int(conn.execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT {target} FROM runs WHERE {clause.sql}"
                                     f"{cap}) AS found", clause.params).fetchone()[0])
        if col is None and not n:
            self._check_keys({column: None})
        return n

    def distinct(self, column: str, where: Where = None, *, newest_first: bool = False, limit: int | None = None,
                 offset: int = 0, **filters: Any) -> list[Any]:
        _check_page(limit, offset)
        clause, rest, pwhere = self._selection(where, filters)
        paged = limit is not None or bool(offset)
        order = self._sorted_in_sql(column, clause, rest, pwhere, newest_first) if paged else None
        if order is not None:
            return self._distinct_page(column, clause, limit, offset, order)
        if paged:
            whole = self.distinct(column, where, newest_first=newest_first, **filters)
            return whole[offset:None if limit is None else offset + limit]
        col = schema.RUNS.get(column)
        if rest or pwhere is not None or column in schema.DERIVED_COLUMNS or (col is not None and col.is_json):
            df = self.runs(where, **filters)
            if column not in df.columns:
                raise ValueError(f"unknown column {column!r}{did_you_mean(column, df.columns)}")
            found = {json.dumps(v, sort_keys=True, default=str) if isinstance(v, (list, dict)) else v: v
                     for v in (None if is_missing(v) else v
                               for v in df[column].tolist()[::-1 if newest_first else 1])}
            values = list(found.values())
        else:
            target = self._target(column)
            sql = (f"SELECT {target} FROM runs WHERE {clause.sql} GROUP BY 1 ORDER BY MAX(created_at) DESC"
                   if newest_first else f"SELECT DISTINCT {target} FROM runs WHERE {clause.sql}")
            with self.engine.transaction(write=False) as conn:
                rows = conn.execute(sql, clause.params).fetchall()
            if col is None and not rows:
                self._check_keys({column: None})
            values = [from_sql(col, r[0]) for r in rows]
        return values if newest_first else _ordered(column, values)

    def cell_keys(self) -> list[str]:
        with self.engine.transaction(write=False) as conn:
            rows = conn.execute(self.engine.dialect.cell_keys()).fetchall()
        return [r[0] for r in rows if r[0] not in schema.RUNS and r[0] not in schema.DERIVED_COLUMNS]

    def images(self, where: Where = None, **filters: Any) -> pd.DataFrame:
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

    def search(self, text: str, *, limit: int | None = 20, where: Where = None, **filters: Any) -> pd.DataFrame:
        """Runs whose prompt, note or tags hold every word of ``text`` (the full-text index),
        best match first; ``score`` says how well (higher is better)."""
        if not isinstance(text, str) or not re.findall(r"\w+", text):
            raise RequestError([Problem("text", "words", f"give one or more words to search for (got {text!r})")])
        _check_page(limit, 0)
        dialect = self.engine.dialect
        match = dialect.search_words(re.findall(r"\w+", text))  # each word as itself: no query syntax
        clause, rest, pwhere = self._selection(where, filters)
        exact = not rest and pwhere is None
        sql = dialect.search_sql(clause.sql, exact and limit is not None)
        params = [match, *clause.params, *([limit] if exact and limit is not None else [])]
        with self.engine.transaction(write=False) as conn:
            found = conn.execute(sql, params).fetchall()
        score = {run_id: float(s) for run_id, s in found}
        df = self.runs(run_id=list(score)) if score else self.runs(run_id=[])
        if not exact:
            df = apply_filters(df, pwhere, **rest)
        df["score"] = pd.Series([score[r] for r in df["run_id"]], index=df.index, dtype="Float64")
        df = df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        return df if limit is None else df.head(limit)

    def spend(self) -> pd.DataFrame:
        billed = ", ".join(f"'{s}'" for s in _states.BILLED)
        maybe = ", ".join(f"'{s}'" for s in _states.MAYBE_BILLED)
        sql = (
            "SELECT sweep_id, COUNT(*), "
            f"SUM(CASE WHEN status IN ({billed}) THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN status IN ({billed}) THEN COALESCE(cost_quota, est_quota, 0) ELSE 0 END), "
            f"SUM(CASE WHEN status IN ({maybe}) THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN status IN ({maybe}) THEN COALESCE(est_quota, 0) ELSE 0 END), "
            f"SUM(CASE WHEN status = '{_states.IMAGES_LOST}' THEN 1 ELSE 0 END) "
            "FROM runs GROUP BY sweep_id ORDER BY MIN(created_at)"
        )
        with self.engine.transaction(write=False) as conn:
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

    def lineage(self, run: Any) -> pd.DataFrame:
        run_id = run if isinstance(run, str) else getattr(run, "run_id", None)
        if not isinstance(run_id, str):
            raise TypeError(f"lineage: expected a run id or an object with .run_id, got {run!r}")
        parents = self.rows.made_from()
        if run_id not in parents:
            raise KeyError(f"lineage: no run {run_id!r} in {self.engine.label}")
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
