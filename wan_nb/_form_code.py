"""The code a form shows: the ``wan.<mode>(...)`` call that makes the same request.

Pure text from a checked ``Request`` and one Python expression per input image, so
the code a user copies out of a form is the request it ran: same fields, the seed
that was really sent, the same images (named by their file or URL; the request names
them by content, so running the code is the same request and a cache hit at $0).
Fields at the document's defaults are left out, as a person would write the call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import _spec
from ._request import Request

SWEEP_SEEDS = 4  # how many seeds "Sweep this" puts on its seed axis

# The mode functions' own image arguments (see _modes.py).
_ONE_IMAGE = (_spec.IMAGE2IMAGE, _spec.EDIT)
_IMAGE_LIST = (_spec.REFERENCE, _spec.INTERACTIVE_EDIT)


def path_expr(path: str | os.PathLike[str]) -> str:
    """A path as a string literal: relative to the working folder when inside it."""
    p = Path(path).absolute()
    try:
        rel = os.path.relpath(p, Path.cwd())
    except ValueError:  # another drive (Windows)
        rel = str(p)
    return repr(rel if not rel.startswith("..") else str(p))


def _literal(value: Any) -> str:
    """A field value as Python source (lists of lists for palettes and boxes)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _palette(request: Request) -> list[dict[str, Any]] | None:
    if request.color_palette is None:
        return None
    return [{"hex": h, "ratio": r} for h, r in request.color_palette]


def _options(request: Request, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(name, source) of every field that differs from the document's default; seed always."""
    d = _spec.DEFAULTS
    out: list[tuple[str, str]] = []
    if "n" not in skip and (request.n != d["n"] or request.action == _spec.GROUP):
        out.append(("n", repr(request.n)))  # group()'s own default is 4, not the document's 1
    if "seed" not in skip:
        out.append(("seed", repr(request.seed)))
    for name in ("aspect_ratio", "resolution", "watermark"):
        value = getattr(request, name)
        if value != d[name]:
            out.append((name, repr(value)))
    if _spec.has_effect("thinking_mode", request.action) and request.thinking_mode != d["thinking_mode"]:
        out.append(("thinking_mode", repr(request.thinking_mode)))
    palette = _palette(request)
    if palette is not None:
        out.append(("color_palette", _literal(palette)))
    return out


def _call(name: str, args: list[str], options: list[tuple[str, str]]) -> str:
    parts = args + [f"{k}={v}" for k, v in options]
    one_line = f"wan.{name}({', '.join(parts)})"
    if len(one_line) <= 100:
        return one_line
    return f"wan.{name}(\n" + "".join(f"    {p},\n" for p in parts) + ")"


def call_code(request: Request, images: list[str]) -> str:
    """``wan.<mode>(prompt, [images,] field=value, ...)``: the call that sends ``request``.

    ``images``: a Python expression for each input image, in order.
    """
    action = request.action
    args = [repr(request.prompt)]
    if action in _ONE_IMAGE:
        args.append(images[0] if images else "None")
    elif action in _IMAGE_LIST:
        args.append("[" + ", ".join(images) + "]")
    if action == _spec.INTERACTIVE_EDIT and request.bbox_list is not None:
        args.append(_literal([[list(b) for b in boxes] for boxes in request.bbox_list]))
    return _call(action, args, _options(request))


def seed_axis(seed: int | None, count: int = SWEEP_SEEDS) -> str:
    """A seed axis that starts at ``seed`` (so its first cell is the run already made), or
    ``wan.random_seeds(count)`` when no seed is known."""
    if seed is None:
        return f"wan.random_seeds({count})"
    start = min(seed, _spec.SEED_MAX - count + 1)
    return repr(f"{start}-{start + count - 1}")


def sweep_code(request: Request, images: list[str], *, seed: int | None) -> str:
    """``wan.sweep(...)`` with the request's fields fixed and a seed axis."""
    action = request.action
    options: list[tuple[str, str]] = []
    if action != _spec.GENERATE:
        options.append(("action", repr(action)))
    if images:
        options.append(("image_urls", "[" + ", ".join(images) + "]"))
    if action == _spec.INTERACTIVE_EDIT and request.bbox_list is not None:
        options.append(("bbox_list", _literal([[list(b) for b in boxes] for boxes in request.bbox_list])))
    options += _options(request, skip=("seed",))
    options.insert(0, ("seed", seed_axis(seed)))
    return _call("sweep", [repr(request.prompt)], options)
