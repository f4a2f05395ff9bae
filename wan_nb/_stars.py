"""A star control: rate a run 1-5 where it is shown (the explorer's tiles and details, a form's
result, a live sweep's cells).

One widget per control, an ``ipywidgets.ToggleButtons`` of five buttons labelled "1 star" …
"5 stars": the live grid has one per cell, so a cell costs one more model, not five (a notebook
saves every model it shows). Each button's text is its accessible name and its title ("4
stars"), so screen readers, keyboard and mouse users are told the same; the buttons take the
focus and Enter or Space clicks them. A stylesheet (``STARS_CSS``, sent once per view by
``stylesheet()``) draws each button's text as a star (the text stays in the page for screen
readers: font size 0, the drawn star's own alternative text empty) and lights the stars up to
the selected one (``:has``; a browser without it lights the selected star only). Without the
stylesheet the buttons read "1 star" … "5 stars", still usable.

A click on star k rates the run k; a click on the lit k (the rating now) clears it. ipywidgets'
front end selects the button itself (the index) and then sends a "click" message, even when
the index did not change: that message is how a second click on the same star is heard. A
rating is shown by that selection, which the clicked view made itself, so the view is not
redrawn and the focus stays on the star (ipywidgets 8.1 redraws all the buttons on any change
that comes from the kernel: clearing, or another view's rating, moves the focus away).
Every rating is written through ``Log.rate`` (one place, its rules in ``_curation``); a
refused write shows its reason in ``message`` and the control shows the rating the log has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._curation import MAX_STARS, check_stars
from ._exceptions import RequestError
from ._html_parts import FONT, esc
from ._values import is_missing

if TYPE_CHECKING:
    from ._log import Log  # annotations only: the control is given the log that holds its run

log = logging.getLogger("wan_nb")

CLASS = "wan-stars"
LABELS = tuple(f"{k} star{'s' if k != 1 else ''}" for k in range(1, MAX_STARS + 1))
LIT, UNLIT, HOVER = "#e0a100", "#c4c4c4", "#f2c94c"
_B = f".{CLASS} div>button.widget-toggle-button"  # one star (the buttons' group is a div)
STARS_CSS = (
    f"{_B}{{font-size:0;width:20px;height:22px;min-width:0;padding:0;margin:0;border:0;background:none;"
    f"box-shadow:none;color:{UNLIT};line-height:22px;cursor:pointer}}"
    f'{_B}::before{{content:"★";content:"★" / "";font-size:18px}}'  # drawn, not read: the text is the name
    f"{_B}.mod-active{{color:{LIT}}}"  # the selected star, where :has is unknown
    # the stars up to the selected one (a rule of its own: a browser without :has drops only it)
    f".{CLASS} div:has(>.mod-active)>button.widget-toggle-button{{color:{LIT}}}"
    f"{_B}.mod-active~button.widget-toggle-button{{color:{UNLIT}}}"
    # hovering previews what a click gives: the stars up to the pointer
    f".{CLASS} div:hover>button.widget-toggle-button{{color:{HOVER}}}"
    f"{_B}:hover~button.widget-toggle-button{{color:{UNLIT}}}"
    # no box from ipywidgets' hover/active button styles; no ring after a mouse click (the keyboard's is drawn)
    f"{_B}:hover,{_B}:active,{_B}:focus{{box-shadow:none;background:none;outline:none}}"
    f"{_B}:focus-visible{{outline:2px solid #1a73e8;outline-offset:-2px}}"
)

# What a listener hears after a rating landed in the log: (run id, stars or None).
Listener = Callable[[str, "int | None"], None]


def reason(exc: BaseException) -> str:
    """Why a choice was refused, in one line (a ``RequestError``: its problems' own words)."""
    if isinstance(exc, RequestError) and exc.problems:
        return "; ".join(p.message for p in exc.problems)
    return str(exc) or type(exc).__name__


def stylesheet(more_css: str = "") -> widgets.HTML:
    """The stars' stylesheet (and ``more_css``) as a widget that takes no room: one per view that shows stars."""
    sheet = widgets.HTML(f"<style>{STARS_CSS}{more_css}</style>", layout=widgets.Layout(display="none"))
    sheet.add_class(f"{CLASS}-sheet")
    return sheet


class StarRating(widgets.ToggleButtons):  # type: ignore[misc]  # ipywidgets is untyped
    """Five stars rating one run of a log: ``click(k)`` is what a click on star k does.

    ``stars`` (the rating shown), ``run_id``, ``run_log``; ``attach(log, run_id)`` points the
    control at another run (a form's next result); ``show(stars)`` changes only what it
    shows (another control rated the same run); ``on_rated(fn)``: ``fn(run_id, stars)``
    after each rating written. ``message``: the widget that shows a refused write's reason.
    """

    def __init__(self, run_log: Log | None = None, run_id: str | None = None, stars: int | None = None, *,
                 message: widgets.HTML | None = None, layout: widgets.Layout | None = None,
                 style: widgets.ToggleButtonsStyle | None = None, classes: tuple[str, ...] = ()) -> None:
        # classes given here go out with the widget, not in a message of their own
        super().__init__(options=LABELS, index=None, tooltips=list(LABELS), _dom_classes=(CLASS, *classes),
                         layout=layout if layout is not None else widgets.Layout(width="auto"),
                         style=style if style is not None else widgets.ToggleButtonsStyle(button_width="20px"))
        self.run_log, self.run_id, self.message = run_log, run_id, message
        self._stars: int | None = None
        self._writes = 0  # ratings written (a read begun before one is stale)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.on_msg(self._from_front_end)
        self.show(stars)

    @property
    def stars(self) -> int | None:
        """The rating shown (None: unrated)."""
        return self._stars

    def on_rated(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def show(self, stars: int | None) -> None:
        """Show ``stars`` (None: unrated) without writing anything."""
        self._stars = stars = None if is_missing(stars) else check_stars(stars)
        index = None if stars is None else stars - 1
        buttons: Any = self  # ToggleButtons' traits, untyped
        if buttons.index != index:  # a change sent to the front end redraws the buttons: only real ones
            buttons.index = index

    def attach(self, run_log: Log | None, run_id: str | None, stars: int | None = None) -> None:
        """Rate another run from now on (None: no run; a click says there is nothing to rate),
        showing ``stars``; ``read()`` shows the rating its log has instead."""
        self.run_log, self.run_id = run_log, run_id
        self.show(stars)

    def read(self) -> int | None:
        """Show the rating the log has for the run (an indexed read; a view calls it off the
        event loop). A read that fails says why in ``message``; a control attached to another
        run meanwhile is left alone."""
        run_log, run_id, writes = self.run_log, self.run_id, self._writes
        if run_log is None or run_id is None:
            return None
        try:
            row = run_log.get_run(run_id)
            with self._lock:
                if self.run_id == run_id and self._writes == writes:  # not rated meanwhile: the read is news
                    self.show(row.get("stars") if row is not None else None)
        except Exception as exc:  # noqa: BLE001 - a view must not fail for a read: it says why instead
            self._say(f"⚠ could not read the rating of run {run_id}: {reason(exc)}")
        return self._stars

    def click(self, k: int) -> int | None:
        """What a click on star ``k`` does: rate the run ``k``, or clear it when ``k`` is the
        rating now. Returns the rating shown afterwards (the old one if the log refused)."""
        k = check_stars(k) or 0
        if not k:
            raise ValueError(f"a star is 1 to {MAX_STARS}")
        with self._lock:
            if k != self._stars:
                buttons: Any = self
                buttons.index = k - 1  # what the front end does before it says "click"
            return self._write(None if k == self._stars else k)

    def rate(self, stars: int | None) -> int | None:
        """Rate the run ``stars`` (None or 0 clears), through the log, as a click does."""
        with self._lock:
            return self._write(check_stars(stars))

    def _write(self, new: int | None) -> int | None:
        shown, written = self._stars, False
        try:
            if self.run_log is None or self.run_id is None:
                raise RuntimeError("there is no run here to rate yet")
            self.run_log.rate(self.run_id, new)
            self._writes += 1
            shown, written = new, True
            self._say("")
        except Exception as exc:  # noqa: BLE001 - a refused write is shown where the user clicked, never raised into the front end
            self._say(f"⚠ could not rate run {self.run_id}: {reason(exc)}")
        finally:
            self.show(shown)  # whatever happened, the control shows the rating the log has
        if written and self.run_id is not None:
            for listener in list(self._listeners):
                try:
                    listener(self.run_id, new)
                except Exception:  # a view that follows the rating must not undo it
                    log.exception("a view following the rating of run %s failed", self.run_id)
        return shown

    def _say(self, text: str) -> None:
        if self.message is not None:
            self.message.value = f"<span style='{FONT};color:#b3261e'>{esc(text)}</span>" if text else ""
        elif text:
            log.warning("%s", text)

    def _from_front_end(self, _: Any, content: Any, buffers: Any) -> None:
        # the button's index came first (a state update); "click" follows, also for the same button
        index = getattr(self, "index", None)  # ToggleButtons' trait, untyped
        if isinstance(content, dict) and content.get("event") == "click" and index is not None:
            self.click(int(index) + 1)  # the index is already the clicked star's: nothing to send back
