"""Small text rules with one home: "did you mean" hints, canonical JSON, sendable, storable text."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """``" (did you mean 'seed'?)"`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 kept (hashes and keys are taken of it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent and kept, or None: a lone surrogate is not Unicode text (it
    cannot be encoded as UTF-8), and a NUL character cannot be stored in the log (PostgreSQL
    text cannot hold it; the same rule on SQLite, so a log moves between engines whole)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate {text[exc.start]!r} at position {exc.start}: not valid Unicode "
            "text, it cannot be sent (remove it or re-type the character)"
        )
    nul = text.find("\x00")
    if nul >= 0:
        return (
            f"contains a NUL character '\\x00' at position {nul}: the log cannot store it "
            "(PostgreSQL text cannot hold one); remove it"
        )
    return None
