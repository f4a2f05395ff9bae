"""``wan.ImageCompare``: two images side by side, one over the other, or as their difference.

Three modes (the ``mode`` trait): **swipe** shows B over A, split at ``position`` (the
share of the frame's width shown of A, 0..1), the split dragged with the mouse or moved
with the arrow keys; **side** shows both at one scale with the request fields that
differ highlighted (the rule of ``Log.compare``: ``_report.differing_params``); **diff**
shows where the pixels differ as a heat image, with the share of pixels changed.

Inputs are taken as everywhere else (``_pixels.open_rgb``: a path, URL, PIL image,
bytes, a ``Result``, a ``StoredImage``), plus a row of ``log.runs()`` or a dict of
``log.get_run()``. A run (a ``Result``, a log row) brings its request fields; a bare
image does not, and the side view says so.

Two images of different sizes are compared in one frame: the size of the one with fewer
pixels (a 2K image is compared with a 1K one at 1K, not the 1K one blown up); the other
is resized to it, stretched when the shapes differ, and the view says so. The diff is
computed on that frame: a pixel counts as changed when any channel differs by more than
``CHANGE_LEVEL`` of 255, above most of the noise of encoding one picture twice as a
JPEG (at quality 90, 0.2 % of a simulator image's pixels or fewer pass it).

The widget follows the drawer's pattern (``_bbox``): state in synced traits, checked by
validators that raise ``RequestError``s traitlets rolls back; pictures sent to the
browser once each (``<img>`` widgets); the swipe is A's ``<img>`` under a transparent
ipycanvas canvas on which B, clipped at the split, and the handle are drawn. B's
pixels reach that canvas once, into a source canvas that is never shown; each redraw
copies from it (a few hundred bytes of commands, never pixels), at most 30 times a
second during a drag. Nothing asks the browser for pixels back (no
``sync_image_data``), so it works wherever ipycanvas draws (JupyterLab, Notebook 7,
VS Code). ``position`` changes once per finished drag, not per mouse move.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import math
import numbers
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ipywidgets as widgets
import traitlets
from ipycanvas import Canvas, hold_canvas
from PIL import Image, ImageChops

from . import _box_geometry as geo
from ._canvas_view import DRAW_INTERVAL, display_copy, jpeg, renamer, stack
from ._exceptions import Problem, RequestError
from ._html_parts import FONT, esc, label_html, short
from ._pixels import open_rgb
from ._report import ParamRow, differing_params
from ._result import Result
from ._session import current
from ._store import StoredImage
from ._trait_checks import TraitRequestError

MODES = ("swipe", "side", "diff")
MODE_BUTTONS = (  # (label, mode, tooltip): the tooltip is each button's title, its accessible description
    ("Swipe", "swipe", "Swipe: B over A, split where you drag the handle"),
    ("Side by side", "side", "Side by side: both at one scale, with the request fields that differ"),
    ("Diff", "diff", "Diff: where the pixels differ, as a heat image"),
)
HANDLE_TITLE = "Swipe handle: drag to move the split between A and B (arrow keys: 5% a step)"
CHANGE_LEVEL = 8  # of 255: a pixel is changed when any channel differs by more than this
KEY_STEP = 0.05  # share of the width one arrow key moves the split
GAP = 12  # screen px between the two pictures of the side view
FALLBACK_SIDE = 240  # px: the static thumbnails for viewers without widgets
CONTEXT = 0.35  # brightness of A's grey under the heat where nothing changed


# ----------------------------------------------------------------- the two inputs


@dataclass(frozen=True)
class Side:
    """One input: the image to open, a short label, its run's log fields (None for a
    bare image) and what it is, in words (for "its fields are unknown")."""

    image: Any
    label: str
    fields: dict[str, Any] | None
    kind: str
    remark: str = ""  # e.g. "the first of 4 images"


def _is_log_row(value: Any) -> bool:
    """A row of ``log.runs()`` (a pandas Series) or a dict of ``log.get_run()``."""
    if isinstance(value, (str, bytes, os.PathLike)) or not (hasattr(value, "keys") and hasattr(value, "items")):
        return False
    keys = set(value.keys())
    return "run_id" in keys and bool(keys & {"paths", "images"})


def log_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A logged run's columns as ``runs()`` has them: the keys of its sweep cell spread
    out as columns (unless a real column has the name), the image lists left out."""
    fields = {k: v for k, v in row.items() if k not in ("images", "paths", "n_images")}
    cell = fields.get("cell")
    if isinstance(cell, dict):
        for key, value in cell.items():
            fields.setdefault(str(key), value)
    return fields


