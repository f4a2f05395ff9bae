"""A sweep's live grid: one small widget per cell, sent only when that cell changes.

Re-sending the whole grid on each change costs the square of its size (a 16-cell
sweep sent 6 MB for 0.4 MB of thumbnails) and makes every update wait for a redraw
of everything. Here the grid is an ``ipywidgets.GridBox`` of label and cell
``HTML`` widgets: a cell's HTML (its placeholder, its reason, or its thumbnail) goes
to the browser when that cell changes, so each thumbnail is sent once, as soon as
its run is complete, and saved once in the notebook (in the widget state). The
lines above the grid (title, progress, legend) are one more widget, updated at most
every ``HEADER_SECONDS``.

Rendering happens on one drawer thread per view, never on the event loop that
drives the tasks: ``changed(index)`` only marks a cell and wakes the drawer.
The look is the static table's (``_grid``: the same styles and item HTML).

Each finished cell can be rated where it is shown: under each row of cells is a row of
star controls (``_stars.StarRating``, one widget per cell, made with the grid, so the grid's
children are never sent again and nothing moves when one appears). A control is hidden by
the stylesheet until its cell is done; the done cell's own HTML (sent anyway, with its
thumbnail) carries the one CSS rule that shows it, so a cell costs no message more than
before its stars (a message is about 0.7 kB of envelope). A click writes through ``Log.rate``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets
from ipywidgets.widgets.widget_string import HTMLStyle

from . import _states as S
from ._grid import (
    COL_LABEL_STYLE,
    ROW_LABEL_STYLE,
    TD_STYLE,
    TH_STYLE,
    Cell,
    cell_body_html,
    cell_items,
    cell_key,
    corner_html,
    grid_header_html,
)
from ._html_parts import FONT, label_html
from ._stars import CLASS, STARS_CSS, StarRating
from ._tiles import item_css

if TYPE_CHECKING:
    from ._sweep import Sweep

HEADER_SECONDS = 0.5  # the progress line is redrawn at most this often (cells: at once)
# A held submit is queued or processing, unknown which, and a download takes a moment: both
# read "running", so a cell sends one message when it starts and one when it is done.
LIVE_LABEL = {S.SUBMITTED: "running", S.DOWNLOADING: "running", "finishing": "running"}

log = logging.getLogger("wan_nb")


SCOPE = ".wan-live"  # the stylesheet (sent once, in the header) applies inside the view only
CELL_CSS = f"{SCOPE} .wan-cell{{{FONT};color:#222;{TD_STYLE};height:100%;box-sizing:border-box}}"
# a cell's stars: centred under it, hidden until the cell's HTML says it is done
HIDDEN_STARS_CSS = f"{SCOPE} .{CLASS}{{visibility:hidden;justify-self:center;margin:1px 0}}"


def _box(style: str, body: str, attrs: str = "") -> str:
    return f'<div{attrs} style="{FONT};color:#222;{style};height:100%;box-sizing:border-box">{body}</div>'


class LiveGrid:
    """The live view of one sweep; ``widget`` is what the notebook shows."""

    def __init__(self, sweep: Sweep, link_base: str | None = None) -> None:
        self.sweep = sweep
        self.link_base = link_base
        lay = sweep.layout()
        self.keys = lay.keys
        self.members: dict[tuple[Any, ...], list[int]] = {}
        for index, key in lay.keys.items():
            self.members.setdefault(key, []).append(index)
        self.legend = lay.legend
        self._uid = uuid.uuid4().hex[:10]  # names this view's star controls in CSS
        # widgets share one Layout and one style: a saved notebook stores each once
        shared = ipywidgets.Layout(margin="0", width="auto")
        style = HTMLStyle()

        def html(value: str, layout: ipywidgets.Layout = shared) -> ipywidgets.HTML:
            return ipywidgets.HTML(value=value, layout=layout, style=style)

        self.header = html(self._header_html())
        self.message = html("")  # a rating the log refused says why here
        # a row label spans its row of cells and the row of star controls under it (grid_area: ipywidgets
        # 8.1's front end does not apply grid_row, seen in JupyterLab 4.6)
        row_label = ipywidgets.Layout(margin="0", width="auto", grid_area="span 2 / auto")
        stars_style = ipywidgets.ToggleButtonsStyle(button_width="20px")
        children = [html(_box(f"{TH_STYLE};color:#777;font-weight:normal", corner_html(lay.rows, lay.col_name)))]
        children += [html(_box(COL_LABEL_STYLE, label_html(cv, 160), ' data-wan-col=""')) for cv in lay.col_values]
        self.cells: dict[tuple[Any, ...], ipywidgets.HTML] = {}
        self.stars: dict[int, StarRating] = {}  # sweep cell index -> its star control
        for rv in lay.row_values:
            children.append(html(_box(ROW_LABEL_STYLE, label_html(rv, 240), ' data-wan-row=""'), row_label))
            for cv in lay.col_values:
                key = cell_key(rv, cv)
                cell = self.cells[key] = html(self._cell_html(key))
                children.append(cell)
            for cv in lay.col_values:
                controls = []
                for index in self.members.get(cell_key(rv, cv), []):
                    control = self.stars[index] = StarRating(message=self.message, layout=shared,
                                                             style=stars_style, classes=(self._stars_class(index),))
                    controls.append(control)
                # one widget per grid position keeps the rows aligned (a position with several runs: a box)
                children.append(controls[0] if len(controls) == 1 else ipywidgets.VBox(controls, layout=shared))
        self.box = ipywidgets.GridBox(children, layout=ipywidgets.Layout(
            grid_template_columns=f"auto repeat({len(lay.col_values)}, auto)", grid_gap="0", width="max-content"))
        # sent once; cells send class names
        sheet = html(f"<style>{CELL_CSS}{item_css(SCOPE)}{STARS_CSS}{HIDDEN_STARS_CSS}</style>")
        self.widget = ipywidgets.VBox([sheet, self.header, self.box, self.message],
                                      layout=ipywidgets.Layout(width="auto"))
        self.widget.add_class("wan-grid")
        self.widget.add_class(SCOPE[1:])
        for key in self.cells:  # cells done before the grid was shown (a sweep run again) can be rated at once
            self._show_stars(key)
        self._dirty: set[tuple[Any, ...]] = set()
        self._header_due = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._drawer: threading.Thread | None = None
        self._last_header = time.monotonic()

    # -- what each widget shows ---------------------------------------------------
    def _header_html(self) -> str:
        body = grid_header_html(f"sweep {self.sweep.id}", self.sweep.progress_line(), self.legend)
        return f'<div style="{FONT};color:#222">{body}</div>'

    def _cell_html(self, key: tuple[Any, ...]) -> str:
        indexes = self.members.get(key, [])
        items = [dataclasses.replace(item, status=LIVE_LABEL.get(item.status, item.status))
                 for i in indexes for item in cell_items(self.sweep.cells[i])]
        body = cell_body_html(Cell(items) if indexes else None, self.link_base, inline=False)
        done = "".join(f"{SCOPE} .{CLASS}.{self._stars_class(i)}{{visibility:visible}}"
                       for i in indexes if self.sweep.cells[i].result is not None)
        shown = f"<style>{done}</style>" if done else ""  # its stars appear with its picture
        return f'<div class="wan-cell" data-wan-cell="">{body}{shown}</div>'

    def _stars_class(self, index: int) -> str:
        return f"{CLASS}-{self._uid}-{index}"

    # -- updates ------------------------------------------------------------------
    def changed(self, index: int | None = None, force: bool = False) -> None:
        """Cell ``index`` (None: only the progress) changed; ``force``: draw the header now too.
        Cheap and thread-safe: the drawer thread renders and sends."""
        with self._lock:
            if index is not None and index in self.keys:
                self._dirty.add(self.keys[index])
            self._header_due = True
            if force:
                self._last_header = 0.0
            if self._drawer is None:
                self._drawer = threading.Thread(target=self._draw_loop, name=f"wan_nb-view-{self.sweep.id}",
                                                daemon=True)
                self._drawer.start()
        self._wake.set()

    def _draw_loop(self) -> None:
        while True:
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                header = self._header_due and time.monotonic() - self._last_header >= HEADER_SECONDS
                if header:
                    self._header_due = False
                if not dirty and not self._header_due and not header:
                    self._drawer = None
                    return
                self._wake.clear()
            for key in dirty:
                self._set(self.cells[key], lambda k=key: self._cell_html(k))  # type: ignore[misc]
                self._show_stars(key)
            if header:
                self._set(self.header, self._header_html)
                self._last_header = time.monotonic()
            elif not dirty:  # only a header change, inside the throttle: wait for it or for a cell
                self._wake.wait(max(0.0, HEADER_SECONDS - (time.monotonic() - self._last_header)))

    def _set(self, widget: ipywidgets.HTML, render: Callable[[], str]) -> None:
        try:
            value = render()
            if value != widget.value:  # a trait set sends a message: only real changes
                widget.value = value
        except Exception:  # a view must never take the sweep down; the next change redraws
            log.exception("redrawing the live view of sweep %s failed", self.sweep.id)

    def _show_stars(self, key: tuple[Any, ...]) -> None:
        """A finished cell's star control rates its run, showing the rating the log has (read
        here, on the drawer's thread; sent only when the run is rated: a sweep run again)."""
        for index in self.members.get(key, []):
            control, result = self.stars.get(index), self.sweep.cells[index].result
            if control is None or result is None or control.run_id == result.run_id:
                continue
            try:
                control.attach(result.log, result.run_id)
                control.read()
            except Exception:  # a view must never take the sweep down; the next change redraws
                log.exception("showing the stars of cell %s of sweep %s failed", index, self.sweep.id)

    def wait_drawn(self, timeout: float = 5.0) -> bool:
        """Block until every change so far has been sent (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self._drawer is None:
                    return True
            time.sleep(0.01)
        return False

    def mimebundle(self) -> dict[str, Any]:
        return self.widget._repr_mimebundle_() or {}
