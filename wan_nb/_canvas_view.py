"""What a picture-with-a-canvas widget needs (the drawer, the swipe compare), in one place.

The picture goes to the browser once, as an ``<img>`` (widget state: a reloaded page
shows it at once); a transparent ipycanvas canvas over it carries what is drawn, redrawn
from traits at most ``DRAW_INTERVAL`` apart while the mouse drags.

A reloaded page: ipycanvas sends draw commands through one manager that names the target
canvas only when it changes (jupyter-widgets-contrib/ipycanvas#322, open), so a new front
end would drop a redraw for the canvas named last. ``Renamer.clear()`` inside the same
``hold_canvas()`` draws on a never-shown 1×1 canvas first, so the batch names the real
canvas again; public API only, one tiny command if ipycanvas ever names it every time.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
from ipycanvas import Canvas
from PIL import Image

from . import _box_geometry as geo

DRAW_INTERVAL = 1 / 30  # s between redraws while dragging: bounds what goes back to the browser
DISPLAY_QUALITY = 88  # JPEG quality of the picture sent to the browser (once per image)


def renamer() -> Canvas:
    """A never-shown canvas: ``.clear()`` it inside ``hold_canvas()`` before a new view's redraw."""
    return Canvas(width=1, height=1)


def jpeg(im: Image.Image, quality: int = DISPLAY_QUALITY) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def display_copy(im: Image.Image, view: geo.View) -> tuple[bytes, str]:
    """The picture the browser shows, and its format: as many pixels as the canvas has
    (sharp on HiDPI screens) but never more than the original; a tiny image enlarged by
    whole factors with square pixels (PNG), not smoothed into a blur."""
    if view.enlarged:
        buf = io.BytesIO()
        im.resize((view.canvas_width, view.canvas_height), Image.Resampling.NEAREST).save(buf, "PNG")
        return buf.getvalue(), "png"
    if view.canvas_width < im.width:
        im = im.resize((view.canvas_width, view.canvas_height), Image.Resampling.LANCZOS)
    return jpeg(im), "jpeg"


def stack(picture: widgets.Image, canvas: Canvas, view: geo.View) -> widgets.GridBox:
    """The picture with the boxes canvas over it, both filling one grid cell: shown at the
    view's screen size, or narrower (both together) when the output area is."""
    for w in (picture, canvas):
        w.layout = widgets.Layout(width="100%", height="auto", margin="0", grid_area="stack")
    return widgets.GridBox(
        [picture, canvas],
        layout=widgets.Layout(width=f"{view.screen_width}px", max_width="100%",
                              grid_template_areas='"stack"', grid_template_columns="minmax(0, 1fr)"),
    )