def _logged_fields(run_id: str) -> dict[str, Any] | None:
    """The current session's log row of a run, as fields (None when it is not there)."""
    sess = current()
    row = sess.log.get_run(run_id) if sess is not None else None
    return log_fields(row) if row is not None else None


def _many(n: int) -> str:
    return f"the first of {n} images (pass one of r.images to choose another)" if n > 1 else ""


def _plain_label(value: Any) -> tuple[str, str]:
    """(label, kind) of an input that is only an image."""
    if isinstance(value, StoredImage):
        return value.path.name[:12], "a stored image"
    if isinstance(value, str) and "://" in value:
        return os.path.basename(urlsplit(value).path) or value, "a URL"
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.fspath(value)), "a file"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", "bytes"
    if hasattr(value, "save") and hasattr(value, "size"):
        return "PIL image", "a PIL image"
    return type(value).__name__, f"a {type(value).__name__}"


def to_side(value: Any, name: str) -> Side:
    """What ``ImageCompare`` takes as ``a`` or ``b``; RequestError naming ``name`` otherwise."""
    if isinstance(value, Result):
        if not value.images:
            raise RequestError([Problem(name, "images", f"run {value.run_id} has no image ({value.status})")])
        fields = _logged_fields(value.run_id)
        if fields is None and value.request is not None:
            fields = value.request.to_row()
        return Side(value.images[0], value.run_id, fields, "a run", _many(len(value.images)))
    if _is_log_row(value):
        row = {str(k): v for k, v in value.items()}
        paths = [p for p in (row.get("paths") or []) if p] if "paths" in row else [
            im.get("path") for im in row.get("images") or [] if im.get("path")]
        if not paths:
            raise RequestError([Problem(name, "images", f"run {row['run_id']} has no image file in the log "
                                                        f"(status {row.get('status')})")])
        return Side(paths[0], str(row["run_id"]), log_fields(row), "a run", _many(len(paths)))
    label, kind = _plain_label(value)
    return Side(value, label, None, kind)


# ----------------------------------------------------------------- pure pixels


