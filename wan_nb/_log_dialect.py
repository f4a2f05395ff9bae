"""The SQL that differs between the log's two engines, SQLite and PostgreSQL: one object each.

Everything else the log sends is common SQL written once, with ``?`` placeholders (the
PostgreSQL engine turns them into its own at its boundary), column names quoted
(``"user"`` is a reserved word in PostgreSQL: unquoted, ``SELECT user`` is the session's
user name) and ``TRUE``/``FALSE`` where a condition stands alone. ``_log_query`` writes its
``WHERE`` clauses through a dialect, so the rules that translate a filter are written once.

What differs, and why each choice keeps pandas' answer:

- sweep-cell keys: SQLite's ``json_extract`` returns SQL values (a JSON ``true`` is 1);
  PostgreSQL compares ``jsonb`` with ``jsonb`` (a parameter sent as JSON text), a JSON
  ``null`` taken as missing (NULL) as pandas takes it;
- list columns (tags, images_in, warnings) "contain": ``json_each`` / ``jsonb_array_elements``;
- plain text search (``str.contains(..., regex=False)``): a Python function registered on
  every SQLite connection / ``strpos`` over ``upper`` (pandas upper-cases both sides too).
  PostgreSQL's ``upper`` follows the database's LC_CTYPE (with 'C' it leaves é, ß alone),
  so it upper-cases under the ICU root collation ``"und-x-icu"``, whose full case mapping
  is Python's ``str.upper`` (é → É, ß → SS, ﬁ → FI) whatever the database was made with;
  a server built without ICU (``ICU_COLLATION``: None) falls back to plain ``upper``;
- full-text search: FTS5 (``runs_fts``, kept by triggers) / a generated ``tsvector``
  column with a GIN index, every word required (``plainto_tsquery``), ``ts_rank``;
- no limit: SQLite's ``LIMIT -1`` / PostgreSQL's ``LIMIT NULL``.
"""

from __future__ import annotations

import json
from typing import Any


def q(name: str) -> str:
    """A column name as SQL: always quoted (both engines read ``"user"`` as the column)."""
    return f'"{name}"'


def cols(names: Any, prefix: str = "") -> str:
    """Quoted column names joined for a SELECT or an INSERT (``prefix``: a table alias and a dot)."""
    return ", ".join(prefix + q(n) for n in names)


class Dialect:
    """SQLite's dialect; ``PostgresDialect`` below overrides what PostgreSQL says otherwise."""

    name = "sqlite"
    no_limit: Any = -1
    byte_order = ""  # text ordered by code point, as Python sorts it (SQLite's BINARY collation)

    # -- sweep-cell keys (the ``cell`` JSON) ---------------------------------------------
    def cell_value(self, key: str) -> str:
        """The SQL value of ``cell[key]`` (NULL when missing or JSON null); ``key`` is checked by the caller."""
        return f"json_extract(runs.cell, '$.\"{key}\"')"

    def cell_param(self, value: Any) -> Any:
        """A filter's value as ``cell_value`` compares it (``json_extract`` gives a JSON true as 1)."""
        return int(value) if isinstance(value, bool) else value

    def cell_marks(self, n: int) -> str:
        return ", ".join("?" for _ in range(n))

    def cell_key_exists(self, key: str) -> str:
        return f"json_type(runs.cell, '$.\"{key}\"') IS NOT NULL"

    def cell_keys(self) -> str:
        """Every key of every sweep cell, the first seen first."""
        return ("SELECT j.key FROM runs, json_each(runs.cell) AS j WHERE runs.cell IS NOT NULL "
                "GROUP BY j.key ORDER BY MIN(runs.created_at), j.key")

    # -- list columns ----------------------------------------------------------------------
    def list_contains(self, column: str, n: int) -> str:
        """Rows whose JSON list ``column`` holds one of ``n`` values (``?`` each)."""
        marks = ", ".join("?" for _ in range(n)) or "NULL"
        return f"EXISTS (SELECT 1 FROM json_each(runs.{q(column)}) AS e WHERE e.value IN ({marks}))"

    def list_param(self, value: Any) -> Any:
        return self.cell_param(value)

    # -- text ------------------------------------------------------------------------------
    def text_contains(self, column: str, case: bool) -> tuple[str, list[Any]]:
        """pandas' ``str.contains(needle, case=case, regex=False)`` on ``column``: SQL with one
        ``?`` for the needle, and the parameters after it."""
        return f"(wan_contains({q(column)}, ?, ?) = 1)", [int(case)]

    # -- full-text search ------------------------------------------------------------------
    def search_sql(self, where: str, limited: bool) -> str:
        """run_id and score (higher is better) of the runs matching the one ``?`` of the words,
        among those ``where`` selects, best first (``limited``: a last ``?`` for LIMIT)."""
        return ("SELECT runs.run_id, -runs_fts.rank FROM runs_fts JOIN runs ON runs.rowid = runs_fts.rowid "
                f"WHERE runs_fts MATCH ? AND ({where}) ORDER BY runs_fts.rank" + (" LIMIT ?" if limited else ""))

    def search_words(self, words: list[str]) -> str:
        return " ".join(f'"{w}"' for w in words)  # each word as itself: no query syntax


