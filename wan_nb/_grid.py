"""One image-grid renderer (HTML and PNG) for the log and for live sweeps.

Both ``Log.grid`` and a running sweep describe the same thing: rows × columns of
cells, each holding zero or more images that are done, still running, or failed.
Keeping one renderer means a sweep's live grid and the grid rebuilt from the log
next week look the same, and escaping is done in exactly one place.

Rendering rules: rows/columns are labelled with their values (long text cut on
screen, full text in a tooltip); parameters shared by every shown run are listed once
in a legend instead of in every cell; each thumbnail keeps its own shape inside a
fixed square box; unfinished cells show their status and failed ones their reason.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from ._atomic import atomic_write_bytes, atomic_write_text
from ._html_parts import FONT, document, esc, format_value, label_html, short
from ._thumbs import shrink
from ._tiles import BOX, CellItem, render_item_html, tile_state

if TYPE_CHECKING:
    from ._sweep import SweepCell

PNG_BOX = 200  # px of the same square in PNG output


@dataclass
class Cell:
    """One cell of a grid; several items when n>1, group panels, or repeated runs."""

    items: list[CellItem] = field(default_factory=list)


def cell_items(cell: SweepCell) -> list[CellItem]:
    """A cell's images, or its placeholder; no caption: the row and column labels say which cell."""
    if cell.result is not None:
        cap = "cache hit" if cell.result.cache_hit else ""
        return [CellItem.of_image(i, cap) for i in cell.result.images]
    status = cell.note or cell.status
    if status == "processing" and cell.progress is not None:
        status = f"processing {cell.progress}%"
    w, h = cell.request.output_size
    return [CellItem(thumb=None, full=None, status=status, error=cell.error, width=w, height=h)]


