"""Values between Python and the log's tables: one converter per column kind.

Why a table: every write (one run, a bulk import, a state move, a rating) checks its
values the same way, and each refusal names the column and the rule before any
transaction starts, so a bad row never leaves half a write.
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _log_schema as schema
from ._text import canonical_json, did_you_mean, text_problem
from ._values import is_missing


def json_default(value: Any) -> Any:
    """What JSON cannot hold itself: numpy scalars, sets, paths, dates."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def check_known(names: Iterable[str], known: Mapping[str, Any], what: str) -> None:
    """ValueError for the first name that is no column of the table, with a hint."""
    for name in names:
        if name not in known:
            raise ValueError(
                f"unknown {what} column {name!r}{did_you_mean(name, known)}; known columns: {', '.join(known)}"
            )


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {value!r}"


def _text(col: schema.Column, value: Any) -> Any:
    if col.name == "request_json" and isinstance(value, dict):  # a request body: kept as its canonical text
        return canonical_json(value)
    if not isinstance(value, str):
        raise ValueError(f"{col.name}: expected text, {_got(value)}")
    bad = text_problem(value)
    if bad:
        raise ValueError(f"{col.name}: {bad}")
    if col.choices and value not in col.choices:
        raise ValueError(f"{col.name}: {value!r} is not one of {', '.join(col.choices)}")
    return value


def _int(col: schema.Column, value: Any) -> Any:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(float(value))
    raise ValueError(f"{col.name}: expected an integer, {_got(value)}")


def _bool(col: schema.Column, value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return int(value)
    raise ValueError(f"{col.name}: expected True or False, {_got(value)}")


def _real(col: schema.Column, value: Any) -> Any:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{col.name}: expected a number, {_got(value)}")


def _time(col: schema.Column, value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{col.name}: expected a number (unix seconds), {_got(value)}")


def _json(col: schema.Column, value: Any) -> Any:
    """Python lists/dicts, or JSON text of one, stored as compact JSON text."""
    name = col.name
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            hint = f" (e.g. {name}=[{value!r}])" if col.kind == "json_list" else ""
            raise ValueError(f"{name}: expected a list/dict or JSON text, {_got(value)}{hint}") from None
    if isinstance(value, tuple):
        value = list(value)
    elif isinstance(value, (set, frozenset)):
        value = sorted(value)
    if col.kind == "json_list" and not isinstance(value, list):
        raise ValueError(f"{name}: expected a list, {_got(value)}")
    if col.kind == "json_dict" and not isinstance(value, dict):
        raise ValueError(f"{name}: expected a dict (axis name → value), {_got(value)}")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be stored as JSON ({exc})") from None


# column kind -> the check and conversion of a value written to it
TO_SQL: dict[str, Callable[[schema.Column, Any], Any]] = {
    "text": _text,
    "category": _text,
    "int": _int,
    "bool": _bool,
    "real": _real,
    "time": _time,
    "json_list": _json,
    "json_dict": _json,
    "json": _json,
}


_PLAIN = frozenset({str, int, bool, list, dict, tuple})  # types that are never a missing-value marker


def to_sql(col: schema.Column, value: Any) -> Any:
    """Check one value against its column and turn it into what the database stores.

    Raises ValueError naming the column, so a bad row is refused before any write.
    """
    if value is None:
        return None
    if type(value) not in _PLAIN:  # a bulk import writes millions: the usual types skip these checks
        if type(value) is float:
            if value != value:  # NaN
                return None
        elif not isinstance(value, (list, tuple, dict, set, frozenset)):
            if is_missing(value):
                return None
            if type(value).__module__ == "numpy" and hasattr(value, "item"):
                value = value.item()  # np.int64 from a DataFrame, np.bool_, ...
    return TO_SQL[col.kind](col, value)


def row_to_sql(table: Mapping[str, schema.Column], row: Mapping[str, Any], what: str = "run") -> dict[str, Any]:
    """Every value of ``row`` checked and converted (unknown names refused first)."""
    check_known(row, table, what)
    return {k: to_sql(table[k], v) for k, v in row.items()}


def from_sql(col: schema.Column | None, value: Any) -> Any:
    """A stored value as Python: JSON decoded, flags as bool (no pandas)."""
    if value is None or col is None:
        return value
    if col.is_json:
        return json.loads(value)
    if col.kind == "bool":
        return bool(value)
    return value
