"""``wan.log().explore()``: the experiment log as a grid you can steer and click.

Choose any two parameters (a logged field or a sweep axis) as rows and columns, narrow
the runs with filters, and the grid is drawn again; click an image to see its run:
every parameter, the images full size, the runs it was made from, and buttons to open
it in a form (pre-filled with its fields) or compare it with another run.

Why it stays light on a log of 100,000 runs: nothing reads the whole log. The
filters become one indexed SQL selection (``Log.runs``/``frames``); the dropdowns and
the axis values are ``Log.distinct`` queries over it; the grid is paged, and only the
page's runs and their images are read (``Log.frames`` with the page's row and column
values), and only their stored thumbnails are sent, at most ``max_images`` of them. The layout (axis order, legend,
captions) is ``_report.grid_from_frame``'s, the same as ``log.grid``; a saved notebook
without widgets shows that grid's HTML.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from . import _log_schema as schema
from ._compare import ImageCompare
from ._curation import MAX_STARS, TAG_TEXT, check_stars, tag_problem
from ._exceptions import Problem, RequestError, WanError
from ._grid import Grid, cell_key, hashable
from ._html_parts import FONT, esc, format_value, short
from ._report import (
    _plain,
    grid_from_frame,
)
from ._stars import StarRating, reason, stylesheet
from ._tiles import CellItem, stars_text

if TYPE_CHECKING:
    from ._log import Log  # annotations only: Log.explore() opens this widget

ANY = "(any)"
THUMB_PX = 120  # CSS px of a thumbnail in the grid
PER_CELL = 3  # images shown per cell; the rest are counted
MAX_IMAGES = 48  # thumbnails sent per page at most
FULL_IMAGES = 4  # full-size images shown for one run at most
LABEL_CHARS = 60
AXIS_EXTRA = ("status", "sweep_id", "tags", "cache_hit", "user")  # also offered as rows / columns (user: who ran it)
STACK_KEYS = tuple(p for p in schema.PARAMETERS if p != "seed")  # runs equal in these differ only in seed
SEEDS = "seed (stacked)"  # the axis that stands for seed while seeds are stacked: one value
ALL_SEEDS = "all seeds"
AXIS_COUNT_CAP = 1000  # an axis's values are counted up to this ("rows 1-8 of 1,000+"): a page stays quick
OPTIONS = ("rows", "cols", "sweep_id", "action", "status", "user", "prompt", "since", "until", "min_stars", "tag",
           "stack_seeds")
# The pick switch shows a glyph; its text ("pick to compare") stays its accessible name.
PICK_CSS = (".wan-explore-pick.widget-toggle-button{font-size:0;min-width:0;padding:0}"
            '.wan-explore-pick.widget-toggle-button::before{content:"⇆";content:"⇆" / "";font-size:15px}')


def _axis_options(log: Log) -> list[str]:
    """Sweep axes (the keys of logged cells), then the request parameters, then extras."""
    names = log.cell_keys() + list(schema.PARAMETERS) + list(AXIS_EXTRA)
    return list(dict.fromkeys(names))


def _pages(n: int, size: int) -> float:
    """Pages of an axis of ``n`` values (past AXIS_COUNT_CAP: not counted, no end known)."""
    return math.inf if n > AXIS_COUNT_CAP else max(1, math.ceil(n / size))


def _axis_page(log: Log, axis: str, folded: set[str], where: Any, filters: dict[str, Any], start: int,
               size: int) -> tuple[list[Any], bool]:
    """(the values of ``axis`` on the page from ``start``, whether a next page exists)."""
    if axis in folded:
        return [ALL_SEEDS], False
    values = log.distinct(axis, where, limit=size + 1, offset=start, **filters)
    return values[:size], len(values) > size


def _how_many(n: int) -> str:
    return f"{AXIS_COUNT_CAP:,}+" if n > AXIS_COUNT_CAP else f"{n:,}"


def _check_choices(choices: dict[str, Any]) -> None:
    """The choosing options as the controls take them (in place), each by its rule: one
    ``RequestError`` naming every bad option, before any control changes."""
    problems: list[Problem] = []
    if "min_stars" in choices:  # 1-5 (0 or None: any), by the rating's own rule
        try:
            choices["min_stars"] = check_stars(choices["min_stars"]) or 0
        except RequestError as exc:
            problems += [Problem("min_stars", p.rule, p.message) for p in exc.problems]
    if "tag" in choices:  # a tag, or None / "" for any
        tag = choices["tag"]
        tag = "" if tag is None else tag.strip() if isinstance(tag, str) else tag
        problem = tag_problem("tag", tag) if tag != "" else None
        if problem is not None:
            problems.append(problem)
        choices["tag"] = tag
    stack = choices.get("stack_seeds", False)
    if not isinstance(stack, bool):
        problems.append(Problem("stack_seeds", "type", f"must be True or False (got {stack!r})"))
    if problems:
        raise RequestError(problems)


def _selection(since: _dt.date | None, until: _dt.date | None, text: str, min_stars: int = 0) -> str | None:
    """A ``where`` string for the date range, "prompt contains" (case-insensitive, plain
    text) and "stars ≥": one the log runs as indexed SQL."""
    parts = []
    if min_stars:
        parts.append(f"stars >= {int(min_stars)}")
    if text:
        parts.append(f"prompt.str.contains({text!r}, case=False, regex=False)")
    if since is not None:
        parts.append(f"created_at >= {pd.Timestamp(since, tz='UTC').isoformat()!r}")
    if until is not None:
        parts.append(f"created_at < {(pd.Timestamp(until, tz='UTC') + pd.Timedelta(days=1)).isoformat()!r}")
    return " and ".join(parts) or None



# What a run's details show, in this order (empty values left out).
DETAIL_FIELDS = ("run_id", "status", "action", "prompt", "n", "seed", "aspect_ratio", "resolution", "width", "height",
                 "watermark", "thinking_mode", "color_palette", "bbox_list", "images_in", "sweep_id", "cell", "tags",
                 "cost_usd", "cache_hit", "cached_from", "task_id", "error_code", "error_message")


def _run_info(run_id: str, row: dict[str, Any]) -> widgets.HTML:
    """A run's fields as a table (every value escaped)."""
    facts = [(k, row.get(k)) for k in DETAIL_FIELDS]
    created = row.get("created_at")
    if isinstance(created, (int, float)):
        facts.insert(1, ("created", _dt.datetime.fromtimestamp(created, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")))
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:10px;vertical-align:top'>{esc(k)}</th>"
        f"<td style='overflow-wrap:anywhere'>{esc(format_value(v))}</td></tr>"
        for k, v in facts
        if v is not None and v != [] and v != {}
    )
    return widgets.HTML(f"<div style='{FONT}'><b>run {esc(run_id)}</b><table>{table}</table></div>")

class LogExplorer(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Rows × columns of any two parameters over the log's runs, filtered, paged, clickable.

    ``e.run_log`` (the ``Log``), ``e.rows`` / ``e.cols`` / ``e.filters`` (dropdowns and fields, settable from Python),
    ``e.grid`` (the ``Grid`` of the page shown), ``e.select(run_id)`` (what a click does),
    ``e.form`` (the form opened from a run), ``e.comparison``. Choosing: ``e.min_stars``,
    ``e.tag``, ``e.stack`` (the controls), ``e.stars(run_id)`` (the star controls showing a
    run), ``e.pick(run_id)`` (two picks open ``e.image_compare``), ``e.stacks`` (the stacks
    shown: key → run ids), ``e.fan_out(key)`` / ``e.fold(key)``, ``e.add_tags``,
    ``e.remove_tag``, ``e.set_note``.
    """

    def __init__(self, log: Log, rows: str = "prompt", cols: str = "seed", *, page_rows: int = 6,
                 page_cols: int = 6, max_images: int = MAX_IMAGES, stack_seeds: bool = False,
                 **filters: Any) -> None:
        _check_choices({**filters, "stack_seeds": stack_seeds})  # before anything is built
        self.run_log = log
        self.page_rows, self.page_cols, self.max_images = page_rows, page_cols, max_images
        self._row_page = self._col_page = 0
        self.grid: Grid | None = None
        self.selected: str | None = None
        self.form: Any = None
        self.comparison: Any = None
        self.image_compare: ImageCompare | None = None
        self.picked: list[str] = []
        self.stacks: dict[Any, list[str]] = {}
        self._compare_from: str | None = None
        self._drawing = False
        self._fanned: set[Any] = set()
        self._stack_of: dict[str, Any] = {}  # run id -> its stack key (stacking on)
        self._seed_of: dict[str, Any] = {}
        self._known_tags: set[str] = set()
        self._tag_warned = False  # ``message`` says why the tag filter's text is no tag
        self._star_controls: dict[str, list[StarRating]] = {}  # run id -> the controls showing it
        self._detail_stars: StarRating | None = None
        self._picks: dict[str, list[widgets.ToggleButton]] = {}
        self._syncing_picks = False
        self._tags_box = widgets.HBox()
        self._stars_layout = widgets.Layout(width="auto")
        self._stars_style = widgets.ToggleButtonsStyle(button_width="18px")  # 5 stars + pick fit a tile's width
        # One Layout / style model shared by every tile's widgets of a kind (each widget would
        # make its own): a page is half as many widgets to create and send. Nothing changes
        # them afterwards, so sharing is safe.
        self._look = {
            "face": widgets.Layout(max_width=f"{THUMB_PX}px", max_height=f"{THUMB_PX}px"),
            "open": widgets.Layout(width=f"{THUMB_PX}px"),
            "pick": widgets.Layout(width="26px", height="22px"),
            "row": widgets.Layout(width=f"{THUMB_PX}px", align_items="center", justify_content="space-between"),
            "tile": widgets.Layout(margin="1px"),
            "cell": widgets.Layout(flex_flow="row wrap", border="1px solid #ddd", padding="2px"),
            "html": widgets.Layout(),
        }

        self.rows = widgets.Dropdown(description="rows", layout=widgets.Layout(width="230px"))
        self.cols = widgets.Dropdown(description="columns", layout=widgets.Layout(width="230px"))
        self.sweep = widgets.Dropdown(description="sweep", layout=widgets.Layout(width="230px"))
        self.action = widgets.Dropdown(description="action", layout=widgets.Layout(width="230px"))
        self.status = widgets.Dropdown(description="status", layout=widgets.Layout(width="230px"))
        self.user = widgets.Dropdown(description="user", layout=widgets.Layout(width="230px"))  # who ran it
        self.prompt = widgets.Text(description="prompt has", continuous_update=False,
                                   layout=widgets.Layout(width="300px"))
        self.since = widgets.DatePicker(description="from", layout=widgets.Layout(width="230px"))
        self.until = widgets.DatePicker(description="until", layout=widgets.Layout(width="230px"))
        self.min_stars = widgets.Dropdown(description="stars ≥", options=[(ANY, 0)] + [
            (str(k), k) for k in range(1, MAX_STARS + 1)], value=0, layout=widgets.Layout(width="230px"))
        self.tag = widgets.Combobox(description="tag", placeholder="any tag", ensure_option=False,
                                    continuous_update=False, layout=widgets.Layout(width="230px"))
        self.stack = widgets.Checkbox(description="stack seeds", value=bool(stack_seeds), indent=False,
                                      layout=widgets.Layout(width="150px", margin="0 0 0 12px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", tooltip="read the log again")
        self.refresh_button.on_click(lambda _: self.refresh())
        self._pager = {name: widgets.Button(description=label, layout=widgets.Layout(width="110px"))
                       for name, label in (("up", "◀ rows"), ("down", "rows ▶"), ("left", "◀ columns"),
                                           ("right", "columns ▶"))}
        for name, button in self._pager.items():
            button.on_click(lambda _, n=name: self._page(n))
        self.summary = widgets.HTML()
        self.grid_box = widgets.GridBox()
        self.detail = widgets.VBox()
        self.message = widgets.HTML()
        for w, name in ((self.summary, "summary"), (self.grid_box, "grid"), (self.detail, "detail"),
                        (self.message, "message"), (self.rows, "rows"), (self.cols, "cols"),
                        (self.min_stars, "min-stars"), (self.tag, "tag"), (self.stack, "stack"), (self.user, "user")):
            w.add_class(f"wan-explore-{name}")
        controls = widgets.VBox([
            widgets.HBox([self.rows, self.cols, self.refresh_button]),
            widgets.HBox([self.sweep, self.action, self.status, self.user]),
            widgets.HBox([self.prompt, self.since, self.until]),
            widgets.HBox([self.min_stars, self.tag, self.stack], layout=widgets.Layout(align_items="center")),
            widgets.HBox([*self._pager.values(), self.summary], layout=widgets.Layout(align_items="center")),
        ])
        sheet = stylesheet(PICK_CSS)
        super().__init__([sheet, controls, self.message, self.grid_box, self.detail])
        self.add_class("wan-explore")
        self.refresh(rows=rows, cols=cols, **filters)
        for w in (self.rows, self.cols, self.sweep, self.action, self.status, self.user, self.prompt, self.since,
                  self.until, self.min_stars, self.tag, self.stack):
            w.observe(lambda change, w=w: self._controls_changed(w), "value")

    # -- data ---------------------------------------------------------------------------
    def refresh(self, **choices: Any) -> None:
        """Read the log again (new runs appear), keep the choices, draw the grid."""
        _check_choices(choices)  # a refused choice changes no control
        log = self.run_log
        axes = _axis_options(log)
        rows, cols = choices.pop("rows", self.rows.value), choices.pop("cols", self.cols.value)
        for name, value in (("rows", rows), ("cols", cols)):
            if value is not None and value not in axes:
                raise ValueError(f"{name}={value!r} is not a column of the log; choose one of: {', '.join(axes)}")
        sweeps = [s for s in log.distinct("sweep_id", newest_first=True) if s is not None]
        self._drawing = True
        try:
            self.rows.options, self.cols.options = axes, axes
            self.rows.value = rows if rows in axes else axes[0]
            self.cols.value = cols if cols in axes else axes[min(1, len(axes) - 1)]
            self._set_options(self.sweep, sweeps, choices.pop("sweep_id", None))
            self._set_options(self.action, self._present("action"), choices.pop("action", None))
            self._set_options(self.status, self._present("status"), choices.pop("status", None))
            self._set_options(self.user, self._present("user"), choices.pop("user", None))
            if "prompt" in choices:
                self.prompt.value = choices.pop("prompt")
            for name in ("since", "until"):
                if name in choices:
                    getattr(self, name).value = choices.pop(name)
            if "min_stars" in choices:  # 1-5 (0 or None: any), by the rating's own rule
                self.min_stars.value = choices.pop("min_stars")
            if "tag" in choices:
                self.tag.value = choices.pop("tag")
            if "stack_seeds" in choices:
                self.stack.value = choices.pop("stack_seeds")
        finally:
            self._drawing = False
        if choices:
            raise ValueError(f"unknown explorer option(s): {', '.join(choices)}; options are {', '.join(OPTIONS)}")
        self.draw()

    def _present(self, column: str) -> list[str]:
        return [str(v) for v in self.run_log.distinct(column) if v is not None]

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, values: list[str], chosen: Any) -> None:
        keep = chosen if chosen is not None else dropdown.value
        dropdown.options = [ANY, *values]
        dropdown.value = keep if keep in dropdown.options else ANY

    @property
    def filters(self) -> dict[str, Any]:
        """The filters in force, as ``log.runs()`` takes them (prompt, dates and stars as ``where``)."""
        out: dict[str, Any] = {}
        for name, dropdown in (("sweep_id", self.sweep), ("action", self.action), ("status", self.status),
                               ("user", self.user)):
            if dropdown.value not in (None, ANY):
                out[name] = dropdown.value
        if self.tag.value.strip():
            out["tag"] = self.tag.value.strip()
        return out

    @property
    def where(self) -> str | None:
        """The date range, "prompt has" and "stars ≥" as the ``where`` string ``log.runs()`` takes."""
        return _selection(self.since.value, self.until.value, self.prompt.value.strip(), self.min_stars.value)

    def runs(self, **more: Any) -> pd.DataFrame:
        """The runs the filters select, oldest first (an indexed query, not the whole log)."""
        return self.run_log.runs(self.where, **self.filters, **more)

    # -- the grid ---------------------------------------------------------------------------
    def _controls_changed(self, widget: widgets.Widget) -> None:
        if self._drawing:
            return
        self._row_page = self._col_page = 0  # a new question starts on its first page
        self._fanned.clear()
        if widget is self.tag:  # no tag: said (the grid shows no runs); a tag again, or none: no longer said
            typed = self.tag.value.strip()
            problem = tag_problem("tag", typed) if typed else None
            if problem is not None:
                self._say(f"⚠ {problem.message}")
                self._tag_warned = True
            elif self._tag_warned:
                self._say("")
        self.draw()

    def _page(self, direction: str) -> None:
        step = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[direction]
        self._row_page = max(0, self._row_page + step[0])
        self._col_page = max(0, self._col_page + step[1])
        self.draw()

    def draw(self) -> None:
        """Lay out the selected runs by the chosen rows and columns, one page of them."""
        rows, cols = str(self.rows.value), str(self.cols.value)
        log, where, filters = self.run_log, self.where, self.filters
        stacking = bool(self.stack.value)
        folded = {a for a in (rows, cols) if stacking and a == "seed"}  # seeds stacked: one "all seeds" value
        total = log.count(where, **filters)
        if not total:
            self.grid = None
            self.grid_box.children = []
            self.stacks = {}
            self.summary.value = f"<span style='{FONT};color:#777'>no runs match</span>"
            for b in self._pager.values():
                b.disabled = True
            return
        n_rows, n_cols = ((1 if a in folded else log.count_distinct(a, where, at_most=AXIS_COUNT_CAP, **filters))
                          for a in (rows, cols))
        self._row_page = int(min(self._row_page, _pages(n_rows, self.page_rows) - 1))
        self._col_page = int(min(self._col_page, _pages(n_cols, self.page_cols) - 1))
        r0, c0 = self._row_page * self.page_rows, self._col_page * self.page_cols
        # only the page's values are read (from the column's index where it has one); one more
        # than fits says whether a next page exists when there are more values than were counted
        page_rows, more_rows = _axis_page(log, rows, folded, where, filters, r0, self.page_rows)
        page_cols, more_cols = _axis_page(log, cols, folded, where, filters, c0, self.page_cols)
        if (not page_rows and self._row_page) or (not page_cols and self._col_page):  # past an uncounted end
            self._row_page, self._col_page = (self._row_page if page_rows else 0), (self._col_page if page_cols else 0)
            self.draw()
            return
        keep_r, keep_c = {hashable(v) for v in page_rows}, {hashable(v) for v in page_cols}
        # only the page's runs are read: its row and column values go to SQL as filters
        # (when an axis is also a filter, or holds lists, SQL reads a little more and pandas keeps the page)
        narrow: dict[str, Any] = {name: values for name, values in ((rows, page_rows), (cols, page_cols))
                  if name not in filters and name not in folded
                  and all(not isinstance(v, (list, dict)) for v in values)}
        df, images = log.frames(where, **filters, **(narrow if rows != cols else {}))
        if folded:
            df = df.assign(**{SEEDS: ALL_SEEDS})
        grid_rows, grid_cols = (SEEDS if rows in folded else rows), (SEEDS if cols in folded else cols)
        mask = [(hashable(_plain(a)) in keep_r and hashable(_plain(b)) in keep_c)
                for a, b in zip(df[grid_rows], df[grid_cols], strict=True)]
        page = df[mask]
        self._learn(page)
        # the page's axes in the pager's order (Log.distinct), not in the order runs were claimed
        shown_r = [v for v in page_rows if hashable(v) in {hashable(_plain(a)) for a in page[grid_rows]}]
        shown_c = [v for v in page_cols if hashable(v) in {hashable(_plain(b)) for b in page[grid_cols]}]
        self.grid = grid_from_frame(page, images, grid_rows, grid_cols, title=f"{grid_rows} × {grid_cols}",
                                    row_values=shown_r, col_values=shown_c)
        self.grid.legend = {}  # the filters say what is shared; labels say the rest
        self._show_grid(self.grid)
        self._pager["up"].disabled = self._row_page == 0
        self._pager["down"].disabled = not more_rows
        self._pager["left"].disabled = self._col_page == 0
        self._pager["right"].disabled = not more_cols
        self.summary.value = (
            f"<span style='{FONT};color:#555'>{total} run{'s' if total != 1 else ''} · rows "
            f"{r0 + 1}-{r0 + len(page_rows)} of {_how_many(n_rows)} · columns {c0 + 1}-{c0 + len(page_cols)} "
            f"of {_how_many(n_cols)}</span>"
        )

    def _learn(self, page: pd.DataFrame) -> None:
        """What the page's runs tell: their tags (offered by the tag filter), seeds and stacks."""
        for tags in page["tags"]:
            self._known_tags.update(tags or [])
        self._show_known_tags()
        keys = [c for c in STACK_KEYS if c in page.columns]
        self._stack_of, self._seed_of = {}, {}
        for rec in page[["run_id", "seed", *keys]].to_dict("records"):
            self._stack_of[rec["run_id"]] = tuple(hashable(_plain(rec[k])) for k in keys)
            self._seed_of[rec["run_id"]] = _plain(rec["seed"])

    def _show_known_tags(self) -> None:
        options = tuple(sorted(self._known_tags, key=str.lower))
        if options != tuple(self.tag.options):
            self.tag.options = options

    def _units(self, items: list[CellItem]) -> list[tuple[str, Any, list[CellItem]]]:
        """A cell's items as what it shows: ("item", None, [item]), ("stack", key, items) for runs
        that differ only in seed (stacking on, not fanned out), ("fold", key, items) after a fanned
        stack's items."""
        if not self.stack.value:
            return [("item", None, [it]) for it in items]
        groups: dict[Any, list[CellItem]] = {}
        for i, it in enumerate(items):
            key = self._stack_of.get(it.run_id or "")
            groups.setdefault(key if key is not None else ("item", i), []).append(it)
        units: list[tuple[str, Any, list[CellItem]]] = []
        for key, found in groups.items():
            its = sorted(found, key=self._by_seed)  # a stack's runs in seed order
            runs = {it.run_id for it in its}
            if len(runs) < 2:
                units += [("item", None, [it]) for it in its]
            elif key in self._fanned:
                units += [("item", None, [it]) for it in its] + [("fold", key, its)]
            else:
                units.append(("stack", key, its))
        return units

    def _by_seed(self, item: CellItem) -> tuple[bool, float]:
        seed = self._seed_of.get(item.run_id or "")
        return (not isinstance(seed, (int, float)), seed if isinstance(seed, (int, float)) else 0)

    def _show_grid(self, grid: Grid) -> None:
        budget = self.max_images
        self._star_controls = {}
        self._picks = {}
        self.stacks = {}
        if self._detail_stars is not None and self._detail_stars.run_id:
            self._star_controls[self._detail_stars.run_id] = [self._detail_stars]
        children: list[widgets.Widget] = [self._label(f"{grid.row_name} ↓  {grid.col_name} →", head=True)]
        children += [self._label(format_value(v), head=True) for v in grid.col_values]
        for rv in grid.row_values:
            children.append(self._label(format_value(rv), head=True))
            for cv in grid.col_values:
                cell = grid.cells.get(cell_key(rv, cv))
                units = self._units(cell.items if cell is not None else [])
                faces = [u for u in units if u[0] != "fold"]
                shown = faces[: min(PER_CELL, budget)]
                budget -= len(shown)
                tiles = [self._tile(its[0]) if kind == "item" else self._stack_tile(key, its)
                         for kind, key, its in shown]
                if len(faces) > len(shown):
                    tiles.append(self._html(f"<span style='{FONT};color:#777'>+{len(faces) - len(shown)} more</span>"))
                tiles += [self._fold_button(key, its) for kind, key, its in units if kind == "fold"]
                if not faces:
                    tiles = [self._html("<span style='color:#bbb'>—</span>")]
                children.append(widgets.HBox(tiles, layout=self._look["cell"], _dom_classes=("wan-explore-cell",)))
        self.grid_box.layout = widgets.Layout(
            grid_template_columns=f"160px repeat({len(grid.col_values)}, minmax({THUMB_PX + 8}px, max-content))",
            grid_gap="2px",
        )
        self.grid_box.children = children

    def _made(self, cls: type[widgets.DOMWidget], look: str, **kw: Any) -> Any:
        """A ``cls`` widget with the shared layout ``look`` and the style of the first one made
        (ipywidgets does not export every style class to make one up front)."""
        style = self._look.get(f"{look}:style")
        made = cls(layout=self._look[look], **({"style": style} if style is not None else {}), **kw)
        self._look.setdefault(f"{look}:style", made.style)
        return made

    def _html(self, value: str) -> widgets.HTML:
        return self._made(widgets.HTML, "html", value=value)

    def _label(self, text: str, head: bool = False) -> widgets.HTML:
        style = "font-weight:600;background:#fafafa;padding:4px;overflow-wrap:anywhere" if head else ""
        return self._html(f"<div style='{FONT};{style}' title='{esc(text)}'>{esc(short(text, LABEL_CHARS))}</div>")

    def _face(self, item: CellItem) -> widgets.Widget:
        """The thumbnail (its stored file, sent once), or why there is none."""
        data = None
        if item.thumb is not None:
            try:
                data = Path(item.thumb).read_bytes()
            except OSError:
                data = None
        if data is not None:
            return widgets.Image(value=data, format="jpeg", layout=self._look["face"])
        why = item.error or item.status or "no image"
        return self._html(
            f"<div style='{FONT};width:{THUMB_PX}px;color:#a00;overflow-wrap:anywhere' "
            f"title='{esc(why)}'>✕ {esc(short(why, 80))}</div>"
        )

    def _tile(self, item: CellItem) -> widgets.Widget:
        """An image: its thumbnail, a button that shows its run, its stars and a pick switch."""
        face = self._face(item)
        label = item.caption or (item.run_id or "")[-8:]
        button = self._made(widgets.Button, "open", description=short(label, 18) or "details",
                            tooltip=f"{item.run_id}: show this run", _dom_classes=("wan-explore-open",))
        button.on_click(lambda _, rid=item.run_id: self.select(rid) if rid else None)
        choose: list[widgets.Widget] = []
        if item.run_id:
            choose = [self._stars_control(item.run_id, item.stars), self._pick_switch(item.run_id)]
        row = widgets.HBox(choose, layout=self._look["row"])
        return widgets.VBox([face, button, row], layout=self._look["tile"], _dom_classes=("wan-explore-tile",))

    def _stack_tile(self, key: Any, items: list[CellItem]) -> widgets.Widget:
        """Runs that differ only in seed as one tile: the best rated one's picture, "×N seeds"."""
        runs = list(dict.fromkeys(it.run_id for it in items if it.run_id))
        self.stacks[key] = runs
        cover = max(items, key=lambda it: it.stars or 0)  # the first of the best rated
        seeds = ", ".join(format_value(self._seed_of.get(r)) for r in runs)
        button = widgets.Button(
            description=f"×{len(runs)} seeds ▸",
            tooltip=f"{len(runs)} runs that differ only in their seed ({seeds}): show each of them",
            layout=widgets.Layout(width=f"{THUMB_PX}px"),
        )
        button.add_class("wan-explore-fan")
        button.on_click(lambda _: self.fan_out(key))
        best = max((it.stars or 0 for it in items), default=0)
        said = f"the best of them: {best} star{'s' if best != 1 else ''}" if best else "none of them rated"
        note = (f"<div style='{FONT};color:#e0a100' title='{said}' aria-label='{said}'>{stars_text(best)}"
                "<span style='color:#777'> best</span></div>" if best
                else f"<div style='{FONT};color:#777'>unrated</div>")
        tile = widgets.VBox([self._face(cover), button, widgets.HTML(note)], layout=widgets.Layout(margin="1px"))
        tile.add_class("wan-explore-tile")
        tile.add_class("wan-explore-stack")
        return tile

    def _fold_button(self, key: Any, items: list[CellItem]) -> widgets.Button:
        n = len({it.run_id for it in items})
        button = widgets.Button(description=f"◂ stack ×{n}", tooltip=f"show these {n} runs as one tile again",
                                layout=widgets.Layout(width="90px"))
        button.add_class("wan-explore-fold")
        button.on_click(lambda _: self.fold(key))
        return button

    def fan_out(self, key: Any) -> None:
        """Show each run of a stack (what a click on "×N seeds" does)."""
        self._fanned.add(key)
        if self.grid is not None:
            self._show_grid(self.grid)

    def fold(self, key: Any) -> None:
        """Show a fanned-out stack as one tile again."""
        self._fanned.discard(key)
        if self.grid is not None:
            self._show_grid(self.grid)

    # -- choosing -------------------------------------------------------------------------------
    def stars(self, run_id: str) -> list[StarRating]:
        """The star controls that show ``run_id`` now (its tiles, its details)."""
        return list(self._star_controls.get(run_id, []))

    def _stars_control(self, run_id: str, stars: int | None) -> StarRating:
        control = StarRating(self.run_log, run_id, stars, message=self.message, layout=self._stars_layout,
                             style=self._stars_style)
        control.on_rated(self._rated)
        self._star_controls.setdefault(run_id, []).append(control)
        return control

    def _rated(self, run_id: str, stars: int | None) -> None:
        """A run was rated here: every control and tile showing it follows."""
        for control in self._star_controls.get(run_id, []):
            if control.stars != stars:
                control.show(stars)
        if self.grid is not None:  # what the static view shows
            for cell in self.grid.cells.values():
                for item in cell.items:
                    if item.run_id == run_id:
                        item.stars = stars

    def _pick_switch(self, run_id: str) -> widgets.ToggleButton:
        switch: widgets.ToggleButton = self._made(
            widgets.ToggleButton, "pick", value=run_id in self.picked, description="pick to compare",
            tooltip="pick to compare: pick two runs and they are compared below", _dom_classes=("wan-explore-pick",))
        switch.observe(lambda change, rid=run_id: self._pick_changed(rid, change["new"]), "value")
        self._picks.setdefault(run_id, []).append(switch)
        return switch

    def _pick_changed(self, run_id: str, on: bool) -> None:
        if not self._syncing_picks and on != (run_id in self.picked):
            self.pick(run_id)

    def pick(self, run_id: str) -> None:
        """Pick a run to compare (what its pick switch does), or unpick it; the second pick
        compares the two (``wan.ImageCompare`` below the grid) and starts over."""
        if run_id in self.picked:
            self.picked.remove(run_id)
            self._say("")
        else:
            self.picked.append(run_id)
        if len(self.picked) == 2:
            first, second = self.picked
            self.picked = []
            self.compare(first, second)
        elif self.picked:
            self._say(f"picked {self.picked[0]}: pick another run to compare them", color="#555")
        self._syncing_picks = True
        try:
            for rid, switches in self._picks.items():
                for switch in switches:
                    switch.value = rid in self.picked
        finally:
            self._syncing_picks = False

    def compare(self, a: str, b: str) -> ImageCompare | None:
        """Two runs compared below the grid: ``wan.ImageCompare`` of their first images (swipe,
        side by side with the fields that differ, diff); ``e.comparison`` is ``Log.compare``'s
        table (shown instead when a run has no image)."""
        self.comparison = self.run_log.compare(a, b)
        rows = [self.run_log.get_run(a), self.run_log.get_run(b)]
        self.image_compare = None
        note = ""
        try:
            self.image_compare = ImageCompare(rows[0], rows[1])
        except (WanError, OSError, ValueError) as exc:
            note = f"<div style='{FONT};color:#8a5a00'>⚠ no picture to compare: {esc(reason(exc))}</div>"
        head = widgets.HTML(f"<div style='{FONT}'><b>A</b> {esc(a)} · <b>B</b> {esc(b)}</div>{note}")
        head.add_class("wan-explore-compared")
        view = self.image_compare if self.image_compare is not None else widgets.HTML(self.comparison._repr_html_())
        self._say("")
        self._drop_detail_stars()
        self.detail.children = [head, view]
        return self.image_compare

    def add_tags(self, run_id: str, *tags: str) -> list[str]:
        """Tag a run (what "Add tag" in its details does); returns its tags (the old ones if refused)."""
        return self._retag(run_id, lambda: self.run_log.tag(run_id, *tags))

    def remove_tag(self, run_id: str, tag: str) -> list[str]:
        """Remove a tag from a run (what its ✕ does); returns its tags."""
        return self._retag(run_id, lambda: self.run_log.untag(run_id, tag))

    def _retag(self, run_id: str, change: Any) -> list[str]:
        try:
            tags: list[str] = change()
            self._say("")
        except Exception as exc:  # noqa: BLE001 - a refused write is shown where the user clicked
            self._say(f"⚠ could not change the tags of run {run_id}: {reason(exc)}")
            row = self.run_log.get_run(run_id)
            tags = list((row or {}).get("tags") or [])
        self._known_tags.update(tags)
        self._show_known_tags()
        if self.selected == run_id:
            self._tags_box.children = self._tag_widgets(run_id, tags)
        return tags

    def set_note(self, run_id: str, text: str) -> bool:
        """Replace a run's note ("" clears it; what "Save note" does); False if the log refused."""
        try:
            self.run_log.note(run_id, text)
        except Exception as exc:  # noqa: BLE001 - a refused write is shown where the user clicked
            self._say(f"⚠ could not save the note of run {run_id}: {reason(exc)}")
            return False
        self._say("note saved", color="#1b5e20")
        return True

    def _tag_widgets(self, run_id: str, tags: list[str]) -> list[widgets.Widget]:
        chips = []
        for tag in tags:
            chip = widgets.Button(description=f"{tag} ✕", tooltip=f"remove the tag {tag}",
                                  layout=widgets.Layout(width="auto"))
            chip.add_class("wan-explore-tag")
            chip.on_click(lambda _, t=tag: self.remove_tag(run_id, t))
            chips.append(chip)
        entry = widgets.Text(placeholder="add a tag", continuous_update=False, layout=widgets.Layout(width="160px"))
        entry.add_class("wan-explore-new-tag")
        add = widgets.Button(description="Add tag", icon="tag", tooltip=f"a tag is {TAG_TEXT}; several: space between",
                             layout=widgets.Layout(width="100px"))
        add.add_class("wan-explore-add-tag")

        def added(_: Any = None) -> None:
            text = entry.value.strip()
            if text:
                entry.value = ""
                self.add_tags(run_id, *text.replace(",", " ").split())

        add.on_click(added)
        entry.observe(added, "value")  # Enter (or leaving the field) adds what was typed
        return [widgets.HTML(f"<b style='{FONT}'>tags:</b>"), *chips, entry, add]

    def _choice_widgets(self, run_id: str, row: dict[str, Any]) -> list[widgets.Widget]:
        """A run's stars, tags and note, each changed where it is shown."""
        self._detail_stars = StarRating(self.run_log, run_id, row.get("stars"), message=self.message)
        self._detail_stars.on_rated(self._rated)
        self._star_controls.setdefault(run_id, []).append(self._detail_stars)
        self._tags_box = widgets.HBox(self._tag_widgets(run_id, list(row.get("tags") or [])),
                                      layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        self._tags_box.add_class("wan-explore-tags")
        note = widgets.Textarea(value=row.get("note") or "", placeholder="a note on this run", rows=2,
                                layout=widgets.Layout(width="420px"))
        note.add_class("wan-explore-note")
        save = widgets.Button(description="Save note", icon="save", layout=widgets.Layout(width="110px"))
        save.add_class("wan-explore-save-note")
        save.on_click(lambda _: self.set_note(run_id, note.value))
        stars = widgets.HBox([widgets.HTML(f"<b style='{FONT}'>stars:</b>"), self._detail_stars],
                             layout=widgets.Layout(align_items="center"))
        return [stars, self._tags_box, widgets.HBox([note, save], layout=widgets.Layout(align_items="flex-start"))]

    def _drop_detail_stars(self) -> None:
        shown = self._detail_stars
        if shown is not None and shown.run_id in self._star_controls:
            self._star_controls[shown.run_id] = [c for c in self._star_controls[shown.run_id] if c is not shown]
        self._detail_stars = None

    def _say(self, text: str, color: str = "#b3261e") -> None:
        self._tag_warned = False
        self.message.value = f"<span style='{FONT};color:{color}'>{esc(text)}</span>" if text else ""

    # -- one run ------------------------------------------------------------------------------
    def select(self, run_id: str) -> None:
        """Show a run (what a click on its image does); in "compare with…" mode, compare with it."""
        if self._compare_from is not None and run_id != self._compare_from:
            first, self._compare_from = self._compare_from, None
            self.compare(first, run_id)
            return
        row = self.run_log.get_run(run_id)
        if row is None:
            self._say(f"⚠ no run {run_id} in the log")
            return
        self.selected = run_id
        made_from = self._made_from(run_id)
        info = _run_info(run_id, row)
        info.add_class("wan-explore-info")
        parents = [widgets.Button(description=short(p, 22), tooltip=f"show {p}") for p in made_from]
        for button, parent in zip(parents, made_from, strict=True):
            button.on_click(lambda _, p=parent: self.select(p))
        lineage = widgets.HBox([widgets.HTML(f"<b style='{FONT}'>made from:</b>"), *parents]) if parents else None
        open_button = widgets.Button(
            description="open in form", icon="edit", tooltip="a form pre-filled with this run's fields"
        )
        open_button.on_click(lambda _: self._open_clicked(run_id))
        compare_button = widgets.Button(
            description="compare with…", icon="columns", tooltip="then click another image to compare the two runs"
        )
        compare_button.on_click(lambda _: self.compare_with(run_id))
        full = [self._full_image(Path(im["path"])) for im in row.get("images", [])[:FULL_IMAGES]]
        self._drop_detail_stars()  # the previous run's details go
        parts = (
            [info]
            + ([lineage] if lineage else [])
            + self._choice_widgets(run_id, row)
            + [widgets.HBox([open_button, compare_button]), *[f for f in full if f is not None]]
        )
        self.detail.children = parts

    def _open_clicked(self, run_id: str) -> None:
        try:
            self.open_in_form(run_id)
        except (FileNotFoundError, RequestError) as exc:
            self._say(f"⚠ {exc}")

    def _made_from(self, run_id: str) -> list[str]:
        try:
            return list(self.run_log.made_from().get(run_id, []))
        except Exception:  # noqa: BLE001 - an older log without the inputs table: no lineage to show
            return []

    @staticmethod
    def _full_image(path: Path) -> widgets.Image | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        fmt = {"png": "png", "webp": "webp"}.get(path.suffix.lower().lstrip("."), "jpeg")
        image = widgets.Image(value=data, format=fmt, layout=widgets.Layout(max_width="100%"))
        image.add_class("wan-explore-full")
        return image

    def compare_with(self, run_id: str) -> None:
        """Start "compare with…": the next run selected is compared with ``run_id``."""
        self._compare_from = run_id
        self._say(f"click another image to compare it with {run_id}", color="#555")

    def open_in_form(self, run_id: str) -> Any:
        """A form pre-filled with the run's fields (its images found again on disk), shown below."""
        from ._form import Form

        row = self.run_log.get_run(run_id)
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.run_log.location}")
        old, self.form = self.form, Form(**form_fields(self.run_log, row))
        self.detail.children = [*(c for c in self.detail.children if c is not old), self.form]  # one form at a time
        return self.form

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<wan_nb LogExplorer {self.run_log.location}: {self.rows.value} × {self.cols.value}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        grid = self.grid.to_html_fragment() if self.grid is not None else "<i>no runs match</i>"
        shown = dict(self.filters)
        if self.min_stars.value:
            shown["stars ≥"] = self.min_stars.value
        filters = ", ".join(f"{k}={v}" for k, v in shown.items()) or "none"
        bundle["text/html"] = (
            f"<div class='wan-explore-static' style='{FONT}'><b>wan_nb log explorer</b> "
            f"(static view) · filters: {esc(filters)}{grid}</div>"
        )
        return bundle


def form_fields(log: Log, row: dict[str, Any]) -> dict[str, Any]:
    """A logged run's fields as ``wan.form(**fields)`` takes them (inputs found by sha256)."""
    fields: dict[str, Any] = {
        k: row.get(k)
        for k in ("prompt", "n", "seed", "aspect_ratio", "resolution", "watermark")
        if row.get(k) is not None
    }
    fields["mode"] = row.get("action") or "generate"
    if row.get("action") == "generate" and row.get("thinking_mode") is not None:
        fields["thinking_mode"] = bool(row["thinking_mode"])
    if row.get("color_palette"):
        fields["color_palette"] = [{"hex": h, "ratio": r} for h, r in row["color_palette"]]
    images = [_input_file(log, name) for name in row.get("images_in") or []]
    if images:
        fields["images"] = images
        if row.get("bbox_list"):
            fields["bbox_list"] = row["bbox_list"]
    return fields


def _input_file(log: Log, name: str) -> Any:
    """An input named as the log names it ("sha256:…" or a URL), as a file or URL to send again."""
    if not name.startswith("sha256:"):
        return name
    sha = name[len("sha256:") :]
    for folder in ("uploads",):
        for path in (log.root / folder).glob(f"{sha}.*"):
            return path
    found = log.images(sha256=sha)
    for path in found["path"]:
        if path and Path(path).is_file():
            return Path(path)
    raise FileNotFoundError(
        f"the input image sha256:{sha[:12]}… is not in the run folder any more; pick it again in the form"
    )