def frame_size(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The frame both are compared in: the size of the one with fewer pixels (A's on a
    tie); the other is resized to it."""
    return a if a[0] * a[1] <= b[0] * b[1] else b


def size_note(a: tuple[int, int], b: tuple[int, int]) -> str:
    """What the view says when the sizes differ ("" when they do not)."""
    if a == b:
        return ""
    frame = frame_size(a, b)
    note = f"A {a[0]}×{a[1]}, B {b[0]}×{b[1]}: scaled to one frame, {frame[0]}×{frame[1]}"
    if a[0] * b[1] != a[1] * b[0]:
        note += f" ({'B' if frame == a else 'A'} stretched: the shapes differ)"
    return note


def difference(a: Image.Image, b: Image.Image) -> Image.Image:
    """Per pixel, the largest difference of any channel (an "L" image, 0..255)."""
    r, g, bl = ImageChops.difference(a, b).split()
    return ImageChops.lighter(ImageChops.lighter(r, g), bl)


def changed_mask(diff: Image.Image, level: int = CHANGE_LEVEL) -> Image.Image:
    """255 where the difference is over ``level``, else 0."""
    return diff.point(lambda v: 255 if v > level else 0)


def changed_share(mask: Image.Image) -> float:
    """The share of pixels changed (0..1) in a ``changed_mask``."""
    return mask.histogram()[255] / (mask.width * mask.height)


def _ramp(t: float) -> tuple[int, int, int]:
    """Deep red (a small change) through orange and yellow to near white (the largest)."""
    stops = ((0.0, (130, 0, 30)), (0.4, (235, 45, 0)), (0.7, (255, 165, 0)), (1.0, (255, 255, 200)))
    for (t0, c0), (t1, c1) in itertools.pairwise(stops):
        if t <= t1:
            k = (t - t0) / (t1 - t0)
            return (round(c0[0] + (c1[0] - c0[0]) * k), round(c0[1] + (c1[1] - c0[1]) * k),
                    round(c0[2] + (c1[2] - c0[2]) * k))
    return stops[-1][1]


HEAT = [_ramp(math.sqrt(v / 255)) for v in range(256)]  # sqrt: small changes still show


def heat_image(a: Image.Image, diff: Image.Image, mask: Image.Image) -> Image.Image:
    """Changed pixels coloured by how much they changed, over A in dim grey."""
    heat = Image.merge("RGB", [diff.point([c[i] for c in HEAT]) for i in range(3)])
    context = a.convert("L").point(lambda v: round(v * CONTEXT)).convert("RGB")
    return Image.composite(heat, context, mask)


# ----------------------------------------------------------------- traits


class _Mode(traitlets.Unicode):  # type: ignore[type-arg]  # traitlets' generics: the value is a str
    def validate(self, obj: Any, value: Any) -> str:
        if not isinstance(value, str) or value not in MODES:
            raise TraitRequestError([Problem("mode", "one_of", f"must be 'swipe', 'side' or 'diff', not {value!r}")])
        return value


class _Share(traitlets.Float):  # type: ignore[type-arg]
    def validate(self, obj: Any, value: Any) -> float:
        share = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
        if not 0 <= share <= 1:  # NaN, inf, a string, a bool: refused like a number out of range
            raise TraitRequestError([Problem(
                "position", "range", f"must be a number from 0 (all B) to 1 (all A), not {value!r}")])
        return share


class _TitledCanvas(Canvas):  # type: ignore[misc]  # ipycanvas is untyped
    """A canvas whose ``tooltip`` becomes its element's title (the handle's name). ipywidgets
    8.1's front end sets a title only on a widget with a ``description`` (it reads its
    length), and breaks the view of one without: so this canvas has an empty one."""

    description = traitlets.Unicode("").tag(sync=True)


def _sized(picture: widgets.Image, width: int) -> widgets.Box:
    """A picture shown ``width`` screen px wide (narrower when the output area is)."""
    return widgets.Box([picture], layout=widgets.Layout(width=f"{width}px", max_width="100%"))


def _shown(im: Image.Image, view: geo.View) -> tuple[bytes, str]:
    """The drawer's display copy (``display_copy``), shrunk here first with a reducing
    gap (a box reduction by a whole factor, then Lanczos): a third of the time on a 4K
    image, a difference no eye sees at display size."""
    if not view.enlarged and view.canvas_width < im.width:
        im = im.resize((view.canvas_width, view.canvas_height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return display_copy(im, view)


def _picture(data: bytes, fmt: str) -> widgets.Image:
    return widgets.Image(value=data, format=fmt,
                         layout=widgets.Layout(width="100%", height="auto", margin="0", grid_area="stack"))


class ImageCompare(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Two images compared: ``mode`` "swipe" | "side" | "diff", ``position`` 0..1 (swipe).

    ``a``, ``b``: each a path, URL, PIL image, bytes, a ``Result``, a ``StoredImage``, or a
    row of ``log.runs()`` / a dict of ``log.get_run()``. A run's request fields are
    compared in the side view as ``Log.compare`` compares them. Both traits are settable
    from Python (checked: a bad value is a ``wan.RequestError`` and is not kept) and by
    the mouse (the mode buttons; dragging the swipe handle; arrow keys on the picture).
    """

    mode: traitlets.TraitType[str, Any] = _Mode("swipe", help="'swipe', 'side' or 'diff'").tag(sync=True)
    position: traitlets.TraitType[float, Any] = _Share(
        0.5, help="swipe: the share of the width that shows A (0: all B, 1: all A)").tag(sync=True)

    def __init__(
        self,
        a: Any,
        b: Any,
        mode: str = "swipe",
        position: float = 0.5,
        *,
        max_width: int = 800,
        max_height: int = 600,
        **kwargs: Any,
    ) -> None:
        _Mode().validate(self, mode)  # a bad mode or position is refused before any image is opened
        _Share().validate(self, position)
        self._inputs = (a, b)
        self._sides = (to_side(a, "a"), to_side(b, "b"))
        originals = [open_rgb(side.image, name) for side, name in zip(self._sides, "ab", strict=True)]
        self._sizes = (originals[0].size, originals[1].size)
        self._frame = frame_size(*self._sizes)
        self._note = size_note(*self._sizes)
        framed = [im if im.size == self._frame else im.resize(self._frame, Image.Resampling.LANCZOS)
                  for im in originals]
        diff = difference(*framed)
        mask = changed_mask(diff)
        self._share = changed_share(mask)
        self._params = self._compare_fields()

        view = self._view = geo.View.fit(*self._frame, max_width, max_height)
        frame_pictures = [_picture(*_shown(im, view)) for im in framed]
        heat = _picture(*_shown(heat_image(framed[0], diff, mask), view))
        side_pictures, side_widths, side_bytes = self._side_copies(originals, frame_pictures, max_width, max_height)
        self._thumbs = side_bytes
        del originals, framed, diff, mask  # the originals can be large: only what is shown is kept
        self._b_picture = frame_pictures[1]

        self._drag_x: float | None = None  # canvas px of the split while a drag is under way
        self._last_draw = 0.0
        self._pending: asyncio.TimerHandle | None = None
        self.redraws = 0  # how many times the swipe canvas was drawn (traffic back to the browser)
        self._source = Canvas(width=view.canvas_width, height=view.canvas_height)  # B, never shown
        self._elsewhere = renamer()  # never shown: drawn on before a new view's redraw
        self._source.on_client_ready(self._source_ready)
        self._canvas = self._swipe_canvas(view)

        self._buttons = widgets.ToggleButtons(
            options=[(label, m) for label, m, _ in MODE_BUTTONS], tooltips=[t for _, _, t in MODE_BUTTONS],
            style={"button_width": "auto"},
        )
        self._buttons.add_class("wan-compare-modes")
        facts = widgets.HTML(self._facts_html())
        facts.add_class("wan-compare-facts")
        self._panels = {
            "swipe": widgets.VBox([self._swipe_stack(frame_pictures[0], view)]),
            "side": widgets.VBox([
                widgets.HBox([self._figure(i, side_pictures[i], side_widths[i]) for i in range(2)],
                             layout=widgets.Layout(align_items="flex-start")),
                widgets.HTML(self._fields_html()),
            ]),
            "diff": widgets.VBox([_sized(heat, view.screen_width), widgets.HTML(self._share_html())]),
        }
        for name, panel in self._panels.items():
            panel.add_class(f"wan-compare-{name}")
        note = widgets.HTML(f"<span style='{FONT};color:#8a5a00'>⚠ {esc(self._note)}</span>" if self._note else "")
        note.add_class("wan-compare-note")
        super().__init__(children=[widgets.HBox([self._buttons, facts], layout=widgets.Layout(align_items="center")),
                                   *self._panels.values(), note], **kwargs)
        self.add_class("wan-compare")
        self.observe(self._show_mode, "mode")
        self.observe(lambda _: self._draw(), "position")
        self.mode = mode
        self.position = position
        traitlets.link((self, "mode"), (self._buttons, "value"))
        self._show_mode()
        self._fill_source()

    # -- building -------------------------------------------------------------------
    def _compare_fields(self) -> list[ParamRow] | None:
        """The request fields of both runs compared (None when either is a bare image)."""
        fa, fb = (s.fields for s in self._sides)
        return differing_params(fa, fb) if fa is not None and fb is not None else None

    def _side_copies(
        self, originals: list[Image.Image], frame_pictures: list[widgets.Image], max_width: int, max_height: int
    ) -> tuple[list[widgets.Image], list[int], list[bytes]]:
        """The side view's pictures, both at one scale: the frame's pictures again when the
        sizes are equal (nothing sent twice), else each original at its own shape."""
        (wa, ha), (wb, hb) = self._sizes
        zoom = geo.View.fit(wa + wb, max(ha, hb), max_width - GAP, max_height).zoom
        widths = [max(1, round(w * zoom)) for w, _ in self._sizes]
        if self._sizes[0] == self._sizes[1]:
            return frame_pictures, widths, [p.value for p in frame_pictures]
        views = [geo.View(w, h, max(1, round(w * zoom)) * geo.DENSITY, max(1, round(h * zoom)) * geo.DENSITY,
                          geo.DENSITY) for w, h in self._sizes]
        shown = [_shown(im, v) for im, v in zip(originals, views, strict=True)]
        return [_picture(*s) for s in shown], widths, [data for data, _ in shown]

    def _swipe_canvas(self, view: geo.View) -> Canvas:
        canvas = _TitledCanvas(width=view.canvas_width, height=view.canvas_height, tooltip=HANDLE_TITLE)
        canvas.add_class("wan-compare-canvas")
        canvas.on_mouse_down(self._on_down)
        canvas.on_mouse_move(self._on_move)
        canvas.on_mouse_up(self._on_up)
        canvas.on_mouse_out(self._on_up)  # a button released outside is not seen: the drag ends where it left
        canvas.on_key_down(self._on_key)
        canvas.on_client_ready(self._redraw_for_new_view)
        return canvas

    def _swipe_stack(self, picture: widgets.Image, view: geo.View) -> widgets.GridBox:
        grid = stack(picture, self._canvas, view)
        grid.add_class("wan-compare-stack")
        return grid

    def _figure(self, i: int, picture: widgets.Image, width: int) -> widgets.VBox:
        caption = widgets.HTML(self._caption_html(i))
        return widgets.VBox([_sized(picture, width), caption],
                            layout=widgets.Layout(width=f"{width}px", margin=f"0 {GAP if i == 0 else 0}px 0 0"))

    # -- the public face -------------------------------------------------------------
    @property
    def images(self) -> tuple[Any, Any]:
        """``a`` and ``b`` as given."""
        return self._inputs

    @property
    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(width, height) of A and of B, in their own pixels."""
        return self._sizes

    @property
    def frame(self) -> tuple[int, int]:
        """(width, height) of the frame swipe and diff compare in (the size of the image with fewer pixels)."""
        return self._frame

    @property
    def note(self) -> str:
        """What the view says about different sizes ("" when the sizes are equal)."""
        return self._note

    @property
    def changed_share(self) -> float:
        """The share of the frame's pixels that changed (0..1): any channel off by more than 8 of 255."""
        return self._share

    @property
    def differing(self) -> list[str] | None:
        """The request fields that differ, as ``Log.compare`` names them; None when either
        input is a bare image (its fields are unknown)."""
        return None if self._params is None else [p.name for p in self._params if p.differs]

    def __repr__(self) -> str:
        (a, b), (sa, sb) = self._sides, self._sizes
        differ = "fields unknown" if self.differing is None else f"differ: {', '.join(self.differing) or 'nothing'}"
        return (f"<ImageCompare {self.mode}: A {a.label} {sa[0]}×{sa[1]} vs B {b.label} {sb[0]}×{sb[1]}; "
                f"{self._share:.1%} of pixels changed; {differ}>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self._static_html()  # where widgets are off: both pictures and the fields
        return bundle

    # -- state ------------------------------------------------------------------------
    def _show_mode(self, _: Any = None) -> None:
        for name, panel in self._panels.items():
            panel.layout.display = None if name == self.mode else "none"

    def _split(self) -> float:
        """The split in canvas px: where the drag is, else ``position``."""
        return self._drag_x if self._drag_x is not None else self.position * self._view.canvas_width

    # -- pointer and keys (ipycanvas calls these with canvas pixels) --------------------
    def _clamp(self, x: float) -> float:
        return min(max(x, 0.0), float(self._view.canvas_width))

    def _on_down(self, x: float, y: float) -> None:
        self._drag_x = self._clamp(x)  # a press anywhere takes the split there
        self._draw()

    def _on_move(self, x: float, y: float) -> None:
        if self._drag_x is None:
            return  # pointer moves without a drag cost nothing
        self._drag_x = self._clamp(x)
        wait = self._last_draw + DRAW_INTERVAL - time.monotonic()
        if wait <= 0:
            self._draw()
        elif self._pending is None:
            self._draw_later(wait)

    def _draw_later(self, wait: float) -> None:
        """Draw the drag in ``wait`` s on the kernel's loop (where ipywidgets delivers the
        mouse events); with no loop (a test) the release draws it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = loop.call_later(wait, self._draw_if_dragging)

    def _draw_if_dragging(self) -> None:
        self._pending = None
        if self._drag_x is not None:
            self._draw()

    def _on_up(self, x: float, y: float) -> None:
        if self._drag_x is None:
            return
        share = self._clamp(x) / self._view.canvas_width
        self._drag_x = None
        self._set_position(share)

    def _on_key(self, key: str, *modifiers: Any) -> None:
        steps = {"ArrowLeft": self.position - KEY_STEP, "ArrowRight": self.position + KEY_STEP,
                 "Home": 0.0, "End": 1.0}
        if key in steps:
            self._set_position(min(max(steps[key], 0.0), 1.0))

    def _set_position(self, share: float) -> None:
        before = self.position
        self.position = round(share, 4)
        if self.position == before:  # no change, no observer: draw the end of the drag anyway
            self._draw()

    # -- drawing: the canvas is a view of the traits -----------------------------------
    def _source_ready(self) -> None:
        """B's source canvas was made anew in a front end (a reloaded page): fill it again."""
        with hold_canvas():  # the renamer first: the batch names the canvases again (``_canvas_view``)
            self._elsewhere.clear()
            self._fill_source()

    def _redraw_for_new_view(self) -> None:
        with hold_canvas():
            self._elsewhere.clear()
            self._draw()

    def _fill_source(self) -> None:
        """B's pixels onto the source canvas, and the swipe drawn from it, in one batch:
        the front end runs a batch in order, so the swipe waits for B to be decoded."""
        view = self._view
        with hold_canvas():
            self._source.clear()
            self._source.draw_image(self._b_picture, 0, 0, view.canvas_width, view.canvas_height)
            self._swipe_commands()

    def _draw(self) -> None:
        with hold_canvas():
            self._swipe_commands()

    def _swipe_commands(self) -> None:
        """The swipe as it is now: B from the source canvas right of the split, the handle."""
        view, canvas = self._view, self._canvas
        w, h, px = view.canvas_width, view.canvas_height, view.density
        x = self._split()
        if self._pending is not None:  # this draw is the one it was waiting for
            self._pending.cancel()
            self._pending = None
        self._last_draw = time.monotonic()
        self.redraws += 1
        canvas.clear()
        canvas.save()
        canvas.begin_path()
        canvas.rect(x, 0, w - x, h)
        canvas.clip()
        canvas.draw_image(self._source, 0, 0)
        canvas.restore()
        self._draw_labels(canvas, x, w, px)
        self._draw_handle(canvas, x, h, px)

    @staticmethod
    def _draw_labels(canvas: Canvas, x: float, w: float, px: int) -> None:
        canvas.font = f"bold {12 * px}px sans-serif"
        canvas.text_baseline = "middle"
        for text, left, shown in (("A", 8 * px, x > 28 * px), ("B", w - 26 * px, x < w - 28 * px)):
            if shown:
                canvas.fill_style = "rgba(0,0,0,0.55)"
                canvas.fill_rect(left, 8 * px, 18 * px, 18 * px)
                canvas.fill_style = "#ffffff"
                canvas.fill_text(text, left + 5 * px, 17 * px)

    @staticmethod
    def _draw_handle(canvas: Canvas, x: float, h: float, px: int) -> None:
        """A white line with a dark edge, and a round grip with two arrows in the middle."""
        canvas.stroke_style = "rgba(0,0,0,0.5)"
        canvas.line_width = 4 * px
        canvas.stroke_line(x, 0, x, h)
        canvas.stroke_style = "#ffffff"
        canvas.line_width = 2 * px
        canvas.stroke_line(x, 0, x, h)
        y, r = h / 2, 14 * px
        canvas.fill_style = "#ffffff"
        canvas.fill_circle(x, y, r)
        canvas.stroke_style = "rgba(0,0,0,0.6)"
        canvas.line_width = 1.5 * px
        canvas.stroke_circle(x, y, r)
        canvas.fill_style = "#333333"
        a, s = 4 * px, 5 * px
        canvas.fill_polygon([(x - a, y - s), (x - a - s, y), (x - a, y + s)])
        canvas.fill_polygon([(x + a, y - s), (x + a + s, y), (x + a, y + s)])

    # -- text -------------------------------------------------------------------------
    def _caption_html(self, i: int) -> str:
        side, (w, h) = self._sides[i], self._sizes[i]
        remark = f"<br><span style='color:#777'>{esc(side.remark)}</span>" if side.remark else ""
        return (f"<div style='{FONT}'><b>{'AB'[i]}</b> · {label_html(side.label, 48)} · {w}×{h}{remark}</div>")

    def _facts_html(self) -> str:
        parts = [f"<b>{'AB'[i]}</b> {label_html(s.label, 32)} {w}×{h}"
                 for i, (s, (w, h)) in enumerate(zip(self._sides, self._sizes, strict=True))]
        return f"<span style='{FONT};color:#444;margin-left:8px'>{' · '.join(parts)}</span>"

    def _share_html(self) -> str:
        return (f"<div style='{FONT}'><b>{self._share:.1%}</b> of pixels changed "
                f"<span style='color:#666'>(any channel off by more than {CHANGE_LEVEL} of 255; compared at "
                f"{self._frame[0]}×{self._frame[1]}) · dim grey: unchanged, red → yellow: more change</span></div>")

    def _unknown_text(self) -> str:
        unknown = [f"{'AB'[i]} is {s.kind} ({s.label}), not a run" for i, s in enumerate(self._sides)
                   if s.fields is None]
        return "; ".join(unknown) + ": its request fields are unknown" if len(unknown) == 1 else (
            "neither image is a run: their request fields are unknown")

    def _fields_html(self) -> str:
        """The request fields of both, those that differ highlighted (every value escaped)."""
        td = "border:1px solid #ddd;padding:3px 8px;vertical-align:top;max-width:360px;overflow-wrap:anywhere"
        fa, fb = (s.fields for s in self._sides)
        if self._params is not None:
            rows = self._params
            differing = [p.name for p in rows if p.differs]
            head = (f"{len(differing)} field{' differs' if len(differing) == 1 else 's differ'}: "
                    f"{esc(', '.join(differing))}" if differing else "no request field differs")
        elif fa is None and fb is None:
            return f"<div style='{FONT};color:#555'>{esc(self._unknown_text())}</div>"
        else:
            known = differing_params(fa or {}, fb or {})
            rows = [ParamRow(p.name, p.a if fa is not None else "unknown", p.b if fb is not None else "unknown",
                             False) for p in known]
            head = esc(self._unknown_text())
        out = [f"<div class='wan-compare-fields' style='{FONT}'><div style='color:#555;margin:6px 0 4px'>{head}</div>",
               "<table style='border-collapse:collapse'>",
               f"<tr><th style='{td}'></th><th style='{td}'>field</th><th style='{td}'>A</th>"
               f"<th style='{td}'>B</th></tr>"]
        for p in rows:
            style = f"{td};background:#fff1b8;font-weight:600" if p.differs else f"{td};color:#555"
            out.append(f"<tr class='{'differs' if p.differs else 'same'}'><td style='{style}'>"
                       f"{'≠' if p.differs else ''}</td><td style='{style}'>{esc(p.name)}</td>"
                       f"<td style='{style}'>{label_html(p.a, 200)}</td><td style='{style}'>{label_html(p.b, 200)}</td>"
                       "</tr>")
        out.append("</table></div>")
        return "".join(out)

    def _static_html(self) -> str:
        """Both pictures small, the fields that differ and the share changed, for static viewers."""
        figures = []
        for i, data in enumerate(self._thumbs):
            im = Image.open(io.BytesIO(data)).convert("RGB")
            im.thumbnail((FALLBACK_SIDE, FALLBACK_SIDE))
            uri = "data:image/jpeg;base64," + base64.b64encode(jpeg(im, 80)).decode("ascii")
            side, (w, h) = self._sides[i], self._sizes[i]
            figures.append(
                f"<figure style='margin:0 12px 8px 0'><img src='{uri}' width='{im.width}' height='{im.height}' "
                f"alt='image {'AB'[i]}'><figcaption><b>{'AB'[i]}</b> · {esc(short(side.label, 48))} · {w}×{h}"
                "</figcaption></figure>"
            )
        note = f"<div style='color:#8a5a00'>⚠ {esc(self._note)}</div>" if self._note else ""
        return (f"<div class='wan-compare-static' style=\"{FONT}\"><div style='display:flex;flex-wrap:wrap'>"
                f"{''.join(figures)}</div>{note}{self._share_html()}{self._fields_html()}</div>")
