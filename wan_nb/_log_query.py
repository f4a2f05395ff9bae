"""``runs(where=..., **filters)`` as SQL: a query touches only the rows it selects.

A log grows to 100,000 runs; reading it whole into pandas to keep a few rows takes
seconds. So filters and the common ``where`` strings become one indexed SQL
``WHERE`` clause, and the DataFrame is built from the rows it returns.

What translates: ``column=value`` / ``column=[values]`` on the log's columns (lists
such as ``tags`` mean "contains"; a sweep-cell key such as ``style`` reads the
``cell`` JSON), and ``where`` strings made of comparisons of columns with literals
(``== != < <= > >=``, ``in``, ``not in``) joined by ``and`` / ``or`` / ``not`` (or
``& | ~``), ``'keeper' in tags`` (a list column holds the value) and
``note.str.contains('best')`` (plain text; a pattern with no regex metacharacter is
plain text whatever ``regex`` says). Missing values compare as pandas compares them on
each column's dtype (``!=`` is true for a missing text, unknown for a missing number);
a missing text contains nothing. Anything else (a callable, ``@variables``, methods,
derived columns like ``n_images``) raises Untranslatable here, and the log evaluates it
with pandas on the rows the filters selected (``pandas_where``: the same meaning for
``.str`` tests and list columns), so the answer is the same either way, only slower.
A whole list column compared (``tags == ['a']``) is a ValueError on either path.

One translator, two dialects: what SQLite and PostgreSQL say differently (sweep-cell
JSON, list columns, plain text search) is asked of the engine's ``_log_dialect.Dialect``;
column names are quoted (``"user"``), a condition that stands alone is TRUE or FALSE.
"""

from __future__ import annotations

import ast
import datetime as _dt
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import _log_schema as schema
from ._log_dialect import SQLITE, Dialect, q

