"""``wan.BBoxDrawer``: draw the boxes of an interactive edit on the image itself.

The state is in synced traits: ``bbox_list`` (the document's shape, in the original
image's pixels), ``selected`` and ``message``. Each image is an ``<img>`` (an ipywidgets
``Image``: the browser scales it sharply at any devicePixelRatio, and it is widget state,
so a reloaded page or a static widget renderer shows it with no kernel) under a
transparent ipycanvas ``Canvas`` with the boxes. The canvas is a throwaway view redrawn
from the traits inside ``hold_canvas()`` (one message), and again whenever a front end says
it is ready (ipycanvas keeps no drawing as state). Only ipycanvas' public API is used (its
versions are bounded in pyproject.toml). The geometry is in ``_box_geometry``
(pure, tested without a browser); field rules are the request model's
(``check_bbox_list``).

Traffic: ipycanvas sends every pointer move over a canvas to the kernel (about 100
bytes each; that is its front end, not ours). The drawer ignores them unless a drag
is under way, and then redraws the boxes, at most ``DRAW_INTERVAL`` apart (a move
skipped for being too soon is drawn when the interval ends, so a pointer that stops
is not left ahead of its box);
``bbox_list`` (and so every observer) changes once per finished gesture.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import os
import time
from typing import Any
from urllib.parse import urlsplit

import ipywidgets as widgets
import traitlets
from ipycanvas import Canvas, hold_canvas
from PIL import Image, ImageDraw

from . import _box_geometry as geo
from ._canvas_view import DRAW_INTERVAL, display_copy, jpeg, renamer, stack
from ._exceptions import Problem, RequestError
from ._html_parts import FONT, esc, short
from ._images import expand_inputs
from ._pixels import open_rgb
from ._request import as_lists, boxes_for_one_image, check_bbox_list
from ._store import StoredImage
from ._trait_checks import by_request_rules

COLOURS = ("#ff3b30", "#0a84ff")  # box 1, box 2
FILLS = ("rgba(255,59,48,0.15)", "rgba(10,132,255,0.15)")
FALLBACK_SIDE = 320  # px: the static picture for viewers without widgets
CAP_MESSAGE = f"at most {geo.MAX_BOXES} boxes per image (the API's limit): delete or move one"

DeleteKeys = ("Delete", "Backspace")


def _name(value: Any, index: int) -> str:
    """A short human name for an input image (tab titles, the static view)."""
    if isinstance(value, StoredImage):
        return value.path.name[:12]
    if isinstance(value, str) and "://" in value:
        return os.path.basename(urlsplit(value).path) or value
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.fspath(value))
    return f"image {index + 1}"


class _BoxLists(traitlets.List[Any]):
    """A list trait that lets None ("no boxes") and numpy arrays (boxes computed with numpy)
    through to the drawer's validator: traitlets would refuse them first, with a
    TraitError that is not a RequestError."""

    def validate(self, obj: Any, value: Any) -> Any:
        return super().validate(obj, [] if value is None else as_lists(value))


class BBoxDrawer(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Draw up to 2 boxes per image with the mouse; ``bbox_list`` is what the API takes.

    ``images``: one image or a list (paths, URLs, PIL images, bytes, a ``Result``, a
    ``StoredImage``). Drag on empty space to draw, inside a box to move it, on a corner
    to resize; click to select, Delete/Backspace or the button to remove; Clear empties
    the image shown. ``wan.interactive_edit(prompt, drawer)`` takes images and boxes from it.
    """

    bbox_list: traitlets.TraitType[list[Any], Any] = _BoxLists(
        help="one list of [x1, y1, x2, y2] boxes per image, in original pixels (None or []: none)"
    ).tag(sync=True)
    selected: traitlets.List[int] = traitlets.List(help="[image, box] of the selected box, or []").tag(sync=True)
    message: traitlets.Unicode[str, str | bytes] = traitlets.Unicode(
        "", help="why the last gesture was refused, if it was"
    ).tag(sync=True)

    def __init__(
        self,
        images: Any,
        bbox_list: Any = None,
        max_width: int = 800,
        *,
        max_height: int = 600,
        **kwargs: Any,
    ) -> None:
        inputs = expand_inputs(images if isinstance(images, (list, tuple)) else [images])
        if not inputs:
            raise RequestError([Problem("images", "count", "needs at least one image to draw boxes on")])
        pictures = [open_rgb(value, f"images[{i}]") for i, value in enumerate(inputs)]
        self._inputs = inputs
        self._names = [_name(value, i) for i, value in enumerate(inputs)]
        self._sizes = [im.size for im in pictures]
        self._views = [geo.View.fit(w, h, max_width, max_height) for w, h in self._sizes]
        shown = [display_copy(im, v) for im, v in zip(pictures, self._views, strict=True)]
        del pictures  # the originals can be large; only their display copies are kept
        self._displayed = [data for data, _ in shown]
        self._drag: tuple[int, geo.Drag] | None = None
        self._shape: geo.Box | None = None  # the dragged box as it is now
        self._refused: tuple[int, float, float] | None = None  # a press that could not start a box
        self._last_draw = 0.0
        self._pending: asyncio.TimerHandle | None = None  # a skipped move's redraw, due at the interval's end
        self.redraws = 0  # how many times a boxes canvas was drawn (traffic back to the browser)
        self._canvases = [self._boxes_canvas(i, v) for i, v in enumerate(self._views)]
        # Never shown: drawn on just before a new view's redraw (see _redraw_for_new_view).
        self._elsewhere = renamer()
        stacks = [
            stack(widgets.Image(value=data, format=fmt), canvas, view)
            for (data, fmt), canvas, view in zip(shown, self._canvases, self._views, strict=True)
        ]
        super().__init__(children=[self._pages(stacks), *self._controls()], **kwargs)
        self.add_class("wan-bbox")
        self.observe(self._boxes_changed, "bbox_list")
        self.observe(self._selection_changed, "selected")
        self.observe(self._show_message, "message")
        self.bbox_list = [[] for _ in inputs] if bbox_list is None else bbox_list
        for i in range(len(self._canvases)):
            self._draw_boxes(i)
        self._show_status()

    def _boxes_canvas(self, i: int, view: geo.View) -> Canvas:
        """Image ``i``'s transparent canvas: it gets the pointer and the keys, and shows the boxes."""
        canvas = Canvas(width=view.canvas_width, height=view.canvas_height)
        canvas.add_class("wan-bbox-canvas")
        canvas.on_mouse_down(functools.partial(self._on_down, i))
        canvas.on_mouse_move(functools.partial(self._on_move, i))
        canvas.on_mouse_up(functools.partial(self._on_up, i))
        canvas.on_mouse_out(functools.partial(self._on_out, i))
        canvas.on_key_down(functools.partial(self._on_key, i))
        canvas.on_client_ready(functools.partial(self._redraw_for_new_view, i))
        return canvas

    def _redraw_for_new_view(self, i: int) -> None:
        """A view appeared (a second display, a reloaded page): it starts blank.

        ipycanvas sends its draw commands to one manager, which tells the browser which
        canvas they are for only when that changes (jupyter-widgets-contrib/ipycanvas#322,
        open); a reloaded page's new front end never heard the last change and would drop
        every drawing until the next one. So the redraw first draws (a clear) on a canvas
        that is never shown: the manager then names this canvas again, in the same
        message. If ipycanvas ever names the canvas every time, this costs one tiny command."""
        with hold_canvas():  # the drawing below holds too: everything goes when this block ends
            self._elsewhere.clear()
            self._draw_boxes(i)

    def _pages(self, stacks: list[widgets.GridBox]) -> widgets.Widget:
        """One image alone, or one tab per image."""
        self._tab: widgets.Tab | None = None
        if len(stacks) == 1:
            return stacks[0]
        titles = [f"{i + 1}: {short(n, 16)}" for i, n in enumerate(self._names)]  # sizes are in the status
        self._tab = widgets.Tab(children=stacks, titles=titles)
        self._tab.observe(lambda _: self._show_status(), "selected_index")
        return self._tab

    def _controls(self) -> list[widgets.Widget]:
        """The buttons and the status line, and the message line under them."""
        self._delete_button = widgets.Button(
            description="Delete box", icon="trash", disabled=True, tooltip="remove the selected box (or press Delete)"
        )
        self._clear_button = widgets.Button(description="Clear", icon="eraser", tooltip="remove this image's boxes")
        self._delete_button.on_click(lambda _: self._delete_selected())
        self._clear_button.on_click(lambda _: self._clear())
        self._status = widgets.HTML()
        self._status.add_class("wan-bbox-status")
        self._message = widgets.HTML()
        self._message.add_class("wan-bbox-message")
        return [widgets.HBox([self._delete_button, self._clear_button, self._status]), self._message]

    # -- the public face -------------------------------------------------------------
    @property
    def images(self) -> list[Any]:
        """The input images as given (a ``Result`` stands for its images), in order."""
        return list(self._inputs)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(width, height) of each image in its original pixels."""
        return list(self._sizes)

    def __repr__(self) -> str:
        parts = [f"{w}×{h}: {boxes}" for (w, h), boxes in zip(self._sizes, self.bbox_list, strict=True)]
        return f"<BBoxDrawer {len(self._sizes)} image(s); bbox_list {'; '.join(parts)}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self._static_html()  # where widgets are off: a picture and the numbers
        return bundle

    # -- state ------------------------------------------------------------------------
    @traitlets.validate("bbox_list")
    def _valid_boxes(self, proposal: dict[str, Any]) -> list[list[list[int]]]:
        value = proposal["value"]
        if not value:  # None or []: "no boxes", said shortly
            value = [[] for _ in self._sizes]
        elif len(self._sizes) == 1:
            value = boxes_for_one_image(value)
        checked = by_request_rules(lambda: check_bbox_list(value, self._sizes, min_boxes=0))
        return [[list(box) for box in boxes] for boxes in checked]

    def _boxes(self, i: int) -> list[geo.Box]:
        return [(b[0], b[1], b[2], b[3]) for b in self.bbox_list[i]]

    def _set_boxes(self, i: int, boxes: list[geo.Box]) -> None:
        new = [list(map(list, bs)) for bs in self.bbox_list]
        new[i] = [list(b) for b in boxes]
        self.bbox_list = new

    def _current(self) -> int:
        return (self._tab.selected_index or 0) if self._tab is not None else 0

    def _boxes_changed(self, change: dict[str, Any]) -> None:
        old, new = change["old"] or [], change["new"]
        if self.selected and (self.selected[0] >= len(new) or self.selected[1] >= len(new[self.selected[0]])):
            self.selected = []
        for i in range(len(new)):
            if i >= len(old) or old[i] != new[i]:
                self._draw_boxes(i)
        self._show_status()

    def _selection_changed(self, change: dict[str, Any]) -> None:
        touched = {sel[0] for sel in (change["old"], change["new"]) if sel}
        for i in touched:
            self._draw_boxes(i)
        self._delete_button.disabled = not self.selected

    def _show_message(self, change: dict[str, Any]) -> None:
        text = change["new"]
        self._message.value = f"<span style='color:#b3261e'>⚠ {esc(text)}</span>" if text else ""

    def _show_status(self) -> None:
        i = self._current()
        w, h = self._sizes[i]
        boxes = self.bbox_list[i] if i < len(self.bbox_list) else []
        listed = (
            " · ".join(
                f"<span style='color:{COLOURS[j % 2]}'>box {j + 1}</span> {esc(box)}" for j, box in enumerate(boxes)
            )
            or "drag on the image to draw a box"
        )
        zoom = self._views[i].zoom
        self._status.value = (
            f"<span style='{FONT}'>{w}×{h} px shown at {zoom:.0%} · {listed} "
            f"<span style='color:#777'>(at most {geo.MAX_BOXES})</span></span>"
        )

    # -- pointer and keys (ipycanvas calls these with canvas pixels) --------------------
    def _on_down(self, i: int, x: float, y: float) -> None:
        self._drag = None
        self._refused = None
        drag = geo.start_drag(self._views[i], self._boxes(i), x, y)
        if drag is None:  # no room for a third box; said only if this becomes a real drag
            self._refused = (i, x, y)
            self.selected = []
            return
        self.message = ""
        self._drag = (i, drag)
        self._shape = drag.box
        self.selected = [] if drag.kind == "new" else [i, drag.index]

    def _on_move(self, i: int, x: float, y: float) -> None:
        if self._refused is not None:
            self._note_refusal(i, x, y)
            return
        if self._drag is None or self._drag[0] != i:
            return  # pointer moves without a drag cost nothing
        self._shape = geo.drag_to(self._views[i], self._drag[1], x, y)
        wait = self._last_draw + DRAW_INTERVAL - time.monotonic()
        if wait <= 0:
            self._draw_boxes(i)
        elif self._pending is None:
            self._draw_later(i, wait)

    def _draw_later(self, i: int, wait: float) -> None:
        """Draw the drag in ``wait`` s, on the kernel's event loop (where ipywidgets
        delivers the mouse events). With no loop (a script, a test) the release draws it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = loop.call_later(wait, self._draw_if_dragging, i)

    def _draw_if_dragging(self, i: int) -> None:
        self._pending = None
        if self._drag is not None and self._drag[0] == i:
            self._draw_boxes(i)

    def _on_up(self, i: int, x: float, y: float) -> None:
        self._end(i, x, y)

    def _on_out(self, i: int, x: float, y: float) -> None:
        # ipycanvas does not see a button released outside its canvas: a drag ends
        # where the pointer leaves (clamped to the image), so no box follows the mouse.
        self._end(i, x, y)

    def _end(self, i: int, x: float, y: float) -> None:
        if self._refused is not None:
            self._note_refusal(i, x, y)
            self._refused = None
            return
        if self._drag is None or self._drag[0] != i:
            return
        drag = self._drag[1]
        shape = geo.drag_to(self._views[i], drag, x, y)
        self._drag, self._shape = None, None
        boxes = geo.finish(self._boxes(i), drag, shape)
        self._set_boxes(i, boxes)
        if drag.kind == "new" and shape is not None:
            self.selected = [i, len(boxes) - 1]
        self._draw_boxes(i)  # the final shape, even when the boxes did not change

    def _note_refusal(self, i: int, x: float, y: float) -> None:
        assert self._refused is not None
        ri, rx, ry = self._refused
        if ri == i and max(abs(x - rx), abs(y - ry)) >= geo.MIN_BOX_PX * self._views[i].density:
            self.message = CAP_MESSAGE

    def _on_key(self, i: int, key: str, *modifiers: Any) -> None:
        if key in DeleteKeys:
            self._delete_selected()
        elif key == "Escape":
            self._drag = self._shape = self._refused = None
            self.selected = []
            self._draw_boxes(i)

    def _delete_selected(self) -> None:
        if not self.selected:
            return
        i, j = self.selected
        boxes = self._boxes(i)
        del boxes[j]
        self.selected = []
        self.message = ""
        self._set_boxes(i, boxes)

    def _clear(self) -> None:
        i = self._current()
        self.selected = []
        self.message = ""
        self._set_boxes(i, [])

    # -- drawing: the canvases are views of the traits ---------------------------------
    def _draw_boxes(self, i: int) -> None:
        view, canvas = self._views[i], self._canvases[i]
        boxes = self._boxes(i)
        drag_here = self._drag is not None and self._drag[0] == i
        if self._drag is not None and drag_here:
            boxes = geo.finish(boxes, self._drag[1], self._shape)
        selected = self.selected[1] if self.selected and self.selected[0] == i else None
        px = view.density  # sizes below are in screen pixels
        if self._pending is not None and drag_here:  # this draw is the one it was waiting for
            self._pending.cancel()
            self._pending = None
        self._last_draw = time.monotonic()
        self.redraws += 1
        with hold_canvas():
            canvas.clear()
            for j, box in enumerate(boxes):
                x1, y1, x2, y2 = view.to_canvas(box)
                colour = COLOURS[j % 2]
                canvas.fill_style = FILLS[j % 2]
                canvas.fill_rect(x1, y1, x2 - x1, y2 - y1)
                canvas.stroke_style = colour
                canvas.line_width = (3 if j == selected else 2) * px
                canvas.stroke_rect(x1, y1, x2 - x1, y2 - y1)
                side = (9 if j == selected else 6) * px
                canvas.fill_style = colour
                for hx, hy in ((x1, y1), (x2, y1), (x1, y2), (x2, y2)):
                    canvas.fill_rect(hx - side / 2, hy - side / 2, side, side)
                canvas.font = f"bold {14 * px}px sans-serif"
                canvas.fill_text(str(j + 1), x1 + 6 * px, y1 + 18 * px)

    def _static_html(self) -> str:
        """A small picture per image with its boxes, and the numbers, for static viewers."""
        parts = []
        for i, (data, view) in enumerate(zip(self._displayed, self._views, strict=True)):
            im = Image.open(io.BytesIO(data))
            im.thumbnail((FALLBACK_SIDE, FALLBACK_SIDE))
            draw = ImageDraw.Draw(im)
            sx, sy = im.width / view.width, im.height / view.height
            boxes = self.bbox_list[i]
            for j, (x1, y1, x2, y2) in enumerate(boxes):
                draw.rectangle((x1 * sx, y1 * sy, x2 * sx, y2 * sy), outline=COLOURS[j % 2], width=2)
            uri = "data:image/jpeg;base64," + base64.b64encode(jpeg(im, 80)).decode("ascii")
            listed = "<br>".join(f"box {j + 1}: {esc(box)}" for j, box in enumerate(boxes)) or "no box"
            parts.append(
                f"<figure style='margin:0 12px 8px 0'><img src='{uri}' width='{im.width}' height='{im.height}' "
                f"alt='boxes on image {i + 1}'><figcaption>{esc(self._names[i])} "
                f"({view.width}×{view.height})<br>{listed}</figcaption></figure>"
            )
        return f"<div class='wan-bbox-static' style=\"{FONT};display:flex;flex-wrap:wrap\">{''.join(parts)}</div>"
