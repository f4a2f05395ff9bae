"""The bbox drawer's geometry, with no widget in sight: display scale, hit-testing,
drawing, moving and resizing boxes.

Boxes are always ``(x1, y1, x2, y2)`` ints in the *original* image's pixels (what the
API reads), clamped to the image, with x1 < x2 and y1 < y2. Pointer positions come in
canvas pixels; ``View`` maps between the two. Keeping this pure is what lets every
rule of the drawer be tested without a browser.

Three sizes meet here: the image's pixels, the screen (CSS) pixels the canvas takes on
the page, and the canvas's own pixels, ``DENSITY`` per screen pixel so that boxes and
the picture stay sharp on HiDPI screens (devicePixelRatio 2). Sizes a hand feels (a
corner's grab zone, a stray click) are in screen pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from . import _spec

Box = tuple[int, int, int, int]
Part = Literal["nw", "ne", "sw", "se", "inside"]
DragKind = Literal["new", "move", "resize"]

HANDLE_PX = 8  # screen px around a corner that grab it for resizing
MIN_BOX_PX = 5  # screen px: a drag smaller than this on either side is a stray click, not a box
DENSITY = 2  # canvas px per screen px: sharp at devicePixelRatio 2, still exact at 1
MIN_SIDE = 256  # screen px: a smaller image is enlarged by whole factors to about this, to be drawable
MAX_BOXES = _spec.MAX_BOXES_PER_IMAGE


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(v, hi))


@dataclass(frozen=True)
class View:
    """An image of ``width`` × ``height`` pixels shown on a canvas of ``canvas_width`` ×
    ``canvas_height`` pixels, ``density`` of them per screen pixel: the image fills the
    canvas, one scale, no margin."""

    width: int
    height: int
    canvas_width: int
    canvas_height: int
    density: int = 1

    @classmethod
    def fit(cls, width: int, height: int, max_width: int, max_height: int, density: int = DENSITY) -> View:
        """Shown at most ``max_width`` × ``max_height`` screen px. A large image is shrunk; a
        tiny one is enlarged by a whole factor (each pixel a crisp square) until its longer
        side is about ``MIN_SIDE``; any other is shown at its own size."""
        room = min(max_width / width, max_height / height)
        zoom = room if room < 1 else max(1, min(math.floor(room), math.ceil(MIN_SIDE / max(width, height))))
        screen_w, screen_h = max(1, round(width * zoom)), max(1, round(height * zoom))
        return cls(width, height, screen_w * density, screen_h * density, density)

    @property
    def screen_width(self) -> int:
        return self.canvas_width // self.density

    @property
    def screen_height(self) -> int:
        return self.canvas_height // self.density

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel (what "shown at 50%" says)."""
        return self.screen_width / self.width

    @property
    def enlarged(self) -> int:
        """The whole factor a tiny image is enlarged by on screen; 0 when it is not enlarged."""
        return self.screen_width // self.width if self.screen_width > self.width else 0

    @property
    def scale(self) -> float:
        """Canvas pixels per image pixel."""
        return self.canvas_width / self.width

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """A canvas point in image pixels, clamped to the image (a pointer may be outside)."""
        return (
            _clamp(x * self.width / self.canvas_width, 0, self.width),
            _clamp(y * self.height / self.canvas_height, 0, self.height),
        )

    def to_canvas(self, box: Box) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        sx, sy = self.canvas_width / self.width, self.canvas_height / self.height
        return x1 * sx, y1 * sy, x2 * sx, y2 * sy


@dataclass(frozen=True)
class Drag:
    """A gesture under way: drawing a new box, moving or resizing box ``index``."""

    kind: DragKind
    index: int
    start: tuple[float, float]  # image px where the button went down
    box: Box | None = None  # the box as it was before the gesture (move / resize)
    corner: Part | None = None  # the corner held (resize)