# Columns a where string may compare in SQL: scalar columns, not JSON ones.
_SCALAR = {c.name: c for c in schema.RUN_COLUMNS if not c.is_json}
# dtypes whose comparisons pandas makes definite (False / True for ``!=``) on a missing value;
# the nullable ones (Int64, Float64, boolean) give NA, which SQL's NULL already behaves as.
_DEFINITE = ("text", "category", "time")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]*$")  # a cell key that can be named in a JSON path
EVERY = "TRUE"  # the clause of every row
NOTHING = "FALSE"
_OPS = {ast.Eq: "=", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_REGEX = re.compile(r"[.^$*+?{}\[\]\\|()]")  # a pattern without these matches itself, as plain text
_STR_TESTS = ("contains", "startswith", "endswith")  # .str tests: a missing text matches none of them
HOLDS = "_wan_holds"  # the function pandas_where's ``'x' in tags`` calls: the caller provides it


class Untranslatable(Exception):
    """This expression has no SQL form here: evaluate it with pandas instead."""


@dataclass
class Clause:
    """A SQL condition over ``runs`` with its parameters (``EVERY``: every row)."""

    sql: str = "TRUE"
    params: list[Any] = field(default_factory=list)

    def also(self, other: Clause) -> Clause:
        if other.sql == EVERY:
            return self
        if self.sql == EVERY:
            return other
        return Clause(f"({self.sql}) AND ({other.sql})", self.params + other.params)


# ----------------------------------------------------------------- column=value filters


def _values(want: Any) -> list[Any]:
    if isinstance(want, (str, bytes, dict)) or not isinstance(want, Iterable):
        return [want]
    return list(want)


def _sql_scalar(col: schema.Column | None, value: Any) -> Any:
    """A filter value as the log stores it in ``col`` (None: a cell key, booleans kept); Untranslatable if
    it is not a scalar, or not of the column's kind (pandas never matches text with a number)."""
    if isinstance(value, (list, tuple, dict, set, bytes)):
        raise Untranslatable(f"{value!r} is not a single value")
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    kind = col.kind if col is not None else None
    if kind == "time":
        if isinstance(value, str):
            value = _timestamp(value)
        if isinstance(value, (_dt.datetime, pd.Timestamp)):
            return _seconds(value)
    if not isinstance(value, (str, int, float)):
        raise Untranslatable(f"{type(value).__name__} values are compared in pandas")
    if col is not None and isinstance(value, str) != (col.kind in ("text", "category")):
        raise Untranslatable(f"{value!r} is not a value of the {col.kind} column {col.name}")
    if isinstance(value, bool):
        return value if col is None else int(value)
    return value


def _timestamp(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise Untranslatable(f"{text!r} is not a date") from exc


def _seconds(value: _dt.datetime | pd.Timestamp) -> float:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")  # a date without a zone means UTC, as the log's times are
    return float(ts.timestamp())


def cell_key(name: str) -> str:
    """A sweep-cell key that can be named inside SQL text (letters, digits, ``_ .-``, spaces)."""
    if not _KEY.match(name):
        raise Untranslatable(f"cell key {name!r}")
    return name


def filter_clause(name: str, want: Any, dialect: Dialect = SQLITE) -> Clause:
    """``name=want`` as SQL, with the meaning ``apply_filters`` gives it."""
    values = _values(want)
    # text with a NUL character is never stored (the log refuses it): such a value matches
    # nothing, on either engine (PostgreSQL would refuse the parameter itself)
    wanted = [v for v in values if not (isinstance(v, str) and "\x00" in v)]
    if name in schema.CONTAINS_FILTER:  # a list column: rows whose list contains one of the values
        scalars = [dialect.list_param(_sql_scalar(None, v)) for v in wanted]
        return Clause(dialect.list_contains(name, len(scalars)), scalars) if scalars else Clause(NOTHING)
    col = _SCALAR.get(name)
    if col is not None:
        target = q(name)
    elif name in schema.RUNS or name in ("n_images", "paths", "duration_s"):
        raise Untranslatable(f"{name} is filtered in pandas")
    else:
        target = dialect.cell_value(cell_key(name))
    present = [_sql_scalar(col, v) for v in wanted if not schema.is_missing(v)]
    marks = ", ".join("?" for _ in present)
    if col is None:
        present, marks = [dialect.cell_param(v) for v in present], dialect.cell_marks(len(present))
    parts = []
    if present:  # "AND ... IS NOT NULL": definite (never NULL), so NOT(...) means "not one of these"
        parts.append(f"({target} IN ({marks}) AND {target} IS NOT NULL)")
    if any(schema.is_missing(v) for v in values):
        parts.append(f"{target} IS NULL")
    return Clause("(" + " OR ".join(parts) + ")" if parts else NOTHING, present)


def cell_key_exists_sql(name: str, dialect: Dialect = SQLITE) -> Clause:
    """Does any run's sweep cell have the key ``name``? (an unknown filter name is an error)."""
    return Clause(dialect.cell_key_exists(cell_key(name)))


def where_clause(where: str, dialect: Dialect = SQLITE) -> Clause:
    """A pandas query string as SQL; Untranslatable when it uses anything but the
    comparisons, literals and boolean operators described in the module docstring."""
    try:
        tree = ast.parse(where.strip(), mode="eval")
    except SyntaxError as exc:  # @variables, backticks: pandas reads those
        raise Untranslatable(str(exc)) from exc
    return _bool(tree.body, dialect)


def _bool(node: ast.AST, d: Dialect) -> Clause:
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        parts = [_bool(v, d) for v in node.values]
        return Clause("(" + joiner.join(p.sql for p in parts) + ")", [x for p in parts for x in p.params])
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        left, right = _bool(node.left, d), _bool(node.right, d)
        joiner = " AND " if isinstance(node.op, ast.BitAnd) else " OR "
        return Clause(f"({left.sql}{joiner}{right.sql})", left.params + right.params)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        inner = _bool(node.operand, d)
        return Clause(f"(NOT {inner.sql})", inner.params)
    if isinstance(node, ast.Compare):
        parts = []
        lhs = node.left
        for op, rhs in zip(node.ops, node.comparators, strict=True):  # a < b < c: a < b and b < c
            parts.append(_compare(lhs, op, rhs, d))
            lhs = rhs
        return Clause("(" + " AND ".join(p.sql for p in parts) + ")", [x for p in parts for x in p.params])
    if isinstance(node, ast.Name) and node.id in _SCALAR and _SCALAR[node.id].kind == "bool":
        return Clause(f"({q(node.id)} = 1)")  # `watermark`: the rows where it is true
    if isinstance(node, ast.Call):
        return _contains(node, d)
    raise Untranslatable(ast.dump(node))


def _contains(node: ast.Call, d: Dialect) -> Clause:
    """``prompt.str.contains('fox', case=False, regex=False)``: plain text search, as pandas
    does it (the dialect's: a function registered on SQLite connections, ``strpos`` in PostgreSQL).
    A pattern with no regex metacharacter is that text, so ``regex=True`` (pandas' default) is
    plain text too (with ``case=False``, for a pattern in ASCII: Unicode case folding differs
    between the two); a missing text contains nothing (``na=False``: what pandas_where asks of pandas)."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "contains" and isinstance(func.value, ast.Attribute)
            and func.value.attr == "str" and _column(func.value.value) is not None and len(node.args) == 1):
        raise Untranslatable(ast.dump(node))
    col = _column(func.value.value)
    assert col is not None
    options = {k.arg: _literal(k.value) for k in node.keywords}
    needle = _literal(node.args[0])
    case = options.get("case", True)
    plain = isinstance(needle, str) and (options.get("regex", True) is False or (
        not _REGEX.search(needle) and (case is True or needle.isascii())))
    if col.kind not in ("text", "category") or not plain or set(options) - {"case", "regex", "na"} \
            or options.get("na", False) is not False:
        raise Untranslatable("only plain-text contains on a text column")
    sql, more = d.text_contains(col.name, bool(case))
    return Clause(f"COALESCE({sql}, FALSE)", [needle, *more])


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise Untranslatable(ast.dump(node)) from exc


def _column(node: ast.AST) -> schema.Column | None:
    return _SCALAR.get(node.id) if isinstance(node, ast.Name) else None


def _list_column(node: ast.AST) -> str | None:
    """The list column (tags, images_in, warnings) ``node`` names, or None."""
    return node.id if isinstance(node, ast.Name) and node.id in schema.CONTAINS_FILTER else None


def _holds(left: ast.AST, op: ast.cmpop, right: ast.AST) -> tuple[str, bool] | None:
    """``'keeper' in tags`` / ``not in``: (the list column, negated); None when no list column is
    compared; a ValueError for any other comparison of one (it would select nothing, or fail, in pandas)."""
    name = _list_column(right)
    if name is not None and isinstance(op, (ast.In, ast.NotIn)) and _list_column(left) is None:
        with suppress(Untranslatable):
            if isinstance(_literal(left), (str, int, float)):
                return name, isinstance(op, ast.NotIn)
    name = name or _list_column(left)
    if name is None:
        return None
    raise ValueError(f"where: {name} is a list; ask whether it holds a value with 'x' in {name} "
                     f"(or 'x' not in {name}; {name}.str.len() > 0: any at all); a whole list is not compared "
                     "with == != < > or in")


def _compare(left: ast.AST, op: ast.cmpop, right: ast.AST, d: Dialect) -> Clause:
    holds = _holds(left, op, right)
    if holds is not None:  # 'keeper' in tags: the list holds it (the meaning of the tags= filter)
        inner = filter_clause(holds[0], [_literal(left)], d)
        return Clause(f"(NOT {inner.sql})", inner.params) if holds[1] else inner
    lcol, rcol = _column(left), _column(right)
    if lcol is None and rcol is not None and type(op) in _OPS:  # 5 < seed: seed > 5
        flipped = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}
        return _compare(right, flipped.get(type(op), op), left, d)
    if lcol is None:
        raise Untranslatable(ast.dump(left))
    if rcol is not None:  # column against column
        if type(op) not in _OPS:
            raise Untranslatable("in between columns")
        if (lcol.kind in ("text", "category")) != (rcol.kind in ("text", "category")):
            raise Untranslatable("text compared with a number")
        sql = f"{q(lcol.name)} {_OPS[type(op)]} {q(rcol.name)}"
        if lcol.kind in _DEFINITE or rcol.kind in _DEFINITE:
            sql = f"COALESCE({sql}, {'TRUE' if isinstance(op, ast.NotEq) else 'FALSE'})"
        return Clause(f"({sql})")
    value = _literal(right)
    name = lcol.name
    if isinstance(value, (list, tuple, set)) or isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(value, (list, tuple, set)):
            raise Untranslatable("in needs a list")
        values = list(value)
        negate = isinstance(op, (ast.NotIn, ast.NotEq))
        if not isinstance(op, (ast.In, ast.NotIn, ast.Eq, ast.NotEq)):
            raise Untranslatable("ordering against a list")
        inner = filter_clause(name, values, d)  # isin: definite for every dtype
        return Clause(f"(NOT {inner.sql})", inner.params) if negate else inner
    if type(op) not in _OPS:
        raise Untranslatable(ast.dump(op))
    if schema.is_missing(value):
        raise Untranslatable("comparison with a missing value")
    param = _sql_scalar(lcol, value)
    if isinstance(param, str) and lcol.kind in ("int", "real", "bool", "time"):
        raise Untranslatable("text compared with a number")
    if isinstance(param, (int, float)) and lcol.kind in ("text", "category"):
        raise Untranslatable("a number compared with text")
    sql = f"{q(name)} {_OPS[type(op)]} ?"
    if lcol.kind in _DEFINITE:  # definite on a missing value, written so that the index still serves it
        sql = f"{sql} OR {q(name)} IS NULL" if isinstance(op, ast.NotEq) else f"{sql} AND {q(name)} IS NOT NULL"
    return Clause(f"({sql})", [param])


class _PandasMeaning(ast.NodeTransformer):
    """The rewrite ``pandas_where`` makes: ``na=False`` on ``.str`` tests, ``@HOLDS`` for list columns."""

    changed = False

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in _STR_TESTS and isinstance(func.value, ast.Attribute)
                and func.value.attr == "str" and not any(k.arg == "na" for k in node.keywords)):
            node.keywords.append(ast.keyword(arg="na", value=ast.Constant(False)))
            self.changed = True
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        operands = [node.left, *node.comparators]
        found = [_holds(a, op, b) for a, op, b in zip(operands, node.ops, operands[1:], strict=False)]
        if not any(found):
            return node
        if len(node.ops) > 1:
            raise ValueError("where: ask whether a list holds a value on its own ('x' in tags), not in a chain")
        hit = found[0]
        assert hit is not None  # one comparison, and it is a list test
        name, negated = hit
        self.changed = True
        call = ast.Call(func=ast.Name(id=f"@{HOLDS}"), args=[ast.Name(id=name), node.left], keywords=[])
        return ast.UnaryOp(op=ast.Invert(), operand=call) if negated else call


def pandas_where(where: str) -> str:
    """``where`` for pandas with the meaning its SQL translation has: a ``.str`` test
    (contains, startswith, endswith) counts a missing text as no match (``na=False``, as
    SQL does; pandas fails on the missing values otherwise), and ``'x' in tags`` calls
    ``@_wan_holds(tags, 'x')`` (the caller gives pandas ``HOLDS``: the ``tags=`` filter's
    meaning). A whole list compared is a ValueError. A string Python cannot read
    (``@variables``, backticks) is returned as it is."""
    try:
        tree = ast.parse(where.strip(), mode="eval")
    except SyntaxError:
        return where
    meaning = _PandasMeaning()
    tree = meaning.visit(tree)
    return ast.unparse(tree) if meaning.changed else where
