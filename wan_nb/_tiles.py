"""One tile: an image's thumbnail in a fixed square, a placeholder, or its error.

The smallest view, below storage: a ``Result`` or ``StoredImage`` shows itself as a
tile, and every grid (a log's, a live sweep's, the explorer's) is made of them, so an
image looks the same wherever it appears and its text is escaped in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _states as S
from ._curation import MAX_STARS
from ._html_parts import esc, href, short, thumb_data_uri
from ._thumbs import EMBED_SIDE, THUMB_SIDE

BOX = 160  # CSS px of the square each thumbnail is fitted into

# Item states: DONE shows the image, FAILED the reason; any other status is a placeholder
# (planned / submitted / queued / processing / downloading — a run still on its way).
DONE = frozenset({S.COMPLETED})
FAILED = frozenset(S.ENDED_WITHOUT_IMAGES)


@dataclass
class CellItem:
    """One image (or one placeholder for an image) inside a grid cell."""

    thumb: Path | None
    full: Path | None
    status: str
    error: str | None = None
    caption: str = ""
    width: int | None = None
    height: int | None = None
    run_id: str | None = None  # the run it shows (a widget over the grid opens it on a click)
    stars: int | None = None  # the run's rating, shown under the picture

    @classmethod
    def of_image(cls, image: Any, caption: str = "") -> CellItem:
        """A finished item for an image on disk (a StoredImage)."""
        return cls(thumb=image.thumb_path, full=image.path, status=S.COMPLETED, caption=caption,
                   width=image.width, height=image.height)


def stars_text(stars: int | None) -> str:
    """``★★★★☆`` for 4 of 5; "" when unrated."""
    return "" if not stars else "★" * stars + "☆" * (MAX_STARS - stars)


def stars_html(stars: int | None, look: str) -> str:
    if not stars:
        return ""
    label = f"{stars} star{'s' if stars != 1 else ''}"
    return f'<div {look} title="{label}" aria-label="{label}">{stars_text(stars)}</div>'


def tile_state(item: CellItem) -> str:
    status = (item.status or "").lower()
    if status in FAILED or item.error:
        return "failed"
    if status in DONE:
        return "done"
    return "pending"


def _looks(box: int) -> dict[str, str]:
    """The style of each part of an item, by name: inline in static HTML, or one
    stylesheet (``item_css``) for the live view, which then sends only class names."""
    frame = (f"width:{box}px;height:{box}px;display:flex;align-items:center;justify-content:center;"
             "overflow:hidden;box-sizing:border-box")
    column = f"{frame};flex-direction:column"
    return {
        "item": f"display:inline-block;vertical-align:top;margin:2px;width:{box}px",
        "img": f"max-width:{box}px;max-height:{box}px;width:auto;height:auto;display:block",
        "done": f"{frame};background:#f3f3f3;border:1px solid #ddd",
        "failed": f"{column};padding:6px;background:#fff3f3;border:2px solid #d33;color:#a00;text-align:center;"
                  "overflow-wrap:anywhere",
        "missing": f"{column};background:#fafafa;border:1px dashed #bbb;color:#777;text-align:center;"
                   "overflow-wrap:anywhere;padding:6px",
        "pending": f"{column};background:repeating-linear-gradient(45deg,#f6f6f6,#f6f6f6 8px,#ececec 8px,"
                   "#ececec 16px);border:1px dashed #aaa;color:#666",
        "dots": "font-size:18px;letter-spacing:2px",
        "small": "font-size:11px",
        "caption": "font-size:11px;color:#555;overflow-wrap:anywhere",
        "stars": "font-size:13px;color:#e0a100;letter-spacing:1px;line-height:1",
    }


CSS_PREFIX = "wan-"


def item_css(scope: str, box: int = BOX) -> str:
    """The item styles as one stylesheet under ``scope`` (for ``render_item_html(inline=False)``)."""
    return "".join(f"{scope} .{CSS_PREFIX}{name}{{{style}}}" for name, style in _looks(box).items())


def render_item_html(item: CellItem, *, link_base: str | Path | None = None, box: int = BOX,
                     inline: bool = True) -> str:
    """One fixed-size box: the thumbnail (linked to the full file), a placeholder, or an error.

    ``inline=False``: class names instead of inline styles (a few dozen bytes instead of
    several hundred; the page must carry ``item_css``)."""
    looks = _looks(box)

    def look(name: str) -> str:
        return f'style="{looks[name]}"' if inline else f'class="{CSS_PREFIX}{name}"'

    state = tile_state(item)
    size = f"{item.width}×{item.height}" if item.width and item.height else ""
    tooltip = " · ".join(x for x in (item.caption, size, item.status) if x)
    # Embed at the box's size; above the stored thumbnail's size, read the full image.
    side = max(EMBED_SIDE, box)
    sources = (item.full, item.thumb) if side > THUMB_SIDE else (item.thumb, item.full)
    uri = thumb_data_uri(*sources, side=side) if state == "done" else None
    if uri:
        img = f'<img src="{esc(uri)}" alt="{esc(item.caption or "image")}" title="{esc(tooltip)}" {look("img")}>'
        if item.full is not None:
            img = f'<a href="{esc(href(item.full, link_base))}" target="_blank" rel="noopener">{img}</a>'
        inner = f'<div {look("done")}>{img}</div>'
    elif state == "failed":
        reason = item.error or item.status
        inner = (f'<div {look("failed")} title="{esc(reason)}"><b>✕ {esc(item.status or "error")}</b>'
                 f'<span {look("small")}>{esc(short(reason or "", 220))}</span></div>')
    elif state == "done":  # finished, but the file is gone (moved folder, deleted image)
        where = str(item.full) if item.full else "no file recorded"
        inner = (f'<div {look("missing")} title="{esc(where)}"><b>{esc(item.status)}</b>'
                 f'<span {look("small")}>image file missing</span></div>')
    else:
        inner = (f'<div {look("pending")}><span {look("dots")}>···</span>'
                 f'<span>{esc(item.status or "pending")}</span></div>')
    caption = (f'<div {look("caption")} title="{esc(item.caption)}">{esc(short(item.caption, 80))}</div>'
               if item.caption else "")
    return f'<div {look("item")}>{inner}{stars_html(item.stars, look("stars"))}{caption}</div>'
