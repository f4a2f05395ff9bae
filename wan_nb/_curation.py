"""Choosing among runs: the rules for stars, tags and notes, and which run a call means.

Why checked here, before the log is touched: a call with one bad tag among good ones
changes nothing, and each refusal names the field and the rule (``RequestError``), as a
request's fields do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import Problem, RequestError
from ._options import is_whole
from ._text import text_problem

MAX_STARS = 5
# letters and digits of any script (\w: Unicode letters, digits and _), whole (fullmatch: no "\n" after)
TAG_RULE = re.compile(r"[\w.:-]{1,40}")
TAG_TEXT = "1-40 characters of letters, digits and - _ . :"


def check_stars(value: Any) -> int | None:
    """1-5 (numpy integers too); 0 or None clears (returns None)."""
    if value is None or (is_whole(value, 0) and int(value) == 0):
        return None
    if not is_whole(value, 1) or int(value) > MAX_STARS:
        raise RequestError([Problem("stars", "range", f"must be a whole number of stars from 1 to {MAX_STARS}, "
                                                      f"or 0 or None to clear (got {value!r})")])
    return int(value)


def tag_problem(field: str, tag: Any) -> Problem | None:
    """Why ``tag`` is no tag, as the problem of ``field`` (None: it is one)."""
    if isinstance(tag, str) and TAG_RULE.fullmatch(tag):
        return None
    return Problem(field, "tag", f"a tag is {TAG_TEXT} (got {tag!r})")


def check_tags(tags: Iterable[Any]) -> list[str]:
    """Every tag checked before any is written; case kept, each once, in the order given."""
    tags = list(tags)
    problems = []
    if not tags:
        problems.append(Problem("tags", "required", "give at least one tag"))
    problems += [p for i, tag in enumerate(tags) if (p := tag_problem(f"tags[{i}]", tag))]
    if problems:
        raise RequestError(problems)
    return list(dict.fromkeys(tags))


def check_note(text: Any) -> str | None:
    """Text replaces the note; "" or None clears it."""
    if text is None or text == "":
        return None
    bad = "must be text" if not isinstance(text, str) else text_problem(text)
    if bad:
        raise RequestError([Problem("note", "text", f"{bad} (got {text!r})" if bad == "must be text" else bad)])
    return str(text)


def run_id_of(run: Any) -> str:
    """The run a call means: a run id, a ``Result`` (or anything with ``.run_id``), or a row of ``log.runs()``."""
    if isinstance(run, str) and run:
        return run
    found = getattr(run, "run_id", None)
    if found is None and isinstance(run, Mapping):
        found = run.get("run_id")
    if found is None and hasattr(run, "get"):  # a pandas Series (a row of log.runs())
        found = run.get("run_id")
    if isinstance(found, str) and found:
        return found
    raise RequestError([Problem("run", "type", "expected a run id, a Result or a row of log.runs() "
                                               f"(got {type(run).__name__})")])