def hashable(value: Any) -> Any:
    """A hashable stand-in for a row/column value (lists and dicts from JSON columns)."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, hashable(v)) for k, v in value.items())
    return value


def distinct(values: Iterable[Any]) -> list[Any]:
    """The values in first-seen order, each once (lists and dicts compared by content)."""
    seen: dict[Any, Any] = {}
    for v in values:
        seen.setdefault(hashable(v), v)
    return list(seen.values())


def cell_key(row_value: Any, col_value: Any) -> tuple[Any, ...]:
    """The key of ``cells`` for a (row value, column value) pair."""
    return (hashable(row_value), hashable(col_value))


def _lookup(cells: Mapping[tuple[Any, ...], Cell], row_value: Any, col_value: Any) -> Cell | None:
    found = cells.get(cell_key(row_value, col_value))
    if found is None:
        try:
            found = cells.get((row_value, col_value))
        except TypeError:  # unhashable raw value
            found = None
    return found


# --------------------------------------------------------------------------- HTML


def legend_html(legend: Mapping[str, Any]) -> str:
    """The parameters every shown run shares, listed once."""
    if not legend:
        return ""
    parts = " · ".join(
        f'<span style="white-space:nowrap"><b>{esc(k)}</b> = {label_html(v, 120)}</span>' for k, v in legend.items()
    )
    return (f'<div style="margin:4px 0 8px 0;color:#333"><span style="color:#777">Same in every run:</span> '
            f'{parts}</div>')


TH_STYLE = "border:1px solid #ddd;padding:4px 6px;background:#fafafa;vertical-align:middle;text-align:center"
COL_LABEL_STYLE = f"{TH_STYLE};max-width:{2 * BOX}px;white-space:normal;overflow-wrap:anywhere"
ROW_LABEL_STYLE = f"{TH_STYLE};max-width:240px;min-width:80px;white-space:normal;overflow-wrap:anywhere;text-align:left"
TD_STYLE = "border:1px solid #ddd;padding:3px;vertical-align:top;text-align:center"


def grid_header_html(title: str | None, progress_line: str | None, legend: Mapping[str, Any]) -> str:
    """The lines above a grid: title, progress, the legend (shared by the table and the live view)."""
    out = []
    if title:
        out.append(
            f'<div class="wan-title" style="font-weight:600;font-size:14px;margin-bottom:2px">{esc(title)}</div>'
        )
    if progress_line:
        out.append(f'<div class="wan-progress" style="color:#555;margin-bottom:2px">{esc(progress_line)}</div>')
    out.append(legend_html(legend))
    return "".join(out)


def corner_html(row_name: str, col_name: str) -> str:
    return f"{esc(row_name)} ↓ &nbsp; {esc(col_name)} →"


def cell_body_html(cell: Cell | None, link_base: str | Path | None = None, inline: bool = True) -> str:
    """What one grid cell shows: its items, or a dash where no run has these values."""
    if cell is None or not cell.items:
        return '<span style="color:#bbb" title="no run with these values">—</span>'
    return "".join(render_item_html(it, link_base=link_base, inline=inline) for it in cell.items)


def render_grid_html(
    *,
    row_name: str,
    col_name: str,
    row_values: Sequence[Any],
    col_values: Sequence[Any],
    cells: Mapping[tuple[Any, ...], Cell],
    legend: Mapping[str, Any],
    title: str | None = None,
    progress_line: str | None = None,
    link_base: str | Path | None = None,
) -> str:
    """The grid as an HTML fragment (inline styles only, so notebooks and reports keep it).

    ``cells`` is keyed by ``(row_value, col_value)`` (lists/dicts as tuples, see
    ``cell_key``); a missing key is an empty cell. ``link_base`` is the folder links
    are relative to: the working directory in a notebook, the report's folder on export.
    """
    out = [f'<div class="wan-grid" style="{FONT};color:#222">', grid_header_html(title, progress_line, legend)]
    out.append('<table style="border-collapse:collapse">')
    out.append(
        f'<thead><tr><th style="{TH_STYLE};color:#777;font-weight:normal">{corner_html(row_name, col_name)}</th>'
    )
    for cv in col_values:
        out.append(f'<th style="{COL_LABEL_STYLE}">{label_html(cv, 160)}</th>')
    out.append("</tr></thead><tbody>")
    for rv in row_values:
        out.append(f'<tr><th style="{ROW_LABEL_STYLE}">{label_html(rv, 240)}</th>')
        for cv in col_values:
            out.append(f'<td style="{TD_STYLE}">{cell_body_html(_lookup(cells, rv, cv), link_base)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# --------------------------------------------------------------------------- PNG


_SYSTEM_FONTS = (
    "DejaVuSans.ttf",
    "Arial.ttf",
    "arial.ttf",
    "Helvetica.ttc",
    "LiberationSans-Regular.ttf",
    "segoeui.ttf",
)
_ASCII = str.maketrans({"×": "x", "…": "...", "·": "|", "↓": "", "→": "", "✕": "x", "—": "-"})


@functools.lru_cache(maxsize=8)
def _font(size: int) -> tuple[Any, bool]:
    """(font, full_unicode): a system TrueType font if there is one, else Pillow's own."""
    for name in _SYSTEM_FONTS:
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size), False
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default(), False


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap by measured width; the last line gets an ellipsis if cut."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if draw.textlength(trial, font=font) <= width:
                line = trial
                continue
            if line:
                lines.append(line)
            rest = word
            while draw.textlength(rest, font=font) > width and len(rest) > 1:  # one long word
                cut = max(1, int(len(rest) * width / max(1.0, draw.textlength(rest, font=font))))
                lines.append(rest[:cut])
                rest = rest[cut:]
            line = rest
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) - 2)].rstrip() + "…"
    return lines


def _draw_lines(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], lines: list[str], font: Any, fill: str, lh: int
) -> None:
    x, y = xy
    for line in lines:
        draw.text((x, y), line, font=font, fill=fill)
        y += lh


