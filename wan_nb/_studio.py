"""``wan.studio()``: the app for people who do not write code, served by Voilà (``wan-nb studio``).

A header (the backend, what this session has spent, its budget and what is left) over
three tabs: **Generate** (``wan.form()``: any of the six modes, the bbox drawer inside it
for interactive_edit, the palette editor), **Sweep** (``wan.sweep_form()`` and its live
grid) and **Explore** (the log explorer, read again each time the tab is opened). The
studio adds no run path of its own: every run goes through the forms, so it is logged,
cached and budgeted as anywhere else. The buttons that show code are hidden.

Money: the budget comes from the session (``wan.set_budget``) or ``WAN_NB_BUDGET_USD``
(what ``wan-nb studio --budget`` sets for its kernel). Voilà starts a kernel, so a
session, for each page opened: served by ``wan-nb studio`` (which also sets
``WAN_NB_BUDGET_SINCE``, the time it started), the budget is **shared** by every page: each
session's cap is the budget less what the run folder's log says the other pages have spent
or hold in flight since then, read again every second, so reloading the page or opening a
second one does not bring a fresh budget. (Two pages clicking within the same second can
each send one run the other has not seen yet.) A studio that would spend real money
(``WAVE_API_KEY`` set, or a hosted session) with no budget says so in its header; as an
app (under Voilà) it refuses to open its tabs at all. The header shows the backend's
host, never the key (nothing here holds it: the client does).

Errors are messages in the app, never tracebacks: the studio's own callbacks are
guarded, and as an app (``app=True``, the default under Voilà) any widget callback's
exception is shown as a one-line message (its traceback goes to the server's log).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ipywidgets as widgets
from IPython import get_ipython

from . import _config, _spec
from . import _states as S
from ._exceptions import BudgetError, WanError
from ._explore import LogExplorer
from ._form import Form
from ._html_parts import FONT, esc
from ._money import budget, quota_usd, usd
from ._portal import get_portal
from ._result import Result
from ._session import Session, connect, current
from ._sweep_form import SweepForm

TABS = ("Generate", "Sweep", "Explore")
GENERATE, SWEEP, EXPLORE = range(len(TABS))
TICK_SECONDS = 1.0  # the header is looked at this often (sent only when it changed)
ENV_BUDGET_SINCE = "WAN_NB_BUDGET_SINCE"  # set by wan-nb studio: the budget counts what was spent since then
# what the app says when a run or a sweep would go past its budget: the host's to raise, no code
OVER_BUDGET = "This budget is the studio's: whoever runs the studio can raise it."
NO_BUDGET = (
    "This studio would spend real money (an API key is set) and has no budget. Whoever serves it sets "
    "one: wan-nb studio --budget USD, or WAN_NB_BUDGET_USD in the server's environment."
)


def in_voila() -> bool:
    """Is this kernel Voilà's? (Voilà tells its kernels with SERVER_SOFTWARE=voila/<version>.)"""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila/")


def would_pay(sess: Session) -> bool:
    """Runs of this session may be billed: a key in the environment (whatever the base URL), or hosted."""
    return bool(_config.api_key()) or sess.backend == "hosted"


