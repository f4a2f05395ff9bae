"""Small text rules with one home: "did you mean" hints and canonical JSON."""

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