ICU_COLLATION = "und-x-icu"  # ICU's root locale: deterministic, the same on every server built with ICU


class PostgresDialect(Dialect):
    name = "postgresql"
    no_limit = None
    byte_order = ' COLLATE "C"'  # not the database's locale: the order Python and SQLite give

    def __init__(self, collation: str | None = ICU_COLLATION) -> None:
        self.collation = collation  # the case mapping of upper(): None, the database's LC_CTYPE

    def cell_value(self, key: str) -> str:
        return f"NULLIF(runs.cell::jsonb -> '{key}', 'null'::jsonb)"

    def cell_param(self, value: Any) -> Any:
        return json.dumps(value)

    def cell_marks(self, n: int) -> str:
        return ", ".join("?::jsonb" for _ in range(n))

    def cell_key_exists(self, key: str) -> str:
        return f"(runs.cell::jsonb -> '{key}') IS NOT NULL"

    def cell_keys(self) -> str:
        return ("SELECT j.key FROM runs, jsonb_each(runs.cell::jsonb) AS j WHERE runs.cell IS NOT NULL "
                "GROUP BY j.key ORDER BY MIN(runs.created_at), j.key")

    def list_contains(self, column: str, n: int) -> str:
        marks = ", ".join("?::jsonb" for _ in range(n)) or "NULL"
        return f"EXISTS (SELECT 1 FROM jsonb_array_elements(runs.{q(column)}::jsonb) AS e(v) WHERE e.v IN ({marks}))"

    def list_param(self, value: Any) -> Any:
        return json.dumps(value)

    def text_contains(self, column: str, case: bool) -> tuple[str, list[Any]]:
        if case:
            return f"(strpos({q(column)}, CAST(? AS TEXT)) > 0)", []
        by = f' COLLATE "{self.collation}"' if self.collation else ""
        return f"(strpos(upper({q(column)}{by}), upper(CAST(? AS TEXT){by})) > 0)", []

    def search_sql(self, where: str, limited: bool) -> str:
        return ("SELECT runs.run_id, ts_rank(runs.search, query) FROM runs, plainto_tsquery('simple', ?) AS query "
                f"WHERE runs.search @@ query AND ({where}) ORDER BY 2 DESC, runs.seq"
                + (" LIMIT ?" if limited else ""))

    def search_words(self, words: list[str]) -> str:
        return " ".join(words)  # plainto_tsquery: every word, operators are just text


SQLITE = Dialect()
POSTGRES = PostgresDialect()
POSTGRES_WITHOUT_ICU = PostgresDialect(None)
