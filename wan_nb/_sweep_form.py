"""``wan.sweep_form()``: a sweep built by hand: a template, axes typed as values, a live grid.

The fields are the same ``FieldPanel`` a ``wan.form()`` shows (their values are the
sweep's fixed fields); below it one line per axis: each ``{placeholder}`` of the
template, the seed, and any field added with "add an axis". An axis is typed as
comma-separated values or whole-number ranges (``fox, owl``; ``1-8``; ``random 4`` for
seeds). On every edit the sweep is planned with ``plan_sweep`` (pure: nothing is
sent), so the cell count and the total cost are shown before Start; Start calls
``wan.sweep`` itself, and the live grid it returns is shown below.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ipywidgets as widgets

from . import _spec
from ._exceptions import BudgetError, Problem, RequestError, WanError
from ._form_code import _call, _literal
from ._form_fields import FORM_NAMES, FieldPanel, field_of, field_row, problem_html
from ._html_parts import FONT, esc
from ._money import budget, quota_usd
from ._portal import get_portal
from ._request import FIELDS, unknown_fields
from ._session import current
from ._spec import Mode
from ._static_view import LiveFallback
from ._sweep import Sweep, sweep
from ._sweep_plan import Plan, _placeholders, parse_axis, plan_sweep, random_seeds

FIELD_AXES = ("seed", "aspect_ratio", "resolution", "n", "watermark", "thinking_mode")
ADD_AXIS = "add an axis…"


class SweepForm(LiveFallback, widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Template + fixed fields + axes; cell count and cost live; Start / Cancel; the live grid.

    ``s.plan`` (the ``Plan``, or the ``RequestError``), ``s.axes`` (axis name → its text
    field), ``s.set_axis(name, text)``, ``s.start()``, ``s.sweep`` (the running ``Sweep``),
    ``s.cancel()``, ``s.code``.
    """

    # what to do when a sweep would go past the session's budget, or past the per-sweep one
    # (None: the BudgetError's own words, in code; the studio says them without code)
    over_budget_hint: str | None = None
    confirm_hint: str | None = None

    def __init__(self, template: str = "", mode: str = _spec.GENERATE, **defaults: Any) -> None:
        self._plan: Plan | None = None
        self._error: RequestError | None = None
        self._confirm = False  # the user saw the budget question and said yes
        self.sweep: Sweep | None = None
        self.axes: dict[str, widgets.Text] = {}
        self._axis_problems: dict[str, widgets.HTML] = {}
        self._axis_rows = widgets.VBox()
        self.fields = FieldPanel(self._revalidate, prompt_label="Template",
                                 prompt_hint="a {animal} in snow: each {name} becomes an axis below")
        self.add_axis = widgets.Dropdown(options=[ADD_AXIS, *FIELD_AXES], layout=widgets.Layout(width="200px"))
        self.add_axis.observe(self._axis_chosen, "value")
        self.plan_line = widgets.HTML()
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play", disabled=True)
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True,
                                            tooltip="stop sending cells; queued tasks are cancelled (refunded)")
        self.code_button = widgets.Button(description="Copy as code", icon="code")
        self.message = widgets.HTML()
        self.code_view = widgets.Textarea(rows=6, layout=widgets.Layout(width="760px", display="none"))
        self.output = widgets.Output()
        for w, name in ((self.plan_line, "plan"), (self.start_button, "start"), (self.cancel_button, "cancel"),
                        (self.message, "message"), (self.code_view, "code"), (self.output, "output")):
            w.add_class(f"wan-sweep-form-{name}")
        self.start_button.on_click(lambda _: self._clicked_start())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.code_button.on_click(lambda _: self._toggle_code())
        axes_head = widgets.HBox([widgets.HTML(f"<b style='{FONT}'>Axes</b> <span style='{FONT};color:#777'>"
                                               "comma-separated values or ranges (1-8); seeds also random 4</span>"),
                                  self.add_axis])
        super().__init__([self.fields, axes_head, self._axis_rows, self.plan_line,
                          widgets.HBox([self.start_button, self.cancel_button, self.code_button]),
                          self.message, self.code_view, self.output])
        self.add_class("wan-sweep-form")
        axes = {k: defaults.pop(k) for k in list(defaults) if k not in FIELDS and k not in ("mode", "images", "image")}
        for name in FIELD_AXES:  # a list (or a seed range "1-4") is an axis; one value is a fixed field
            value = defaults.get(name)
            if isinstance(value, (list, tuple, range)) or (name == "seed" and isinstance(value, str)):
                axes[name] = defaults.pop(name)
        with self.fields.batch():
            self.fields.set(mode=mode, prompt=template, **defaults)
            self._ensure_axis("seed")
            for name, value in axes.items():
                self.set_axis(name, value if isinstance(value, str) else ", ".join(map(str, value)))

    # -- axes -----------------------------------------------------------------------------
    def _ensure_axis(self, name: str) -> widgets.Text:
        if name in self.axes:
            return self.axes[name]
        text = widgets.Text(continuous_update=True, layout=widgets.Layout(width="360px"),
                            placeholder=("1-4, or 3, 7, 9, or random 4 (empty: the seed field)" if name == "seed"
                                         else "a, b, c (an axis overrides the field above)"))
        text.observe(lambda _: self._revalidate(), "value")
        problem = widgets.HTML()
        remove = widgets.Button(icon="times", tooltip="remove this axis", layout=widgets.Layout(width="32px"))
        remove.on_click(lambda _: self._remove_axis(name))
        row = field_row(name, [text, remove], problem)
        row.add_class(f"wan-sweep-axis-{name}")
        self.axes[name] = text
        self._axis_problems[name] = problem
        self._axis_rows.children = [*self._axis_rows.children, row]
        return text

    def _remove_axis(self, name: str) -> None:
        self.axes.pop(name, None)
        self._axis_problems.pop(name, None)
        self._axis_rows.children = [
            r for r in self._axis_rows.children if f"wan-sweep-axis-{name}" not in r._dom_classes
        ]
        self._revalidate()

    def _axis_chosen(self, change: dict[str, Any]) -> None:
        if change["new"] != ADD_AXIS:
            self._ensure_axis(change["new"])
            self.add_axis.value = ADD_AXIS
            self._revalidate()

    def set_axis(self, name: str, text: str) -> None:
        """Type an axis's values (a placeholder of the template, or a field in FIELD_AXES)."""
        self._ensure_axis(name).value = text

    def _sync_placeholders(self, template: str) -> None:
        try:
            names = [n for n in _placeholders(template) if n not in FIELDS]
        except RequestError:
            return
        for name in names:
            self._ensure_axis(name)
        for name in [n for n in self.axes if n not in FIELD_AXES and n not in names]:
            self.axes.pop(name)
            self._axis_problems.pop(name)
            self._axis_rows.children = [
                r for r in self._axis_rows.children if f"wan-sweep-axis-{name}" not in r._dom_classes
            ]

    # -- the plan ---------------------------------------------------------------------------
    def arguments(self) -> tuple[str, dict[str, Any]]:
        """(template, keyword arguments) for ``wan.sweep``: fixed fields, then the axes."""
        action, template, images, fields = self.fields.request_args()
        # Fields at the document's defaults are left out, so the code shown is the very
        # call Start makes (the same arguments, the same sweep id).
        d = _spec.DEFAULTS
        kwargs: dict[str, Any] = {} if action == _spec.GENERATE else {"action": action}
        kwargs.update({k: v for k, v in fields.items() if not (k in d and v == d[k]) and v is not None})
        if images:
            kwargs["image_urls"] = images
        problems: list[Problem] = []
        for name, text in self.axes.items():
            if not text.value.strip():
                if name not in FIELD_AXES:
                    problems.append(Problem(name, "placeholder", f"the template uses {{{name}}}: type its values"))
                continue
            try:
                kwargs[name] = parse_axis(name, text.value)
            except RequestError as exc:
                problems += exc.problems
        problems += self.fields.refused()
        if problems:
            raise RequestError(problems)
        return template, kwargs

    @property
    def plan(self) -> Plan | RequestError:
        """The sweep the fields describe (every cell checked, nothing sent), or why not."""
        return self._plan if self._plan is not None else self._error  # type: ignore[return-value]

    def _revalidate(self) -> None:
        self._confirm = False
        self._sync_placeholders(self.fields.prompt.value)
        problems: list[Problem] = []
        try:
            template, kwargs = self.arguments()
            self._plan = plan_sweep(template, kwargs)
            self._error = None
        except RequestError as exc:
            self._plan, self._error = None, exc
            problems = exc.problems
        for name, widget in self._axis_problems.items():
            widget.value = problem_html([p for p in problems if field_of(p.field) == name])
        rest = self.fields.show_problems([p for p in problems if field_of(p.field) not in self._axis_problems])
        self.message.value = problem_html(rest)
        self._show_plan()
        self._refresh_buttons()
        if self.code_view.layout.display != "none":
            self.code_view.value = self.code

    def _show_plan(self) -> None:
        plan = self._plan
        if plan is None:
            self.plan_line.value = (
                f"<span style='{FONT};color:#777'>no sweep until the fields and axes are valid</span>"
            )
            return
        text = (
            f"{len(plan.cells)} cell{'s' if len(plan.cells) != 1 else ''} · {plan.images} image"
            f"{'s' if plan.images != 1 else ''} · <b>{quota_usd(plan.cost_quota)}</b> at most "
            "(cells in the cache or already run cost nothing)"
        )  # true before Start and while the sweep runs
        sess = current()
        limit = sess.sweep_budget_usd if sess is not None else None
        if limit is not None and _spec.quota_to_usd(plan.cost_quota) > limit:
            text += f" · above the per-sweep budget {budget(limit)}: Start asks first"
        self.plan_line.value = f"<span style='{FONT};color:#333'>{text}</span>"

    def _refresh_buttons(self) -> None:
        running = self.sweep is not None and self.sweep.running
        self.start_button.disabled = running or self._plan is None
        self.cancel_button.disabled = not running
        if not self._confirm:
            self.start_button.description = "Start"

    # -- running ------------------------------------------------------------------------------
    def start(self, *, confirm: bool = False) -> Sweep:
        """Start the sweep (``wan.sweep``); its live grid shows below. RequestError / BudgetError as wan.sweep."""
        if self.sweep is not None and self.sweep.running:
            raise RuntimeError("the sweep is still running: wait for it or cancel it")
        if self._error is not None:
            raise self._error
        template, kwargs = self.arguments()
        sw = sweep(template, quiet=True, confirm=confirm or self._confirm, **kwargs)
        self._confirm = False
        self.sweep = sw
        self.message.value = ""
        self.output.outputs = ()
        self.output.append_display_data(sw)
        self._refresh_buttons()
        get_portal().submit(self._watch(sw))
        return sw

    async def _watch(self, sw: Sweep) -> None:
        """Buttons back once the sweep has ended (it runs on this loop; looked at 4× a second)."""
        try:
            while sw.running:  # noqa: ASYNC110 - the sweep has no event to wait on; 4 looks a second cost nothing
                await asyncio.sleep(0.25)
        finally:
            self._refresh_buttons()
            self.refresh_fallback()  # a saved notebook shows the sweep's grid as it ended

    def cancel(self) -> None:
        """Stop the sweep: no new cells; queued tasks cancelled on the server (refunded)."""
        if self.sweep is not None:
            self.sweep.cancel()
        self._refresh_buttons()

    def _clicked_start(self) -> None:
        try:
            self.start()
        except BudgetError as exc:
            if exc.confirmable:
                self._confirm = True
                self.start_button.description = f"Start anyway ({budget(exc.cost_usd)})"
            text = exc.with_hint(self.confirm_hint if exc.confirmable else self.over_budget_hint)
            self.message.value = f"<div style='{FONT};color:#b3261e'>✕ {esc(text)}</div>"
        except (RequestError, RuntimeError, WanError) as exc:
            self.message.value = f"<div style='{FONT};color:#b3261e'>✕ {esc(exc)}</div>"

    # -- code and display ------------------------------------------------------------------------
    @property
    def code(self) -> str:
        """The ``wan.sweep(...)`` call this form starts."""
        try:
            template, kwargs = self.arguments()
        except RequestError as exc:
            return "# not a valid sweep yet:\n" + "".join(f"#   {p}\n" for p in exc.problems)
        exprs = self.fields.images.exprs
        options: list[tuple[str, str]] = []
        for name, value in kwargs.items():
            if name == "image_urls":
                options.append((name, "[" + ", ".join(exprs) + "]"))
            elif isinstance(value, random_seeds):
                options.append((name, f"wan.random_seeds({value.count})"))
            else:
                options.append((name, _literal(value)))
        return _call("sweep", [repr(template)], options)

    def _toggle_code(self) -> None:
        shown = self.code_view.layout.display != "none"
        self.code_view.layout.display = "none" if shown else ""
        self.code_view.value = self.code

    def __repr__(self) -> str:
        plan = self.plan
        what = (
            f"{len(plan.cells)} cells, {quota_usd(plan.cost_quota)}"
            if isinstance(plan, Plan)
            else f"invalid: {len(plan.problems)} problem(s)"
        )
        return f"<wan_nb SweepForm {what}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        grid = self.sweep.grid()._repr_html_() if self.sweep is not None else ""
        bundle["text/html"] = (
            f"<div class='wan-sweep-form-static' style='{FONT}'><b>wan_nb sweep form</b> "
            f"(static view)<pre>{esc(self.code)}</pre>{self.plan_line.value}{grid}</div>"
        )
        return bundle


