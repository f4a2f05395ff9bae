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
from ._exceptions import RequestError
from ._grid import Grid, cell_key, hashable
from ._html_parts import FONT, esc, format_value, short
from ._report import (
    _plain,
    grid_from_frame,
)
from ._tiles import CellItem

if TYPE_CHECKING:
    from ._log import Log  # annotations only: Log.explore() opens this widget

ANY = "(any)"
THUMB_PX = 120  # CSS px of a thumbnail in the grid
PER_CELL = 3  # images shown per cell; the rest are counted
MAX_IMAGES = 48  # thumbnails sent per page at most
FULL_IMAGES = 4  # full-size images shown for one run at most
LABEL_CHARS = 60
AXIS_EXTRA = ("status", "sweep_id", "tags", "cache_hit", "user")  # also offered as rows / columns (user: who ran it)


def _axis_options(log: Log) -> list[str]:
    """Sweep axes (the keys of logged cells), then the request parameters, then extras."""
    names = log.cell_keys() + list(schema.PARAMETERS) + list(AXIS_EXTRA)
    return list(dict.fromkeys(names))


def _selection(since: _dt.date | None, until: _dt.date | None, text: str) -> str | None:
    """A ``where`` string for the date range and "prompt contains" (case-insensitive, plain
    text): one the log runs as indexed SQL."""
    parts = []
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
    ``e.form`` (the form opened from a run), ``e.comparison``.
    """

    def __init__(self, log: Log, rows: str = "prompt", cols: str = "seed", *, page_rows: int = 6,
                 page_cols: int = 6, max_images: int = MAX_IMAGES, **filters: Any) -> None:
        self.run_log = log
        self.page_rows, self.page_cols, self.max_images = page_rows, page_cols, max_images
        self._row_page = self._col_page = 0
        self.grid: Grid | None = None
        self.selected: str | None = None
        self.form: Any = None
        self.comparison: Any = None
        self._compare_from: str | None = None
        self._drawing = False

        self.rows = widgets.Dropdown(description="rows", layout=widgets.Layout(width="230px"))
        self.cols = widgets.Dropdown(description="columns", layout=widgets.Layout(width="230px"))
        self.sweep = widgets.Dropdown(description="sweep", layout=widgets.Layout(width="230px"))
        self.action = widgets.Dropdown(description="action", layout=widgets.Layout(width="230px"))
        self.status = widgets.Dropdown(description="status", layout=widgets.Layout(width="230px"))
        self.prompt = widgets.Text(description="prompt has", continuous_update=False,
                                   layout=widgets.Layout(width="300px"))
        self.since = widgets.DatePicker(description="from", layout=widgets.Layout(width="230px"))
        self.until = widgets.DatePicker(description="until", layout=widgets.Layout(width="230px"))
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
                        (self.message, "message"), (self.rows, "rows"), (self.cols, "cols")):
            w.add_class(f"wan-explore-{name}")
        controls = widgets.VBox([
            widgets.HBox([self.rows, self.cols, self.refresh_button]),
            widgets.HBox([self.sweep, self.action, self.status]),
            widgets.HBox([self.prompt, self.since, self.until]),
            widgets.HBox([*self._pager.values(), self.summary], layout=widgets.Layout(align_items="center")),
        ])
        super().__init__([controls, self.message, self.grid_box, self.detail])
        self.add_class("wan-explore")
        self.refresh(rows=rows, cols=cols, **filters)
        for w in (self.rows, self.cols, self.sweep, self.action, self.status, self.prompt, self.since, self.until):
            w.observe(lambda change, w=w: self._controls_changed(w), "value")

    # -- data ---------------------------------------------------------------------------
    def refresh(self, **choices: Any) -> None:
        """Read the log again (new runs appear), keep the choices, draw the grid."""
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
            if "prompt" in choices:
                self.prompt.value = choices.pop("prompt")
            for name in ("since", "until"):
                if name in choices:
                    getattr(self, name).value = choices.pop(name)
        finally:
            self._drawing = False
        if choices:
            raise ValueError(f"unknown explorer option(s): {', '.join(choices)}; filters are sweep_id, action, "
                             "status, prompt, since, until")
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
        """The filters in force, as ``log.runs()`` takes them (prompt and dates as ``where``)."""
        out: dict[str, Any] = {}
        for name, dropdown in (("sweep_id", self.sweep), ("action", self.action), ("status", self.status)):
            if dropdown.value not in (None, ANY):
                out[name] = dropdown.value
        return out

    @property
    def where(self) -> str | None:
        """The date range and "prompt has" as the ``where`` string ``log.runs()`` takes."""
        return _selection(self.since.value, self.until.value, self.prompt.value.strip())

    def runs(self, **more: Any) -> pd.DataFrame:
        """The runs the filters select, oldest first (an indexed query, not the whole log)."""
        return self.run_log.runs(self.where, **self.filters, **more)

    # -- the grid ---------------------------------------------------------------------------
    def _controls_changed(self, widget: widgets.Widget) -> None:
        if self._drawing:
            return
        self._row_page = self._col_page = 0  # a new question starts on its first page
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
        total = log.count(where, **filters)
        if not total:
            self.grid = None
            self.grid_box.children = []
            self.summary.value = f"<span style='{FONT};color:#777'>no runs match</span>"
            for b in self._pager.values():
                b.disabled = True
            return
        row_values = log.distinct(rows, where, **filters)
        col_values = log.distinct(cols, where, **filters)
        row_pages = max(1, math.ceil(len(row_values) / self.page_rows))
        col_pages = max(1, math.ceil(len(col_values) / self.page_cols))
        self._row_page = min(self._row_page, row_pages - 1)
        self._col_page = min(self._col_page, col_pages - 1)
        r0, c0 = self._row_page * self.page_rows, self._col_page * self.page_cols
        page_rows = row_values[r0:r0 + self.page_rows]
        page_cols = col_values[c0:c0 + self.page_cols]
        keep_r, keep_c = {hashable(v) for v in page_rows}, {hashable(v) for v in page_cols}
        # only the page's runs are read: its row and column values go to SQL as filters
        # (when an axis is also a filter, or holds lists, SQL reads a little more and pandas keeps the page)
        narrow: dict[str, Any] = {name: values for name, values in ((rows, page_rows), (cols, page_cols))
                  if name not in filters and all(not isinstance(v, (list, dict)) for v in values)}
        df, images = log.frames(where, **filters, **(narrow if rows != cols else {}))
        mask = [(hashable(_plain(a)) in keep_r and hashable(_plain(b)) in keep_c)
                for a, b in zip(df[rows], df[cols], strict=True)]
        page = df[mask]
        # the page's axes in the pager's order (Log.distinct), not in the order runs were claimed
        shown_r = [v for v in page_rows if hashable(v) in {hashable(_plain(a)) for a in page[rows]}]
        shown_c = [v for v in page_cols if hashable(v) in {hashable(_plain(b)) for b in page[cols]}]
        self.grid = grid_from_frame(page, images, rows, cols, title=f"{rows} × {cols}",
                                    row_values=shown_r, col_values=shown_c)
        self.grid.legend = {}  # the filters say what is shared; labels say the rest
        self._show_grid(self.grid)
        self._pager["up"].disabled = self._row_page == 0
        self._pager["down"].disabled = self._row_page >= row_pages - 1
        self._pager["left"].disabled = self._col_page == 0
        self._pager["right"].disabled = self._col_page >= col_pages - 1
        self.summary.value = (
            f"<span style='{FONT};color:#555'>{total} run{'s' if total != 1 else ''} · rows "
            f"{r0 + 1}-{r0 + len(page_rows)} of {len(row_values)} · columns {c0 + 1}-{c0 + len(page_cols)} "
            f"of {len(col_values)}</span>"
        )

    def _show_grid(self, grid: Grid) -> None:
        budget = self.max_images
        children: list[widgets.Widget] = [self._label(f"{grid.row_name} ↓  {grid.col_name} →", head=True)]
        children += [self._label(format_value(v), head=True) for v in grid.col_values]
        for rv in grid.row_values:
            children.append(self._label(format_value(rv), head=True))
            for cv in grid.col_values:
                cell = grid.cells.get(cell_key(rv, cv))
                items = cell.items if cell is not None else []
                shown = items[: min(PER_CELL, budget)]
                budget -= len(shown)
                tiles = [self._tile(it) for it in shown]
                if len(items) > len(shown):
                    tiles.append(
                        widgets.HTML(f"<span style='{FONT};color:#777'>+{len(items) - len(shown)} more</span>")
                    )
                if not items:
                    tiles = [widgets.HTML("<span style='color:#bbb'>—</span>")]
                box = widgets.HBox(
                    tiles, layout=widgets.Layout(flex_flow="row wrap", border="1px solid #ddd", padding="2px")
                )
                box.add_class("wan-explore-cell")
                children.append(box)
        self.grid_box.layout = widgets.Layout(
            grid_template_columns=f"160px repeat({len(grid.col_values)}, minmax({THUMB_PX + 8}px, max-content))",
            grid_gap="2px",
        )
        self.grid_box.children = children

    @staticmethod
    def _label(text: str, head: bool = False) -> widgets.HTML:
        style = "font-weight:600;background:#fafafa;padding:4px;overflow-wrap:anywhere" if head else ""
        return widgets.HTML(f"<div style='{FONT};{style}' title='{esc(text)}'>{esc(short(text, LABEL_CHARS))}</div>")

    def _tile(self, item: CellItem) -> widgets.Widget:
        face: widgets.Widget
        data = None
        if item.thumb is not None:
            try:
                data = Path(item.thumb).read_bytes()
            except OSError:
                data = None
        if data is not None:
            face = widgets.Image(
                value=data, format="jpeg", layout=widgets.Layout(max_width=f"{THUMB_PX}px", max_height=f"{THUMB_PX}px")
            )
        else:
            why = item.error or item.status or "no image"
            face = widgets.HTML(
                f"<div style='{FONT};width:{THUMB_PX}px;color:#a00;overflow-wrap:anywhere' "
                f"title='{esc(why)}'>✕ {esc(short(why, 80))}</div>"
            )
        label = item.caption or (item.run_id or "")[-8:]
        button = widgets.Button(
            description=short(label, 18) or "details",
            tooltip=f"{item.run_id}: show this run",
            layout=widgets.Layout(width=f"{THUMB_PX}px"),
        )
        button.add_class("wan-explore-open")
        button.on_click(lambda _, rid=item.run_id: self.select(rid) if rid else None)
        tile = widgets.VBox([face, button], layout=widgets.Layout(margin="1px"))
        tile.add_class("wan-explore-tile")
        return tile

    # -- one run ------------------------------------------------------------------------------
    def select(self, run_id: str) -> None:
        """Show a run (what a click on its image does); in "compare with…" mode, compare with it."""
        if self._compare_from is not None and run_id != self._compare_from:
            first, self._compare_from = self._compare_from, None
            self.comparison = self.run_log.compare(first, run_id)
            self.message.value = ""
            self.detail.children = [widgets.HTML(self.comparison._repr_html_())]
            return
        row = self.run_log.get_run(run_id)
        if row is None:
            self.message.value = f"<span style='{FONT};color:#b3261e'>⚠ no run {esc(run_id)} in the log</span>"
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
        parts = (
            [info]
            + ([lineage] if lineage else [])
            + [widgets.HBox([open_button, compare_button]), *[f for f in full if f is not None]]
        )
        self.detail.children = parts

    def _open_clicked(self, run_id: str) -> None:
        try:
            self.open_in_form(run_id)
        except (FileNotFoundError, RequestError) as exc:
            self.message.value = f"<span style='{FONT};color:#b3261e'>⚠ {esc(exc)}</span>"

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
        self.message.value = (
            f"<span style='{FONT};color:#555'>click another image to compare it with {esc(run_id)}</span>"
        )

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
        filters = ", ".join(f"{k}={v}" for k, v in self.filters.items()) or "none"
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