def _paste_item(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    item: CellItem,
    x: int,
    y: int,
    font: Any,
    lh: int,
    text: Callable[[str], str],
) -> None:
    box = PNG_BOX
    state = tile_state(item)
    img = None
    if state == "done":
        for cand in (item.thumb, item.full):
            if cand is None:
                continue
            try:
                with Image.open(cand) as opened:
                    img = shrink(opened, box)
                break
            except (OSError, ValueError):
                continue
    if img is not None:
        draw.rectangle([x, y, x + box - 1, y + box - 1], fill="#f3f3f3", outline="#dddddd")
        canvas.paste(img, (x + (box - img.width) // 2, y + (box - img.height) // 2))
    elif state == "failed":
        draw.rectangle([x, y, x + box - 1, y + box - 1], fill="#fff3f3", outline="#dd3333", width=2)
        lines = [text(f"✕ {item.status or 'error'}"), *_wrap(draw, text(item.error or ""), font, box - 12, 8)]
        _draw_lines(draw, (x + 6, y + 6), lines, font, "#aa0000", lh)
    else:
        label = "image file missing" if state == "done" else (item.status or "pending")
        draw.rectangle([x, y, x + box - 1, y + box - 1], fill="#f4f4f4", outline="#aaaaaa")
        tw = draw.textlength(label, font=font)
        draw.text((x + (box - tw) / 2, y + box / 2 - lh / 2), label, font=font, fill="#666666")
    if item.caption:
        cap = _wrap(draw, text(item.caption), font, box, 1)[0]
        draw.text((x, y + box + 2), cap, font=font, fill="#555555")


@dataclass
class _PngLayout:
    """Sizes and wrapped labels of a grid drawn as a PNG, measured before anything is drawn."""

    font: Any
    text: Callable[[str], str]  # what the font can draw (ASCII when it has no Unicode)
    lh: int
    cell_w: int
    cell_h: int
    head_h: int
    col_lines: list[list[str]]
    row_lines: list[list[str]]
    top: list[tuple[list[str], Any, str]]  # (lines, font, colour): title, progress, legend
    width: int
    height: int
    pad: int = 10
    gap: int = 6
    label_w: int = 220


def render_grid_png(
    *,
    row_name: str,
    col_name: str,
    row_values: Sequence[Any],
    col_values: Sequence[Any],
    cells: Mapping[tuple[Any, ...], Cell],
    legend: Mapping[str, Any],
    path: str | Path,
    title: str | None = None,
    progress_line: str | None = None,
) -> Path:
    """The same grid as one PNG (for slides, chat, a README); written atomically."""
    lay = _png_layout(row_values, col_values, cells, legend, title, progress_line)
    canvas = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(canvas)
    y = lay.pad
    for lines, f, colour in lay.top:
        _draw_lines(draw, (lay.pad, y), lines, f, colour, lay.lh + 2)
        y += len(lines) * (lay.lh + 2) + 4
    x0, gap, font, lh, cell_w, cell_h = lay.pad, lay.gap, lay.font, lay.lh, lay.cell_w, lay.cell_h
    draw.rectangle([x0, y, x0 + lay.label_w - 1, y + lay.head_h - 1], fill="#fafafa", outline="#dddddd")
    _draw_lines(draw, (x0 + gap, y + gap), [lay.text(f"rows: {row_name}"), lay.text(f"cols: {col_name}")],
                font, "#777777", lh)
    for ci, lines in enumerate(lay.col_lines):
        cx = x0 + lay.label_w + ci * cell_w
        draw.rectangle([cx, y, cx + cell_w - 1, y + lay.head_h - 1], fill="#fafafa", outline="#dddddd")
        _draw_lines(draw, (cx + gap, y + gap), lines, font, "#222222", lh)
    y += lay.head_h
    for ri, rv in enumerate(row_values):
        draw.rectangle([x0, y, x0 + lay.label_w - 1, y + cell_h - 1], fill="#fafafa", outline="#dddddd")
        _draw_lines(draw, (x0 + gap, y + gap), lay.row_lines[ri], font, "#222222", lh)
        for ci, cv in enumerate(col_values):
            cx = x0 + lay.label_w + ci * cell_w
            draw.rectangle([cx, y, cx + cell_w - 1, y + cell_h - 1], outline="#dddddd")
            cell = _lookup(cells, rv, cv)
            if cell is None or not cell.items:
                draw.text((cx + cell_w / 2 - 4, y + cell_h / 2 - lh / 2), "—", font=font, fill="#bbbbbb")
                continue
            for ii, item in enumerate(cell.items):
                _paste_item(canvas, draw, item, cx + gap + ii * (PNG_BOX + gap), y + gap, font, lh, lay.text)
        y += cell_h
    return atomic_write_bytes(path, _png_bytes(canvas))


def _png_layout(row_values: Sequence[Any], col_values: Sequence[Any], cells: Mapping[tuple[Any, ...], Cell],
                legend: Mapping[str, Any], title: str | None, progress_line: str | None) -> _PngLayout:
    (font, unicode_ok), (bold, _) = _font(13), _font(15)

    def text(value: str) -> str:
        return value if unicode_ok else value.translate(_ASCII)

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    top_y, bottom_y = font.getbbox("Ag")[1::2]
    lh = int(bottom_y - top_y) + 5
    pad, gap, label_w = _PngLayout.pad, _PngLayout.gap, _PngLayout.label_w
    n_items = max([len(c.items) for c in cells.values()] + [1])
    cell_w = n_items * (PNG_BOX + gap) + gap
    cell_h = PNG_BOX + lh + 2 * gap
    col_lines = [_wrap(probe, text(format_value(v)), font, cell_w - 2 * gap, 3) for v in col_values]
    row_lines = [
        _wrap(probe, text(format_value(v)), font, label_w - 2 * gap, max(1, cell_h // lh - 1)) for v in row_values
    ]
    head_h = max([len(x) for x in col_lines] + [2]) * lh + 2 * gap
    top: list[tuple[list[str], Any, str]] = []
    width = max(label_w + len(col_values) * cell_w + 2 * pad, 480)
    if title:
        top.append((_wrap(probe, text(title), bold, width - 2 * pad, 2), bold, "#111111"))
    if progress_line:
        top.append((_wrap(probe, text(progress_line), font, width - 2 * pad, 2), font, "#555555"))
    if legend:
        line = "Same in every run: " + " · ".join(f"{k} = {short(format_value(v), 120)}" for k, v in legend.items())
        top.append((_wrap(probe, text(line), font, width - 2 * pad, 6), font, "#333333"))
    top_h = sum(len(lines) * (lh + 2) + 4 for lines, _, _ in top)
    height = pad + top_h + head_h + len(row_values) * cell_h + pad
    return _PngLayout(font, text, lh, cell_w, cell_h, head_h, col_lines, row_lines, top, width, height)


def _png_bytes(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()


# --------------------------------------------------------------------------- Grid


@dataclass
class Grid:
    """An image grid: shows itself in a notebook, saves as a self-contained HTML or a PNG."""

    row_name: str
    col_name: str
    row_values: list[Any]
    col_values: list[Any]
    cells: dict[tuple[Any, ...], Cell]
    legend: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    progress_line: str | None = None

    def _data(self) -> dict[str, Any]:
        return {
            "row_name": self.row_name,
            "col_name": self.col_name,
            "row_values": self.row_values,
            "col_values": self.col_values,
            "cells": self.cells,
            "legend": self.legend,
            "title": self.title,
            "progress_line": self.progress_line,
        }

    def cell(self, row_value: Any, col_value: Any) -> Cell | None:
        """The cell at (row value, column value), or None if no run has those values."""
        return _lookup(self.cells, row_value, col_value)

    def to_html_fragment(self, link_base: str | Path | None = None) -> str:
        return render_grid_html(**self._data(), link_base=link_base)

    def _repr_html_(self) -> str:
        return self.to_html_fragment(link_base=os.getcwd())

    def to_html(self, path: str | Path) -> Path:
        """A standalone page; links to full images are relative to the page's folder."""
        path = Path(path)
        body = self.to_html_fragment(link_base=path.absolute().parent)
        title = self.title or f"{self.row_name} × {self.col_name}"
        return atomic_write_text(path, document(title, body))

    def to_png(self, path: str | Path) -> Path:
        return render_grid_png(**self._data(), path=path)

    def __repr__(self) -> str:
        return (
            f"Grid({self.row_name!r} × {self.col_name!r}: {len(self.row_values)} × {len(self.col_values)}, "
            f"{sum(len(c.items) for c in self.cells.values())} items)"
        )


__all__ = [
    "Cell",
    "CellItem",
    "Grid",
    "cell_key",
    "legend_html",
    "render_grid_html",
    "render_grid_png",
    "render_item_html",
]