def sweep_form(template: str = "", mode: Mode = _spec.GENERATE, **values: Any) -> SweepForm:
    """A form that builds and runs ``wan.sweep``: a template, fixed fields, axes typed as text.

    On every edit the sweep is planned and checked (nothing is sent): the cell count and
    the cost show before Start; Start calls ``wan.sweep`` and shows its live grid.
    ``s.plan``, ``s.set_axis(name, text)``, ``s.start()``, ``s.sweep``, ``s.code``.

    Parameters
    ----------
    template : str, default ""
        The prompt template: each ``{placeholder}`` becomes an axis (``"a {animal} in snow"``).
    mode : {"generate", "image2image", "edit", "reference", "group", "interactive_edit"}, default "generate"
        The mode of every cell (a dropdown in the form).
    **values
        First values, by name. A field ``wan.form`` takes (``images``, ``n``, ``seed``,
        ``aspect_ratio``, ``resolution``, ``thinking_mode``, ``color_palette``,
        ``bbox_list``, ``watermark``) with one value is fixed for every cell; given a list,
        a ``range`` or, for ``seed``, text (``"1-4"``, ``"random 4"``), one of ``seed``,
        ``aspect_ratio``, ``resolution``, ``n``, ``watermark``, ``thinking_mode`` is an
        axis. A placeholder of the template takes its values as text (``animal="fox, owl"``)
        or a list. Values are checked by the same rules as ``wan.generate``; a name that is
        neither a field nor a placeholder is a RequestError with a "did you mean".

    Returns
    -------
    SweepForm
    """
    try:
        placeholders = [name for name in _placeholders(template) if name not in FIELDS]
    except RequestError:  # a broken template: the form shows why, and keeps the values
        placeholders = list(values)
    stray = [name for name in values if name not in (*FIELDS, *FORM_NAMES, *placeholders)]
    if stray:  # a placeholder's values the form would drop, or a misspelt field
        raise RequestError(unknown_fields(stray, also=[*FORM_NAMES, *placeholders]))
    return SweepForm(template, mode, **values)
