"""Small text rules with one home: "did you mean" hints, canonical JSON, sendable text."""

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


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate {text[exc.start]!r} at position {exc.start}: not valid Unicode "
            "text, it cannot be sent (remove it or re-type the character)"
        )
    return None