def part_at(view: View, boxes: list[Box], x: float, y: float) -> tuple[int, Part] | None:
    """The box and part under canvas point (x, y): corners first, then insides, the
    last-drawn box first (it is drawn on top)."""
    grab = HANDLE_PX * view.density
    for i in reversed(range(len(boxes))):
        cx1, cy1, cx2, cy2 = view.to_canvas(boxes[i])
        corners: dict[Part, tuple[float, float]] = {
            "nw": (cx1, cy1),
            "ne": (cx2, cy1),
            "sw": (cx1, cy2),
            "se": (cx2, cy2),
        }
        for name, (hx, hy) in corners.items():
            if abs(x - hx) <= grab and abs(y - hy) <= grab:
                return i, name
    for i in reversed(range(len(boxes))):
        cx1, cy1, cx2, cy2 = view.to_canvas(boxes[i])
        if cx1 <= x <= cx2 and cy1 <= y <= cy2:
            return i, "inside"
    return None


def start_drag(view: View, boxes: list[Box], x: float, y: float) -> Drag | None:
    """The gesture a button press at canvas (x, y) starts; None when it would draw a box
    the image has no room for (the document's limit of 2 per image)."""
    start = view.to_image(x, y)
    hit = part_at(view, boxes, x, y)
    if hit is None:
        return Drag("new", len(boxes), start) if len(boxes) < MAX_BOXES else None
    index, part = hit
    if part == "inside":
        return Drag("move", index, start, boxes[index])
    return Drag("resize", index, start, boxes[index], part)


def drag_to(view: View, drag: Drag, x: float, y: float) -> Box | None:
    """The box a gesture gives with the pointer at canvas (x, y) (outside the canvas is
    clamped); None while a new box is still too small to be one."""
    px, py = view.to_image(x, y)
    if drag.kind == "new":
        sx, sy = drag.start
        w_canvas = abs(px - sx) * view.scale
        h_canvas = abs(py - sy) * (view.canvas_height / view.height)
        if min(w_canvas, h_canvas) < MIN_BOX_PX * view.density:
            return None
        return normalized(view, (round(sx), round(sy), round(px), round(py)))
    assert drag.box is not None
    dx, dy = round(px - drag.start[0]), round(py - drag.start[1])  # a click (no motion) changes nothing
    if drag.kind == "move":
        return moved(view, drag.box, dx, dy)
    assert drag.corner is not None and drag.corner != "inside"
    return resized(view, drag.box, drag.corner, dx, dy)


def normalized(view: View, box: tuple[int, int, int, int]) -> Box:
    """Corners in order (top-left, bottom-right), inside the image, at least 1 px each way."""
    x1, y1, x2, y2 = box
    x1, x2 = sorted((int(_clamp(x1, 0, view.width)), int(_clamp(x2, 0, view.width))))
    y1, y2 = sorted((int(_clamp(y1, 0, view.height)), int(_clamp(y2, 0, view.height))))
    if x1 == x2:
        x1, x2 = (x1, x1 + 1) if x1 < view.width else (x1 - 1, x1)
    if y1 == y2:
        y1, y2 = (y1, y1 + 1) if y1 < view.height else (y1 - 1, y1)
    return x1, y1, x2, y2


def moved(view: View, box: Box, dx: int, dy: int) -> Box:
    """``box`` shifted by (dx, dy) image px, its size kept, stopped at the image's edges."""
    x1, y1, x2, y2 = box
    dx = int(_clamp(dx, -x1, view.width - x2))
    dy = int(_clamp(dy, -y1, view.height - y2))
    return x1 + dx, y1 + dy, x2 + dx, y2 + dy


def resized(view: View, box: Box, corner: Part, dx: int, dy: int) -> Box:
    """``box`` with ``corner`` moved by (dx, dy) image px, stopped at the image's edges;
    dragging past the opposite corner flips the box rather than breaking it."""
    x1, y1, x2, y2 = box
    if corner in ("nw", "sw"):
        x1 += dx
    else:
        x2 += dx
    if corner in ("nw", "ne"):
        y1 += dy
    else:
        y2 += dy
    return normalized(view, (x1, y1, x2, y2))


def finish(boxes: list[Box], drag: Drag, shape: Box | None) -> list[Box]:
    """The image's boxes once a gesture ends with ``shape`` (None: nothing changes)."""
    if shape is None:
        return list(boxes)
    if drag.kind == "new":
        return [*boxes, shape][:MAX_BOXES]
    out = list(boxes)
    out[drag.index] = shape
    return out
