"""Expanding a sweep: prompt templates × any field, with no I/O.

``plan_sweep`` turns ``sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(4),
resolution=["1K", "2K"])`` into cells, each a checked ``Request`` with the axis values
that made it. All cells are checked before anything is sent; a broken one is named
with its coordinates.

Its id is a hash of the sweep's definition, so re-running the same cell after a
kernel restart finds the same sweep in the log. Seeds the user left random (or asked
for with ``random_seeds(k)``) are drawn from that id: drawn client-side, recorded in
the log, and the same again on a re-run, which is what makes resume safe.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _spec
from ._exceptions import Problem, RequestError
from ._images import ImageInputError, to_image_ref
from ._request import FIELDS, Request, from_fields, nesting_depth, unknown_fields

# Fields whose single value is itself a list: a list of them is an axis only when
# nested this deep (or wrapped in ``vary``). color_palette is told apart by its items
# instead: a palette of pairs nests as deep as an axis of dict palettes.
_LIST_FIELDS = {"image_urls": 2, "bbox_list": 4, "callback_events": 2}

# Axes typed as text (a form's axis line, ``seed="1-8"``): how each field's values read.
_INT_AXES = ("seed", "n")
_BOOL_AXES = ("watermark", "thinking_mode")
_RANGE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")
_RANDOM = re.compile(r"^\s*random\s*(\d+)\s*$", re.IGNORECASE)


class vary(list[Any]):
    """Mark a value list as an axis explicitly: ``color_palette=vary([p1, p2])``."""


@dataclass(frozen=True)
class random_seeds:
    """``seed=random_seeds(4)``: four seeds drawn client-side (recorded, stable on re-run)."""

    count: int

    def draw(self, sweep_id: str) -> list[int]:
        rng = random.Random(f"{sweep_id}:seeds")
        return [rng.randint(_spec.SEED_MIN, _spec.SEED_MAX) for _ in range(self.count)]


@dataclass
class PlannedCell:
    index: int
    coords: dict[str, Any]
    request: Request


@dataclass
class Plan:
    sweep_id: str
    axes: list[tuple[str, list[Any]]]
    fixed: dict[str, Any]
    cells: list[PlannedCell] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(c.request.n for c in self.cells)

    @property
    def cost_quota(self) -> int:
        return sum(c.request.cost_quota for c in self.cells)

    @property
    def axis_names(self) -> list[str]:
        return [name for name, _ in self.axes]


def parse_axis(name: str, text: str) -> list[Any] | random_seeds:
    """An axis typed by hand: ``a, b, c``; whole-number ranges ``1-8``; ``random 4`` (seeds)."""
    random_k = _RANDOM.match(text) if name == "seed" else None
    if random_k:
        return random_seeds(int(random_k.group(1)))
    values: list[Any] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = _RANGE.match(part)
        if m and name not in _BOOL_AXES:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise RequestError([Problem(name, "range", f"{part!r}: the end is below the start")])
            if hi - lo >= 1000:
                raise RequestError([Problem(name, "range", f"{part!r}: more than 1000 values")])
            values.extend(range(lo, hi + 1) if name in _INT_AXES else (str(v) for v in range(lo, hi + 1)))
        elif name in _INT_AXES:
            try:
                values.append(int(part))
            except ValueError:
                raise RequestError([Problem(name, "type", f"{part!r} is not a whole number")]) from None
        elif name in _BOOL_AXES:
            word = part.lower()
            if word not in ("true", "false", "yes", "no", "on", "off"):
                raise RequestError([Problem(name, "type", f"{part!r}: write true or false")])
            values.append(word in ("true", "yes", "on"))
        else:
            values.append(part.upper() if name == "resolution" else part)
    if not values:
        raise RequestError([Problem(name, "empty_axis", "has no values: type them separated by commas")])
    return values


def _parse_seeds(value: Any) -> Any:
    """``seed="1-8"`` or ``"3,5,9"`` given to ``wan.sweep``: typed like a form's axis; other values unchanged."""
    if not isinstance(value, str):
        return value
    values = parse_axis("seed", value)
    return values[0] if isinstance(values, list) and len(values) == 1 else values


def _is_palette_axis(value: Any) -> bool:
    # a palette is a list of {hex, ratio} dicts or (hex, ratio) pairs; an axis is a list of palettes
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(p, (list, tuple)) and p and isinstance(p[0], (dict, list, tuple)) for p in value
    )


def _axis_values(name: str, value: Any) -> list[Any] | None:
    """The values of an axis, or None if ``value`` is one fixed value."""
    if isinstance(value, vary):
        return list(value)
    if name == "color_palette":
        return list(value) if _is_palette_axis(value) else None
    if name in _LIST_FIELDS:
        return list(value) if isinstance(value, (list, tuple)) and nesting_depth(value) >= _LIST_FIELDS[name] else None
    if isinstance(value, (range, list, tuple)):
        return list(value)
    return None


def _jsonable(value: Any) -> Any:
    """A stable JSON stand-in for the sweep id (local images by content hash)."""
    if isinstance(value, random_seeds):
        return f"random_seeds({value.count})"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple, range)):
        return [_jsonable(v) for v in value]
    try:
        return to_image_ref(value).canonical
    except ImageInputError:
        return repr(value)


