"""``wan.form()``: one ipywidgets form for the six modes, a thin view over the same run path.

The form builds its request with ``make_request`` (the mode functions' own builder) on
every edit, shows each problem next to its field, and keeps Generate disabled while
the request is invalid. Generate runs the request through ``Session.arun``, the path
``wan.generate`` and sweep cells take (logged before it is sent, cached, budgeted,
resumable), on the portal loop in the background: the kernel stays free, a status
line follows the task, Cancel cancels it on the server while it is queued, and the
result appears in the form. ``f.code`` is the ``wan.<mode>(...)`` call that makes the
same request, so running it is a cache hit at $0.

The fields may change while a run is in flight, or after it: the result is always
shown with the request that made it (``f.result_code``, above the image, and in the
saved static view), and once the fields differ from it, a note says so beside the
result and at the end of ``f.code`` (which stays the call of the fields: what
Generate sends next). A message that belongs to a run (the second click's "already
running") is cleared when that run ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from . import _config, _spec
from . import _states as S
from ._exceptions import BudgetError, Problem, RequestError, TaskCancelled, WanError
from ._form_code import call_code, sweep_code
from ._form_fields import FieldPanel, problem_html
from ._html_parts import FONT, esc
from ._images import ImageInput
from ._modes import make_request
from ._money import budget, quota_usd, usd
from ._portal import get_portal
from ._request import BoxesInput, HoldsBoxes, PaletteInput, Request
from ._result import Result
from ._session import Session, current, session
from ._spec import AspectRatio, Mode, Resolution
from ._stars import StarRating, stylesheet
from ._static_view import LiveFallback
from ._wire import Task

TICK_SECONDS = 1.0  # the status line's elapsed time is redrawn this often
CANCELLABLE = (None, S.SUBMITTED, S.QUEUED)  # a processing task can no longer be cancelled (it is billed)


def _same_but_seed(a: Request, b: Request) -> bool:
    """Do two requests differ at most in their seed? (Then one call with a seed makes both.)"""
    ca, cb = a.canonical(), b.canonical()
    ca.pop("seed", None)
    cb.pop("seed", None)
    return ca == cb


class Form(LiveFallback, widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A request of any mode, built field by field, run without blocking the kernel.

    ``f.request`` (the ``Request`` the fields describe, or the ``RequestError``),
    ``f.submit()`` (what Generate does), ``f.result`` (the last ``Result``), ``f.code``
    (the ``wan.<mode>(...)`` call of that request), ``f.sweep_code`` (a ``wan.sweep``
    call with a seed axis), ``f.set(**fields)``, ``f.wait()``, ``f.cancel()``.
    """

    # what the cost line says when the session has no budget, and what to do when a run would
    # go past it (None: the BudgetError's own words, in code); the studio, for people who do
    # not write code, says both without the code
    no_budget_hint = " (no session budget: wan.set_budget(usd))"
    over_budget_hint: str | None = None

    def __init__(self, mode: str = _spec.GENERATE, **defaults: Any) -> None:
        self._request: Request | None = None
        self._error: RequestError | None = None
        self._result: Result | None = None
        self._last_request: Request | None = None  # what the last run sent
        self._result_code: str | None = None  # the call that made ``_result`` (its images as named then)
        self._shown: Result | None = None  # the result in ``output`` (None while a run is under way)
        self._exprs: list[str] = []  # the image expressions of the run under way
        self._busy_note = False  # ``message`` holds "already running": cleared when the run ends
        self._used = False  # the current request was sent: a random seed is drawn again
        self._future: concurrent.futures.Future[Result] | None = None
        self._active = False  # a run is under way (set before it starts, cleared in its finally)
        self._task: Task | None = None
        self._started = 0.0
        self._lock = threading.Lock()
        self._code_kind: str | None = None
        self.fields = FieldPanel(self._revalidate)
        self.cost = widgets.HTML()
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play",
                                              disabled=True)
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True,
                                            tooltip="cancel the task on the server while it is queued (refunded)")
        self.code_button = widgets.Button(description="Copy as code", icon="code",
                                          tooltip="the wan.<mode>(...) call that makes this request")
        self.sweep_button = widgets.Button(description="Sweep this", icon="th",
                                           tooltip="these fields as a wan.sweep(...) call with a seed axis")
        self.status = widgets.HTML()
        self.message = widgets.HTML()
        self.code_view = widgets.Textarea(rows=6, layout=widgets.Layout(width="760px", display="none"))
        self.result_note = widgets.HTML()  # "the fields have changed since this run", beside the result
        self.output = widgets.HTML()  # the result, with the request that made it
        for w, name in ((self.cost, "cost"), (self.status, "status"), (self.message, "message"),
                        (self.code_view, "code"), (self.result_note, "result-note"), (self.output, "output"),
                        (self.generate_button, "generate"),
                        (self.cancel_button, "cancel"), (self.code_button, "code-button"),
                        (self.sweep_button, "sweep-button")):
            w.add_class(f"wan-form-{name}")
        self.generate_button.on_click(lambda _: self._clicked_generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.code_button.on_click(lambda _: self._toggle_code("call"))
        self.sweep_button.on_click(lambda _: self._toggle_code("sweep"))
        buttons = widgets.HBox([self.generate_button, self.cancel_button, self.code_button, self.sweep_button,
                                self.status], layout=widgets.Layout(align_items="center"))
        self._rating_view()
        super().__init__([self.fields, self.cost, buttons, self.message, self.code_view, self.result_note,
                          self.output, self.rating, stylesheet()])
        self.add_class("wan-form")
        with self.fields.batch():
            self.fields.set(mode=mode, **defaults)

    # -- the public face -------------------------------------------------------------
    @property
    def request(self) -> Request | RequestError:
        """The ``Request`` the fields describe now, or the ``RequestError`` saying why not."""
        if self._used and self.fields.random_seed.value:
            self._revalidate()
        return self._request if self._request is not None else self._error  # type: ignore[return-value]

    @property
    def result(self) -> Result | None:
        """The last run's ``Result`` (None before one has finished)."""
        return self._result

    @property
    def running(self) -> bool:
        return self._active

    @property
    def mode(self) -> str:
        return self.fields.action

    def set(self, **fields: Any) -> Form:
        """Set fields by name (as ``wan.form(**defaults)`` does); a bad value is a RequestError."""
        self.fields.set(**fields)
        return self

    @property
    def code(self) -> str:
        """The ``wan.<mode>(...)`` call that makes the request of these fields, with its seed.

        With a random seed, after a run of the same fields: the seed that run drew (so the
        code reproduces the run, from the cache at $0). When the fields no longer make the
        result shown, comment lines at the end say so and give ``result_code``."""
        request = self._request_for_code()
        if isinstance(request, RequestError):
            code = "# not a valid request yet:\n" + "".join(f"#   {p}\n" for p in request.problems)
        else:
            code = call_code(request, self.fields.images.exprs if self.fields.takes_images() else [])
        if self._fields_changed() and self._result_code is not None:
            made_by = "".join(f"#   {line}\n" for line in self._result_code.splitlines())
            code = (code.rstrip("\n") + "\n# ↑ the fields now, not run yet; the result shown was made by "
                    "(f.result_code):\n" + made_by)
        return code

    @property
    def result_code(self) -> str | None:
        """The ``wan.<mode>(...)`` call that made ``f.result`` (None before a run has finished):
        its request as it was sent, whatever the fields hold now."""
        return self._result_code

    @property
    def sweep_code(self) -> str:
        """These fields as ``wan.sweep(...)``, with a seed axis that starts at the seed of the code."""
        request = self._request_for_code()
        if isinstance(request, RequestError):
            return "# not a valid request yet:\n" + "".join(f"#   {p}\n" for p in request.problems)
        known = request.seed if not request.seed_random or request is self._last_request else None
        return sweep_code(request, self.fields.images.exprs if self.fields.takes_images() else [], seed=known)

    def submit(self) -> concurrent.futures.Future[Result]:
        """Send the request in the background (what Generate does); returns once it is on its way.

        The returned future gives the ``Result`` (or raises the run's error); ``f.wait()``
        waits for it. Raises ``RequestError`` (nothing is sent) while the fields are invalid.
        """
        with self._lock:
            if self.running:
                raise RuntimeError("this form is already running a request: wait for it or cancel it")
            if self._used:
                self._revalidate()  # a random seed is drawn again: a new image, not the cached one
            if self._error is not None or self._request is None:
                raise self._error or RequestError([Problem("form", "invalid", "the form holds no request")])
            request = self._request
            sess = session()
            self._used = True
            self._task = None
            self._started = time.monotonic()
            self._exprs = list(self.fields.images.exprs) if self.fields.takes_images() else []
            self._say("")
            self._shown = None
            self.output.value = ""
            self.result_note.value = ""
            self._active = True
            self._show_status()
            future = get_portal().submit(self._run(sess, request))
            self._future = future
            self._refresh_buttons()
        return future

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the run ends; its ``Result``, or its error raised. (Ctrl-C cancels it.)"""
        future = self._future
        if future is None:
            raise RuntimeError("nothing was submitted from this form yet")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not concurrent.futures.wait([future], timeout=0.1).done:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the form's run did not end within {timeout} s (it goes on)")
        except KeyboardInterrupt:
            self.cancel()
            raise
        return future.result()

    def cancel(self) -> None:
        """Cancel the run: a queued task is cancelled on the server (refunded)."""
        future = self._future
        if future is not None and not future.done():
            future.cancel()  # cancels the run on the portal loop; the client cancels the task

    # -- the run, on the portal loop --------------------------------------------------
    async def _run(self, sess: Session, request: Request) -> Result:
        ticker = asyncio.ensure_future(self._tick())
        try:
            # held briefly, then polled: the status line follows queued / processing
            result = await sess.arun(request, on_update=self._on_update, prefer_wait=_config.INTERACTIVE_PREFER_WAIT)
        except asyncio.CancelledError:
            self._ended_cancelled()
            raise
        except BaseException as exc:
            self._ended_with_error(exc)
            raise
        else:
            self._result, self._last_request = result, request
            self._result_code = call_code(request, self._exprs)
            self._ended_with(result)
            return result
        finally:
            ticker.cancel()
            self._future_done()

    def _on_update(self, run_id: str, task: Task) -> None:
        self._task = task
        self._show_status()
        self._refresh_buttons()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._show_status()

    def _future_done(self) -> None:
        """UI restored whatever happened (called in ``finally``); the run's passing messages go."""
        with self._lock:  # against a click that says "already running" just now
            self._active = False
            if self._busy_note:
                self._say("")
        self._refresh_buttons()
        self._show_cost()
        self._show_code()
        self.refresh_fallback()  # a saved notebook shows the form as this run left it

    # -- the result's stars --------------------------------------------------------------
    def _rating_view(self) -> None:
        """Stars under the result, rating its run (``f.stars``); shown while a result is."""
        note = widgets.HTML()
        self.stars = StarRating(message=note)
        self.rating = widgets.HBox([widgets.HTML(f"<span style='{FONT};color:#555'>rate this result:</span>"),
                                    self.stars, note],
                                   layout=widgets.Layout(display="none", align_items="center"))
        self.rating.add_class("wan-form-rating")
        self.output.observe(self._result_shown, "value")

    def _result_shown(self, change: Any) -> None:
        result = self._result if change["new"] else None
        if result is None or result.log is None:
            self.stars.attach(None, None)
            self.rating.layout.display = "none"
            return
        self.stars.attach(result.log, result.run_id)
        self.rating.layout.display = ""
        # the rating it may have (a run resumed): read off the event loop this may run on
        threading.Thread(target=self.stars.read, name="wan_nb-form-stars", daemon=True).start()

    # -- views of the state -----------------------------------------------------------
    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._started:.0f} s"

    def _state(self) -> str:
        task = self._task
        if task is None:
            return "sending"
        if task.note:  # e.g. "billed, not yet recorded: the disk is full"
            return task.note
        if task.terminal:
            return "downloading" if task.status == "completed" else task.status
        state = task.status
        if state == "processing" and task.progress is not None:
            state += f" {task.progress}%"
        return state

    def _show_status(self) -> None:
        if not self.running:
            return
        ident = f" · {self._task.task_id}" if self._task is not None else ""
        self.status.value = (f"<span style='{FONT};color:#555'>⏳ {esc(self.mode)}{esc(ident)} · "
                             f"{esc(self._state())} · {self._elapsed()}</span>")

    def _ended_with(self, result: Result) -> None:
        cost = "cache hit · $0" if result.cache_hit else f"{usd(result.cost_usd)}"
        seed = result.request.seed if result.request else None
        self.status.value = (f"<span style='{FONT};color:#1b5e20'>✓ done in {self._elapsed()} · seed {seed} · "
                             f"{esc(cost)}</span>")
        self.fields.seed_note.value = f"<span style='{FONT};color:#555'>last run: seed {seed}</span>"
        self._shown = result
        self.output.value = self._result_html(result)
        self._show_result_note()

    def _ended_cancelled(self) -> None:
        task = self._task
        if task is not None and task.status == S.PROCESSING:
            text = (f"cancelled here, but task {task.task_id} was already processing: it will be billed; "
                    f"wan.fetch({task.task_id!r}) gets its images")
        elif task is not None and task.status == S.CANCELLED:
            text = f"cancelled: task {task.task_id} was cancelled on the server (refunded)"
        else:
            text = "cancelled before the server answered: nothing is billed for it"
        self.status.value = f"<span style='{FONT};color:#a15c00'>■ {esc(text)}</span>"

    def _ended_with_error(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        if isinstance(exc, TaskCancelled):
            self._ended_cancelled()
            return
        self.status.value = f"<span style='{FONT};color:#b3261e'>✕ {esc(kind)} after {self._elapsed()}</span>"
        if isinstance(exc, RequestError):
            rest = self.fields.show_problems(exc.problems)
            self._say(problem_html(rest))
        else:
            detail = (exc.with_hint(self.over_budget_hint) if isinstance(exc, BudgetError)
                      else str(exc) if isinstance(exc, WanError) else f"{kind}: {exc}")
            self._say(f"<div style='{FONT};color:#b3261e'>✕ {esc(detail)}</div>")

    def _refresh_buttons(self) -> None:
        running = self.running
        self.generate_button.disabled = running or self._request is None
        state = self._task.status if self._task is not None else None
        self.cancel_button.disabled = not running or state not in CANCELLABLE

    def _show_cost(self) -> None:
        unit = quota_usd(_spec.UNIT_QUOTA)
        if self._request is not None:
            n = self._request.n
            total = quota_usd(self._request.cost_quota)
            text = f"{unit} per image × {n} image{'s' if n != 1 else ''} = <b>{total}</b>"
        else:
            text = f"{unit} per image · no cost until the fields make a valid request"
        sess = current()
        if sess is not None:
            text += f" · this session has spent {usd(sess.spent_usd)}"
            if sess.unconfirmed_usd:
                text += f" ({usd(sess.unconfirmed_usd)} of it unconfirmed)"
            if sess.budget_usd is not None:
                left = max(0.0, sess.budget_usd - sess.spent_usd)
                text += f" of its {budget(sess.budget_usd)} budget ({usd(left)} left)"
                if self._request is not None and not self.running:
                    try:
                        sess.budget.check(self._request.cost_quota)  # the rule Generate meets, said before it
                    except BudgetError:
                        text += " · <b style='color:#b3261e'>⚠ more than is left: only a cache hit would run</b>"
            else:
                text += self.no_budget_hint
        self.cost.value = f"<span style='{FONT};color:#333'>{text}</span>"

    def _toggle_code(self, kind: str) -> None:
        self._code_kind = None if self._code_kind == kind else kind
        self.code_view.layout.display = "none" if self._code_kind is None else ""
        self._show_code()

    def _show_code(self) -> None:
        if self._code_kind is not None:
            self.code_view.value = self.code if self._code_kind == "call" else self.sweep_code

    def _say(self, html: str, *, busy: bool = False) -> None:
        """The message line; ``busy``: a note about the run under way, cleared when it ends."""
        self.message.value = html
        self._busy_note = busy

    def _fields_changed(self) -> bool:
        """Do the fields no longer make the result shown? (False when none is shown.)"""
        shown, made_by = self._shown, self._last_request
        if shown is None or made_by is None:
            return False
        now = self._request_for_code()
        return not (isinstance(now, Request) and now.canonical() == made_by.canonical())

    def _show_result_note(self) -> None:
        changed = self._fields_changed()
        self.result_note.value = (
            f"<div style='{FONT};color:#a15c00'>⚠ the fields above have changed since this result was made: "
            "it shows the request below, not theirs (Generate runs theirs)</div>" if changed else "")

    def _result_html(self, result: Result) -> str:
        """A result with the call that made it above it (the form's fields may say otherwise)."""
        code = self._result_code or ""
        return (f"<div class='wan-form-made-by' style='{FONT};color:#555;margin:4px 0'>result of "
                f"<code style='white-space:pre-wrap;color:#222'>{esc(code)}</code></div>{result._repr_html_()}")

    def _request_for_code(self) -> Request | RequestError:
        current = self.request
        last = self._last_request
        if (isinstance(current, Request) and current.seed_random and last is not None
                and _same_but_seed(current, last)):
            return last
        return current

    # -- validation ---------------------------------------------------------------------
    def _revalidate(self) -> None:
        """The request model's verdict on the fields now; problems next to their fields."""
        problems = self.fields.refused()
        request = None
        try:
            action, prompt, images, fields = self.fields.request_args()
            request = make_request(action, prompt, images, **fields)
        except RequestError as exc:
            problems = list(exc.problems) + problems
        if problems:
            self._request, self._error = None, RequestError(problems)
        else:
            self._request, self._error = request, None
        self._used = False
        rest = self.fields.show_problems(problems)
        notes = [f"<div style='{FONT};color:#a15c00'>⚠ {esc(w)}</div>" for w in (request.warnings if request else ())]
        self._say(problem_html(rest) + "".join(notes))
        self._refresh_buttons()
        self._show_cost()
        self._show_code()
        self._show_result_note()

    def _clicked_generate(self) -> None:
        try:
            self.submit()
        except (RequestError, RuntimeError, WanError) as exc:  # shown in the form, nothing sent
            problems = exc.problems if isinstance(exc, RequestError) else []
            rest = self.fields.show_problems(problems) if problems else []
            text = problem_html(rest) if problems else f"<div style='{FONT};color:#b3261e'>✕ {esc(exc)}</div>"
            if isinstance(exc, RuntimeError):  # "already running": said only while it is true
                with self._lock:
                    if self.running:
                        self._say(text, busy=True)
            else:
                self._say(text)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        request = self.request
        what = request.summary() if isinstance(request, Request) else f"invalid: {len(request.problems)} problem(s)"
        return f"<wan_nb Form {self.mode}: {what}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static_html()  # where widgets are off: what the form holds, and its result
        return bundle

    def static_html(self) -> str:
        """The form as static HTML: its request, its problems, its code, and the result shown
        with the call that made it (after a run with a random seed: the request that run
        sent, as its code says; fields changed since the run: said beside the result)."""
        request = self._request_for_code()
        rows = [("mode", self.mode), ("prompt", self.fields.prompt.value or "—")]
        if isinstance(request, Request):
            rows += [(k, v) for k, v in request.canonical().items() if k not in ("model", "action", "prompt")]
            rows.append(("cost", f"{usd(request.cost_usd)}"))
        table = "".join(f"<tr><th style='text-align:left;padding-right:8px'>{esc(k)}</th><td>{esc(v)}</td></tr>"
                        for k, v in rows)
        problems = problem_html(request.problems) if isinstance(request, RequestError) else ""
        code = f"<pre style='background:#f6f6f6;padding:6px'>{esc(self.code)}</pre>"
        shown = self._shown
        result = self.result_note.value + self._result_html(shown) if shown is not None else ""
        return (f"<div class='wan-form-static' style='{FONT}'><b>wan_nb form</b> (static view: run the "
                f"notebook to use it)<table>{table}</table>{problems}{code}{result}</div>")


def form(
    mode: Mode = _spec.GENERATE,
    *,
    prompt: str | None = None,
    images: ImageInput | Sequence[ImageInput] | HoldsBoxes | None = None,
    n: int | None = None,
    seed: int | None = None,
    aspect_ratio: AspectRatio | None = None,
    resolution: Resolution | None = None,
    thinking_mode: bool | None = None,
    color_palette: PaletteInput | None = None,
    bbox_list: BoxesInput | None = None,
    watermark: bool | None = None,
    **fields: Any,
) -> Form:
    """An ipywidgets form for any of the six modes, pre-filled; display it and press Generate.

    The form checks the request with the mode functions' rules on every edit (each
    problem next to its field; Generate stays off while any is left), shows its cost,
    and runs it in the background as ``wan.<mode>`` would: logged, cached, budgeted.
    ``f.request`` (the ``Request``, or the ``RequestError``), ``f.submit()``,
    ``f.result``, ``f.code`` (the ``wan.<mode>(...)`` call of the same request).

    Parameters
    ----------
    mode : {"generate", "image2image", "edit", "reference", "group", "interactive_edit"}, default "generate"
        The mode shown first (a dropdown in the form).
    prompt, images, n, seed, aspect_ratio, resolution, thinking_mode, color_palette, bbox_list, watermark
        The fields' first values (None: the field's own default; the document's, and a
        random seed). The same values and limits as ``wan.generate`` and the other mode
        functions: n 1 to 4 (12 in group mode), resolution up to 2K with input images, a
        palette of 3 to 10 colours. ``images`` may be a ``wan.BBoxDrawer``; ``bbox_list``
        needs the images. A value a field cannot hold is a RequestError naming it.
    **fields
        ``image`` (one input image) and ``action`` (``mode``) are taken too; a name that
        is no field is a RequestError with a "did you mean".

    Returns
    -------
    Form
    """
    given = {"prompt": prompt, "images": images, "n": n, "seed": seed, "aspect_ratio": aspect_ratio,
             "resolution": resolution, "thinking_mode": thinking_mode, "color_palette": color_palette,
             "bbox_list": bbox_list, "watermark": watermark}
    return Form(mode, **{name: value for name, value in given.items() if value is not None}, **fields)
