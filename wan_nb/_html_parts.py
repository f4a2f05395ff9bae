"""Building blocks shared by every HTML view of the store, log, grids and reports.

Why one place: prompts are user text and end up in tables, labels, tooltips and
captions; routing every string through ``esc`` here is how none slips out raw.
Links are relative (so a run folder can be moved or published on Binder) and
thumbnails are embedded as small data URIs (so a saved notebook or an exported
report shows them without a server).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image

from ._thumbs import EMBED_QUALITY, EMBED_SIDE, data_uri, jpeg, shrink
from ._values import is_missing

# No quotes inside: it goes into style='...' and style="..." attributes alike.
FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:12px;line-height:1.35"


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so the result is safe inside attributes)."""
    return html.escape(value if isinstance(value, str) else format_value(value), quote=True)


def format_value(value: Any) -> str:
    """A parameter value as a human reads it: 7 not 7.0, lists as compact JSON, — for none."""
    if is_missing(value):
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()  # numpy / pandas scalars
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, (_dt.datetime,)):
        return value.isoformat(timespec="seconds")
    return str(value)


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (the full text goes in a title)."""
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def label_html(value: Any, limit: int = 160) -> str:
    """An escaped label: shortened on screen, full text in the title attribute."""
    full = format_value(value)
    return f'<span title="{esc(full)}">{esc(short(full, limit))}</span>'


def href(path: str | Path, base: str | Path | None = None) -> str:
    """A URL for ``path`` relative to ``base`` (default: the working directory).

    Relative, because Jupyter serves files relative to the notebook and an exported
    report must keep working when its folder is moved. Falls back to a file:// URI
    where no relative path exists (another drive on Windows).
    """
    path = Path(path).absolute()
    base = Path(base if base is not None else os.getcwd()).absolute()
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return path.as_uri()
    return quote(Path(rel).as_posix())


@functools.lru_cache(maxsize=4096)
def _embedded_jpeg(path: str, mtime_ns: int, size: int, side: int) -> str:
    # mtime_ns and size are part of the cache key so a rewritten file is re-read.
    with Image.open(path) as opened:
        return data_uri(jpeg(shrink(opened, side), EMBED_QUALITY))


def thumb_data_uri(*candidates: str | Path | None, side: int = EMBED_SIDE) -> str | None:
    """A small JPEG data URI from the first of ``candidates`` that exists and decodes."""
    for cand in candidates:
        if cand is None:
            continue
        p = Path(cand)
        try:
            st = p.stat()
            return _embedded_jpeg(str(p), st.st_mtime_ns, st.st_size, side)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return None


def document(title: str, body: str) -> str:
    """A complete, self-contained HTML page: no scripts, no external styles or fonts."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(title)}</title>\n"
        "<style>body{margin:24px;color:#222;background:#fff;"
        + FONT.replace("font-size:12px;", "font-size:13px;")
        + "}table{border-collapse:collapse}h1{font-size:20px}h2{font-size:16px;margin-top:28px}</style>\n"
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