def one_line(exc: BaseException) -> str:
    """An error as the app shows it: wan_nb's own say what to do; others name their kind."""
    problems = getattr(exc, "problems", None)
    if problems:
        return "; ".join(str(p) for p in problems)
    text = " ".join((exc.with_hint(OVER_BUDGET) if isinstance(exc, BudgetError) else str(exc)).split())
    return text if isinstance(exc, WanError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


class _StudioForm(Form):
    """The Generate tab's form, without code: its cost line says "no budget" and a run past the
    budget says whose it is, without the code that sets one, and a result shows without the
    call that made it (the result itself says its mode, prompt and seed)."""

    no_budget_hint = " (no budget set)"
    over_budget_hint = OVER_BUDGET

    def _result_html(self, result: Result) -> str:
        return result._repr_html_()


class _StudioSweepForm(SweepForm):
    """The Sweep tab's form: a sweep past the budget says whose it is, and one past the per-sweep
    budget which button runs it anyway, without code."""

    over_budget_hint = OVER_BUDGET
    confirm_hint = 'Click "Start anyway" to run it, or make the sweep smaller.'


class Studio(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The studio: header + tabs Generate / Sweep / Explore, over the current session.

    ``s.form`` (the Generate tab's ``Form``), ``s.sweep_form``, ``s.explorer`` (a
    ``LogExplorer``, made when Explore is first opened), ``s.session``,
    ``s.show_tab(name)``, ``s.header`` / ``s.message`` (what the app shows).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *, app: bool | None = None) -> None:
        self.app = in_voila() if app is None else bool(app)
        self.session: Session | None = None
        self.form: Form | None = None
        self.sweep_form: SweepForm | None = None
        self.explorer: LogExplorer | None = None
        self.refused: str | None = None  # why the tabs are not open (a paid studio with no budget)
        self.shared: tuple[float, str] | None = None  # (budget, since): a budget every page of the server shares
        self._closed = False
        self._ticker: concurrent.futures.Future[None] | None = None
        self.header = widgets.HTML()
        self.message = widgets.HTML()
        self._dismiss = widgets.Button(description="dismiss", icon="times", layout=widgets.Layout(width="100px"))
        self._dismiss.on_click(self._guarded(lambda: self.show_message("")))
        self._message_row = widgets.HBox([self.message, self._dismiss],
                                         layout=widgets.Layout(display="none", align_items="center"))
        self.tabs = widgets.Tab()
        self._explore_box = widgets.VBox([widgets.HTML(f"<span style='{FONT};color:#777'>opening the log…</span>")])
        for w, name in ((self.header, "header"), (self.message, "message"), (self.tabs, "tabs"),
                        (self._explore_box, "explore")):
            w.add_class(f"wan-studio-{name}")
        super().__init__([self.header, self._message_row, self.tabs])
        self.add_class("wan-studio")
        if self.app:
            _catch_widget_errors(self)
        try:
            self._open(home)
        except Exception as exc:  # noqa: BLE001 - the app shows why it could not open, never a traceback
            self.show_error(exc)
        self.refresh_header()
        if self.session is not None:
            self._ticker = get_portal().submit(self._tick())

    # -- opening -------------------------------------------------------------------------
    def _open(self, home: str | os.PathLike[str] | None) -> None:
        sess = current()
        if sess is None or (home is not None and Path(home).absolute() != Path(sess.home).absolute()):
            sess = connect(home=home, quiet=True)  # the header says which backend; nothing is printed
        self.session = sess
        limit = _config.budget_usd()
        since = os.environ.get(ENV_BUDGET_SINCE, "").strip()
        if limit is not None and since:
            datetime.datetime.fromisoformat(since)  # a ValueError here is shown: the budget must be right
            self.shared = (limit, since)
            self.share_budget()
        elif limit is not None and (sess.budget_usd is None or limit < sess.budget_usd):
            sess.budget_usd = limit  # the host's budget (wan-nb studio --budget); a lower one set in code stays
        if self.app and would_pay(sess) and sess.budget_usd is None:
            self.refused = NO_BUDGET
            self.tabs.children = []
            self.show_message(NO_BUDGET, error=True, dismissable=False)
            return
        self.form = _StudioForm()
        self.sweep_form = _StudioSweepForm()
        for button in (self.form.code_button, self.form.sweep_button, self.sweep_form.code_button):
            button.layout.display = "none"  # the studio is for people who do not read code
        self.form.status.observe(lambda _: self.refresh_header(), "value")  # a run's end shows in the header
        self.tabs.children = [self.form, self.sweep_form, self._explore_box]
        self.tabs.titles = TABS
        self.tabs.observe(self._guarded(self._tab_shown), "selected_index")

    def show_tab(self, name: str) -> None:
        """Open a tab by its title ("Generate", "Sweep", "Explore")."""
        self.tabs.selected_index = TABS.index(name)

    def _tab_shown(self) -> None:
        if self.tabs.selected_index != EXPLORE or self.session is None:
            return
        if self.explorer is None:
            self.explorer = LogExplorer(self.session.log, rows="prompt", cols="seed")
            self._explore_box.children = [self.explorer]
        else:
            self.explorer.refresh()  # the runs made since it was last shown

    # -- the shared budget -----------------------------------------------------------------
    def committed_usd(self) -> float:
        """What the run folder's log says was spent since the server started: billed runs at
        their cost, runs in flight or unanswered at their price (an indexed read of those runs)."""
        assert self.session is not None and self.shared is not None
        runs = self.session.log.runs(where=f"created_at >= {self.shared[1]!r}")
        if not len(runs):
            return 0.0
        status = runs["status"].astype(str)
        price = runs["n"].astype("float64").fillna(1.0) * _spec.quota_to_usd(_spec.UNIT_QUOTA)
        cost = runs["cost_usd"].astype("Float64").fillna(price).astype("float64")
        return float(cost[status.isin(S.BILLED)].sum() + price[status.isin(S.MAYBE_BILLED)].sum())

    def share_budget(self) -> None:
        """This session's cap: the shared budget less what the other pages spent or hold."""
        sess, shared = self.session, self.shared
        if sess is None or shared is None:
            return
        budget_ = sess.budget
        mine = _spec.quota_to_usd(budget_.spent_quota + budget_.held_quota)
        others = max(0.0, self.committed_usd() - mine)
        sess.budget_usd = max(0.0, round(shared[0] - others, 5))

    # -- the header -------------------------------------------------------------------------
    def header_html(self) -> str:
        """The header's HTML: backend, spend, budget and what is left (every value escaped)."""
        sess = self.session
        if sess is None:
            parts = ["<span class='wan-studio-backend' style='color:#b3261e'><b>Not connected</b></span>"]
        else:
            host = urlsplit(sess.aio.base_url).netloc
            if sess.backend == "hosted":
                backend = (f"<b>Hosted API</b> ({esc(host)}): each image is billed, "
                           f"{esc(quota_usd(_spec.UNIT_QUOTA))}")
            elif would_pay(sess):
                backend = f"<b>Simulator</b> at {esc(host)}, with an API key"
            else:
                backend = "<b>Simulator</b>: images are drawn here, nothing is billed"
            spent = f"<b>Spent</b> {esc(usd(sess.spent_usd))}"
            if sess.unconfirmed_usd:
                spent += f" ({esc(usd(sess.unconfirmed_usd))} of it unconfirmed)"
            if self.shared is not None and sess.budget_usd is not None:
                left = max(0.0, sess.budget_usd - sess.spent_usd)
                limit = (f"<b>Budget</b> {esc(budget(self.shared[0]))} for everyone using this studio, "
                         f"<b>{esc(usd(left))} left</b>")
            elif sess.budget_usd is not None:
                left = max(0.0, sess.budget_usd - sess.spent_usd)
                limit = f"<b>Budget</b> {esc(budget(sess.budget_usd))}, <b>{esc(usd(left))} left</b>"
            elif would_pay(sess):
                limit = "<span style='color:#b3261e'>⚠ <b>No budget</b></span>"
            else:
                limit = "<span style='color:#777'><b>No budget</b></span>"
            parts = [f"<span class='wan-studio-backend'>{backend}</span>",
                     f"<span class='wan-studio-spent'>{spent}</span>",
                     f"<span class='wan-studio-budget'>{limit}</span>"]
        sep = "<span style='color:#bbb;margin:0 10px'>|</span>"
        return (f"<div style='{FONT};font-size:13px;padding:6px 10px;background:#f3f5f8;border:1px solid #dde3ea;"
                f"border-radius:4px'>{sep.join(parts)}</div>")

    def refresh_header(self) -> None:
        """Draw the header again (sent to the browser only when it changed)."""
        try:
            self.header.value = self.header_html()
        except Exception as exc:  # noqa: BLE001 - the header must never break the app
            _to_server_log(exc)

    async def _tick(self) -> None:
        """The header follows spending however it happens (a form, a sweep, a cell, another
        page of the same server); a shared budget is read from the log off the loop."""
        while not self._closed:
            await asyncio.sleep(TICK_SECONDS)
            if self.shared is not None:
                try:
                    await asyncio.to_thread(self.share_budget)
                except Exception as exc:  # noqa: BLE001 - the log unreadable for a moment: the cap stays as it was
                    _to_server_log(exc)
            self.refresh_header()

    # -- messages ---------------------------------------------------------------------------
    def show_message(self, text: str, *, error: bool = False, dismissable: bool = True) -> None:
        """A line under the header ("" hides it)."""
        colour = "#b3261e" if error else "#333"
        mark = "✕ " if error else ""
        self.message.value = f"<div style='{FONT};color:{colour}'>{mark}{esc(text)}</div>" if text else ""
        self._dismiss.layout.display = "" if dismissable else "none"
        self._message_row.layout.display = "" if text else "none"

    def show_error(self, exc: BaseException) -> None:
        """An error as a message in the app; its traceback goes to the server's log only."""
        _to_server_log(exc)
        self.show_message(one_line(exc), error=True)

    def _guarded(self, fn: Callable[[], Any]) -> Callable[..., None]:
        """A callback whose error becomes a message in the app."""
        def run(*_: Any) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - shown in the app, not raised into the front end
                self.show_error(exc)
        return run

    # -- lifetime and display -----------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        super().close()

    def __repr__(self) -> str:
        sess = self.session
        return f"<wan_nb Studio {sess.backend if sess else 'not connected'}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = (
            f"<div class='wan-studio-static' style='{FONT}'>{self.header_html()}<p>The studio (Generate, Sweep, "
            "Explore) is an app: serve it with <code>wan-nb studio</code>, or run this notebook.</p></div>"
        )
        return bundle