def _placeholders(template: str) -> list[str]:
    """The names a template needs: ``{animal}``, ``{animal.title}``, ``{sizes[0]}`` need ``animal``/``sizes``."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise RequestError([Problem("prompt", "template", f"{template!r} is not a valid template: {exc}")]) from exc
    bases = [re.split(r"[.\[]", name, maxsplit=1)[0] for name in names]
    if any(not b or b.isdigit() for b in bases):
        raise RequestError([Problem("prompt", "template", f"{template!r}: use named placeholders like "
                                    "{animal}; write {{ and }} for literal braces")])
    return list(dict.fromkeys(bases))


def plan_sweep(prompts: str | Iterable[str], fields: dict[str, Any], *, salt: str = "") -> Plan:
    """Expand templates × axes into checked requests; raise one RequestError for all problems.

    ``mode`` is taken as an alias of ``action`` (as the forms name it)."""
    if "mode" in fields:
        fields = {**fields, "action": fields["mode"]}
        del fields["mode"]
    templates = [prompts] if isinstance(prompts, str) else list(prompts)
    if not templates or not all(isinstance(t, str) for t in templates):
        raise RequestError([Problem("prompt", "type",
                                    "give a prompt, a template with {placeholders}, or a list of them")])
    names = {n for t in templates for n in _placeholders(t)}
    placeholder_values = {k: fields.pop(k) for k in list(fields) if k in names and k not in FIELDS}
    _check_definition(templates, names, placeholder_values, fields)
    plan = _lay_out(templates, names, placeholder_values, fields, salt)
    _expand(plan, templates, names)
    return plan


def _check_definition(templates: list[str], names: set[str], placeholder_values: dict[str, Any],
                      fields: dict[str, Any]) -> None:
    """Unknown fields, placeholders without values, seeds typed as text; with the fixed
    fields' own problems, so that everything comes in one error."""
    problems = unknown_fields(fields)
    problems += [
        Problem(n, "placeholder", f"the template uses {{{n}}} but no {n}=... was given")
        for n in sorted(names)
        if n not in placeholder_values and n not in fields
    ]
    if "prompt" in fields:
        problems.append(Problem("prompt", "duplicate", "give prompts as the first argument, not prompt="))
    if "seed" in fields:
        try:
            fields["seed"] = _parse_seeds(fields["seed"])
        except RequestError as exc:
            problems += exc.problems
            del fields["seed"]
    if problems:
        probe = {k: v for k, v in fields.items() if k in FIELDS and k != "prompt" and _axis_values(k, v) is None}
        try:
            from_fields({**probe, "prompt": templates[0]})
        except RequestError as exc:
            problems += exc.problems
        raise RequestError(problems)


def _lay_out(templates: list[str], names: set[str], placeholder_values: dict[str, Any],
             fields: dict[str, Any], salt: str) -> Plan:
    """Axes and fixed fields; the sweep's id from its definition; random seeds drawn from that id."""
    axes: list[tuple[str, Any]] = []
    fixed: dict[str, Any] = {}
    if len(templates) > 1:
        axes.append(("template" if names else "prompt", templates))
    for name, value in {**placeholder_values, **fields}.items():
        values = value if isinstance(value, random_seeds) else _axis_values(name, value)
        if values is None:
            fixed[name] = value
        else:
            axes.append((name, values))
    identity = json.dumps(
        {"templates": templates, "axes": [(n, _jsonable(v)) for n, v in axes], "fixed": _jsonable(fixed), "salt": salt},
        sort_keys=True,
        default=str,
    )
    sweep_id = "sw-" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    axes = [(n, v.draw(sweep_id) if isinstance(v, random_seeds) else list(v)) for n, v in axes]
    for name, values in axes:
        if not values:
            raise RequestError([Problem(name, "empty_axis", "has no values to sweep over")])
    return Plan(sweep_id, axes, fixed)


def _expand(plan: Plan, templates: list[str], names: set[str]) -> None:
    """One checked request per combination of axis values; a problem is named once, with
    the cells it breaks."""
    cell_problems: dict[tuple[Any, ...], list[str]] = {}
    for index, combo in enumerate(itertools.product(*(v for _, v in plan.axes))):
        coords = dict(zip(plan.axis_names, combo, strict=True))
        template = coords.get("template", coords.get("prompt", templates[0]))
        cell_values = {**plan.fixed, **{k: v for k, v in coords.items() if k not in ("template", "prompt")}}
        try:
            text = template.format(**{n: cell_values[n] for n in _placeholders(template)}) if names else template
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise RequestError(
                [Problem("prompt", "template", f"{template!r} with {cell_label(coords)}: {type(exc).__name__}: {exc}")]
            ) from None
        request_fields = {k: v for k, v in cell_values.items() if k in FIELDS}
        try:
            req = from_fields({**request_fields, "prompt": text}, rng=random.Random(f"{plan.sweep_id}:{index}"))
        except RequestError as exc:
            for p in exc.problems:
                cell_problems.setdefault((p.field, p.rule, p.message), []).append(cell_label(coords))
            continue
        plan.cells.append(PlannedCell(index, coords, req))
    if cell_problems:
        raise RequestError([
            Problem(f, r, f"{m} — in {len(cells)} cell(s): {'; '.join(cells[:3])}{' ...' if len(cells) > 3 else ''}")
            for (f, r, m), cells in cell_problems.items()
        ])


def cell_label(coords: dict[str, Any], width: int = 30) -> str:
    """A cell named by its axis values, for messages."""
    return ", ".join(f"{k}={str(v)[:width]}" for k, v in coords.items()) or "the only cell"