def _to_server_log(exc: BaseException) -> None:
    """The traceback to the kernel process's own stderr (the server's terminal), never to the page."""
    stream = sys.__stderr__
    if stream is not None:
        traceback.print_exception(exc, file=stream)
        stream.flush()


def _catch_widget_errors(studio: Studio) -> None:
    """As an app: an exception in any widget callback is a message in the studio, not a traceback.

    ipywidgets reports a callback's exception with the shell's ``showtraceback`` (sent to the
    front end); in an app's kernel that is replaced by the studio's message line."""
    shell = get_ipython()
    if shell is None:
        return

    def showtraceback(exc_tuple: Any = None, *args: Any, **kwargs: Any) -> None:
        exc = (exc_tuple or sys.exc_info())[1]
        if exc is None:
            return
        try:
            studio.show_error(exc)
        except Exception:  # noqa: BLE001 - the last resort: the server's log
            _to_server_log(exc)

    shell.showtraceback = showtraceback


def studio(home: str | os.PathLike[str] | None = None, *, app: bool | None = None) -> Studio:
    """The studio: generate, sweep, draw boxes, rate and compare, without code.

    Display it in a notebook, or serve it as an app with ``wan-nb studio`` (Voilà). It
    uses the current session (connecting quietly when there is none: the simulator
    without a key), and ``WAN_NB_BUDGET_USD`` as the session's budget when set.

    Parameters
    ----------
    home : str or path, optional
        The run folder (default: the session's, else ``WAN_NB_HOME`` or ./wan_runs).
    app : bool, optional
        Behave as an app: refuse to open with a key and no budget, and show any widget
        callback's error as a message. Default: when running under Voilà.

    Returns
    -------
    Studio
    """
    return Studio(home, app=app)
